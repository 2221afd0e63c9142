"""The torch side of ``random``: which real images (class-balanced, or KRR-ST's initial draw
for the control) and the distilled set they make."""

from __future__ import annotations

from typing import Any

import torch

from ddbench.toolkit.subsets import (INITIAL_DRAW_OFFSET, SELECT_OFFSET, class_indices, initial_draw, per_class_quota,
                                     subset_set)

#: what the control's provenance says about its images
CONTROL_SELECTION = ("KRR-ST's initial draw: the same class-agnostic random real training images KRR-ST starts "
                     "from for this seed and budget (ddbench.toolkit.subsets.initial_draw), in draw order")


def random_indices(ctx: Any, source: Any, options: Any, *, images: int, ipc: int) -> tuple[torch.Tensor, list[int]]:
    """The chosen training-image indices and the images per class.

    ``images`` is the total budget, ``ipc`` images per class (0: spread ``images`` over the
    classes). ``recipe=hard_ce_dsa``: a class-balanced random subset from ``ctx.generator``
    (sorted by class, then by draw). ``recipe=representation_mse`` (KRR-ST's control): exactly
    KRR-ST's initial draw for the seed, class-agnostic, of ``images`` images (``ipc`` x classes
    when only ``ipc`` is given)."""
    classes = class_indices(source)
    if options.recipe == "representation_mse":
        total = int(images) if images else int(ipc) * len(classes)
        idx = initial_draw(ctx, int(source.x_train.shape[0]), total)
        return idx, torch.bincount(source.y_train[idx], minlength=len(classes)).tolist()
    g = ctx.generator(SELECT_OFFSET)
    quota = per_class_quota([len(c) for c in classes], images, ipc, g)
    picks = [idx[torch.randperm(len(idx), generator=g)[:q]] for idx, q in zip(classes, quota)]
    return torch.cat(picks), quota


def build_set(ctx: Any, source: Any, options: Any, idx: torch.Tensor, per_class: list[int], *, method: str,
              selection: str, **provenance: Any):
    """The distilled set of the real images ``source.x_train[idx]``: hard labels, or, with
    ``recipe=representation_mse``, the target model's representations of them."""
    from ddbench_plugins.subsets import SCALING

    prov: dict[str, Any] = {"scaling": SCALING.get(ctx.preset or "", "custom options"), **provenance}
    if options.recipe != "representation_mse":
        return subset_set(source, idx, recipe="hard_ce_dsa", method=method, selection=selection,
                          per_class=per_class, options=options, **prov)

    from ddbench_plugins.targets import get_target_model

    prov["initial_draw"] = {"same_as": "krrst", "generator_offset": INITIAL_DRAW_OFFSET}
    prov["labels"] = "target model representations (the 'random + same recipe' control)"
    return subset_set(source, idx, recipe="representation_mse", method=method, selection=selection,
                      per_class=per_class, options=options, target_model=get_target_model(ctx, source, options),
                      **prov)
