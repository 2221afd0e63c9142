"""A DSA run, imported lazily by ``DSAMethod.distill``: draws the fresh networks, real
batches, augmentation parameters and batch orders, runs :mod:`.step` under the shared
checkpointed loop, and returns the learned hard-label set."""

from __future__ import annotations

import time
from typing import Any

import torch

from ddbench.toolkit.augment import DSA
from ddbench.toolkit.matching import (ClassBatches, LearnedImages, class_budget, finish_hard_label_set,
                                      freeze_batchnorm, fresh_network, initial_images, run_learned,
                                      network_builder, normalized_train)

from .step import match_images, train_network

#: generator offsets of the run's random streams
OFF_INIT, OFF_NET, OFF_REAL, OFF_AUG, OFF_ORDER = 301, 302, 303, 304, 305
#: the reference's ``get_loops``: IPC -> (outer_loop, inner_loop)
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
#: real images per class for BatchNorm statistics (the reference's ``BNSizePC``)
BN_SIZE_PER_CLASS = 16


def loops(options: Any, ipc: int) -> tuple[int, int]:
    from ddbench.errors import OptionError

    if options.outer_loop and options.inner_loop:
        return int(options.outer_loop), int(options.inner_loop)
    if ipc not in LOOPS:
        raise OptionError(f"DSA's loop table (the reference's get_loops) covers IPC {', '.join(map(str, LOOPS))}, "
                          f"not {ipc}; give -o outer_loop=N -o inner_loop=M")
    return LOOPS[ipc]


def network(options: Any, in_shape: tuple[int, ...], num_classes: int):
    """(spec, build) of the distillation ConvNet."""
    return network_builder("convnet", {"widths": tuple(int(c) for c in options.arch_widths),
                                       "norm": str(options.arch_norm).lower()}, in_shape, num_classes)


def distill(ctx: Any, source: Any, options: Any, *, method_name: str = "dsa", scaling: str | None = None):
    t_start = time.time()
    device = torch.device(ctx.device)
    C = int(source.num_classes)
    ipc = class_budget(ctx.budget, C, method_name)
    outer, inner = loops(options, ipc)
    x_train, y_train = normalized_train(source, device)
    images, labels, init_idx = initial_images(x_train.cpu(), y_train, C, ipc, options.init, ctx.generator(OFF_INIT))
    labels = labels.to(device)
    sampler = ClassBatches(y_train, C, ctx.generator(OFF_REAL))
    batch_real = min(int(options.batch_real), sampler.smallest)
    g_net, g_aug, g_order = ctx.generator(OFF_NET), ctx.generator(OFF_AUG), ctx.generator(OFF_ORDER)
    state = LearnedImages(images, lr=options.lr_img, momentum=options.momentum, device=device, sampler=sampler,
                          generators={"net": g_net, "aug": g_aug, "order": g_order})
    syn = state.syn
    dsa = DSA(options.dsa_strategy, mode=options.dsa_mode)
    spec, build = network(options, tuple(int(s) for s in x_train.shape[1:]), C)
    n_syn = C * ipc

    def step(k: int) -> torch.Tensor:
        net = fresh_network(build, g_net, device)
        opt_net = torch.optim.SGD(net.parameters(), lr=options.lr_net)
        total = torch.zeros((), device=device)
        for ol in range(outer):
            if str(options.arch_norm).lower() == "bn":
                bn_idx = torch.cat([sampler.draw(c, BN_SIZE_PER_CLASS) for c in range(C)])
                freeze_batchnorm(net, x_train[bn_idx.to(device)])
            real = [x_train[sampler.draw(c, batch_real).to(device)] for c in range(C)]
            params = [dsa.sample(1, g_aug, device, shared=True) for _ in range(C)]
            loss, _ = match_images(net, syn, ipc, real, params, dsa, state.opt, metric=options.distance)
            total = total + loss
            if ol == outer - 1:
                break
            data = syn.detach().clone()
            for _ in range(inner):
                order = torch.randperm(n_syn, generator=g_order).to(device)
                sizes = [len(order[s:s + options.batch_train]) for s in range(0, n_syn, options.batch_train)]
                bparams = [dsa.sample(n, g_aug, device) for n in sizes]
                train_network(net, opt_net, data, labels, order, bparams, dsa, options.batch_train)
        return total / (C * outer)  # the reference's printed loss_avg

    result = run_learned(ctx, state, step, method=method_name, options=options, ipc=ipc, source=source)
    return finish_hard_label_set(
        ctx, source, state, labels, method=method_name, options=options, result=result,
        details={"ipc": ipc, "outer_loop": outer, "inner_loop": inner, "real_batch_per_class": batch_real,
                 "distill_network": spec.to_dict()},
        init_idx=init_idx, learned_by="gradient matching", scaling=scaling, seconds=time.time() - t_start,
        title="DSA", ylabel="gradient-matching loss per class")
