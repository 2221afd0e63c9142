"""A DSA run, imported lazily by ``DSAMethod.distill``: draws the fresh networks, real
batches, augmentation parameters and batch orders, runs :mod:`.step` under the shared
checkpointed loop, and returns the learned hard-label set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ddbench.toolkit.augment import DSA
from ddbench.toolkit.imageloop import loss_summary, peak_memory_mib, run_loop
from ddbench.toolkit.matching import (ClassBatches, class_budget, freeze_batchnorm, fresh_network, hard_label_set,
                                      initial_images, network_builder, normalized_train)
from ddbench.toolkit.plots import write_set_outputs
from ddbench.types import Provenance

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
    images, labels, init_idx = initial_images(x_train.cpu(), y_train, C, ipc, options.init,
                                              ctx.generator(OFF_INIT))
    syn = images.to(device).requires_grad_(True)
    labels = labels.to(device)
    opt_img = torch.optim.SGD([syn], lr=options.lr_img, momentum=options.momentum)
    sampler = ClassBatches(y_train, C, ctx.generator(OFF_REAL))
    batch_real = min(int(options.batch_real), sampler.smallest)
    g_net, g_aug, g_order = ctx.generator(OFF_NET), ctx.generator(OFF_AUG), ctx.generator(OFF_ORDER)
    dsa = DSA(options.dsa_strategy, mode=options.dsa_mode)
    spec, build = network(options, tuple(int(s) for s in x_train.shape[1:]), C)
    n_syn = C * ipc

    def step(k: int) -> torch.Tensor:
        net = fresh_network(build, g_net, device)
        opt_net = torch.optim.SGD(net.parameters(), lr=options.lr_net)
        total = torch.zeros((), device=device)
        for ol in range(outer):
            if options.arch_norm == "bn":
                bn_idx = torch.cat([sampler.draw(c, BN_SIZE_PER_CLASS) for c in range(C)])
                freeze_batchnorm(net, x_train[bn_idx.to(device)])
            idx = [sampler.draw(c, batch_real) for c in range(C)]
            real = [x_train[i.to(device)] for i in idx]
            params = [dsa.sample(1, g_aug, device, shared=True) for _ in range(C)]
            loss, _ = match_images(net, syn, ipc, real, params, dsa, opt_img, metric=options.distance)
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

    def state_dict() -> dict[str, Any]:
        return {"syn": syn.detach().cpu(), "opt_img": opt_img.state_dict(), "real": sampler.state_dict(),
                "g_net": g_net.get_state(), "g_aug": g_aug.get_state(), "g_order": g_order.get_state()}

    def load_state_dict(state: dict[str, Any]) -> None:
        with torch.no_grad():
            syn.copy_(state["syn"].to(device))
        opt_img.load_state_dict(state["opt_img"])
        sampler.load_state_dict(state["real"])
        g_net.set_state(state["g_net"])
        g_aug.set_state(state["g_aug"])
        g_order.set_state(state["g_order"])

    fingerprint = {"method": method_name, "options": {k: v for k, v in options.to_dict().items() if k != "log_every"},
                   "ipc": ipc, "seed": int(ctx.seed), "source": getattr(source, "content_hash", ""),
                   "device": device.type, "version": 1}
    result = run_loop(ctx, name=method_name, total=int(options.iterations), step=step, state_dict=state_dict,
                      load_state_dict=load_state_dict, fingerprint=fingerprint,
                      checkpoint_every=int(options.checkpoint_every), log_every=int(options.log_every),
                      divergence_hint=f"lower lr_img (now {options.lr_img:g})")

    details = {
        "ipc": ipc, "outer_loop": outer, "inner_loop": inner, "real_batch_per_class": batch_real,
        "distill_network": spec.to_dict(),
        "loss": loss_summary(result.losses), "iterations": int(options.iterations),
        "distill_seconds": round(result.seconds, 3),
        "s_per_iteration": round(result.seconds / max(1, int(options.iterations)), 4),
        "resumed_from_step": result.resumed_from, "device": str(device), **peak_memory_mib(device),
    }
    selection = ("initialised from random real images of each class, then learned by gradient matching"
                 if options.init == "real" else "initialised from Gaussian noise, then learned by gradient matching")
    provenance = Provenance(options=options.to_dict(), arch=None, selection=selection, scaling=scaling or "",
                            seconds=round(time.time() - t_start, 3), details=details)
    if init_idx is not None:
        provenance.details["init_indices"] = init_idx.tolist()
    out = hard_label_set(source, syn, labels, method=method_name, provenance=provenance)
    if ctx.output_dir:
        write_set_outputs(Path(ctx.output_dir), out, result.losses, title="DSA", xlabel="outer iteration",
                          ylabel="gradient-matching loss per class")
    return out
