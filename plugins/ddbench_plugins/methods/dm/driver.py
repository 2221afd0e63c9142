"""A DM run, imported lazily by ``DMMethod.distill``: draws the fresh networks, real batches
and augmentation parameters, runs :mod:`.step` under the shared checkpointed loop, and
returns the learned hard-label set."""

from __future__ import annotations

import time
from typing import Any

import torch

from ddbench.toolkit.augment import DSA
from ddbench.toolkit.matching import (ClassBatches, LearnedImages, class_budget, finish_hard_label_set, fresh_network,
                                      initial_images, network_builder, normalized_train, run_learned)

from .step import match_embeddings

#: generator offsets of the run's random streams
OFF_INIT, OFF_NET, OFF_REAL, OFF_AUG = 401, 402, 403, 404


def distill(ctx: Any, source: Any, options: Any, *, method_name: str = "dm", scaling: str | None = None):
    t_start = time.time()
    device = torch.device(ctx.device)
    C = int(source.num_classes)
    ipc = class_budget(ctx.budget, C, method_name)
    x_train, y_train = normalized_train(source, device)
    images, labels, init_idx = initial_images(x_train.cpu(), y_train, C, ipc, options.init, ctx.generator(OFF_INIT))
    sampler = ClassBatches(y_train, C, ctx.generator(OFF_REAL))
    batch_real = min(int(options.batch_real), sampler.smallest)
    g_net, g_aug = ctx.generator(OFF_NET), ctx.generator(OFF_AUG)
    state = LearnedImages(images, lr=options.lr_img, momentum=options.momentum, device=device, sampler=sampler,
                          generators={"net": g_net, "aug": g_aug})
    dsa = DSA(options.dsa_strategy, mode=options.dsa_mode)
    spec, build = network_builder("convnet", {"widths": tuple(int(c) for c in options.arch_widths),
                                              "norm": str(options.arch_norm).lower()},
                                  tuple(int(s) for s in x_train.shape[1:]), C)

    def step(k: int) -> torch.Tensor:
        net = fresh_network(build, g_net, device)
        net.requires_grad_(False)
        real = [x_train[i.to(device)] for i in sampler.draw_all(batch_real)]
        params = [dsa.sample(1, g_aug, device, shared=True) for _ in range(C)]
        loss, _ = match_embeddings(net, state.syn, ipc, real, params, dsa, state.opt, batched=options.batched)
        return loss / C  # the reference's printed loss_avg

    result = run_learned(ctx, state, step, method=method_name, options=options, ipc=ipc, source=source)
    return finish_hard_label_set(
        ctx, source, state, labels, method=method_name, options=options, result=result,
        details={"ipc": ipc, "real_batch_per_class": batch_real, "distill_network": spec.to_dict()},
        init_idx=init_idx, learned_by="distribution matching", scaling=scaling, seconds=time.time() - t_start,
        title="DM", ylabel="mean-embedding distance per class")
