"""The torch side of the real-subset baselines (``random``, ``kmeans``): budgets per class,
seeded random picks, and turning chosen indices into a :class:`DistilledSet`."""

from __future__ import annotations

from typing import Any

import torch

from ddbench.errors import DataError

#: seed offset of the subset draws (ctx.generator(OFFSET_SELECT))
OFFSET_SELECT = 11


def class_indices(source: Any) -> list[torch.Tensor]:
    """Indices into ``source.x_train`` of each class, in label order."""
    y = source.y_train
    return [(y == c).nonzero()[:, 0] for c in range(int(source.num_classes))]


def per_class_quota(counts: list[int], m: int, ipc: int, generator: torch.Generator) -> list[int]:
    """Images per class: ``ipc`` each when ipc > 0, else ``m`` spread as evenly as possible
    (``m // C`` each; the ``m % C`` extra images go to seeded-random classes). A class never
    gets more images than it has; a budget larger than the data is an error."""
    k = len(counts)
    if ipc > 0:
        quota = [ipc] * k
    else:
        base, extra = divmod(int(m), k)
        quota = [base] * k
        if extra:
            for c in torch.randperm(k, generator=generator)[:extra].tolist():
                quota[c] += 1
    short = [c for c in range(k) if quota[c] > counts[c]]
    if short:
        c = short[0]
        raise DataError(f"the budget asks for {quota[c]} images of class {c}, which has only {counts[c]} training "
                        f"images ({len(short)} class(es) are short); lower ipc/m")
    return quota


def random_indices(ctx: Any, source: Any, options: Any) -> tuple[torch.Tensor, list[int]]:
    """A class-balanced random subset (sorted by class, then by draw), from ``ctx.generator``."""
    g = ctx.generator(OFFSET_SELECT)
    classes = class_indices(source)
    quota = per_class_quota([len(c) for c in classes], options.m, options.ipc, g)
    picks = [idx[torch.randperm(len(idx), generator=g)[:q]] for idx, q in zip(classes, quota)]
    return torch.cat(picks), quota


def build_set(ctx: Any, source: Any, options: Any, idx: torch.Tensor, per_class: list[int], *, method: str,
              selection: str, target_model: Any = None, **provenance: Any):
    """The distilled set of the real images ``source.x_train[idx]``: hard labels, or, with
    ``recipe=representation_mse``, the target model's representations of them."""
    from ddbench.distilled import DistilledSet

    from ddbench_plugins.targets.barlow_twins import get_target_model

    from . import SCALING

    images = source.x_train[idx]
    prov: dict[str, Any] = {
        "scaling": SCALING.get(ctx.preset or "", "custom options"),
        "selection": selection, "indices": idx.tolist(), "indices_into": "source.x_train (validation removed)",
        "per_class": {"min": min(per_class), "max": max(per_class), "classes": len(per_class)},
        "budget_rule": f"ipc={options.ipc}" if options.ipc > 0 else f"m={options.m} spread over classes",
        **provenance,
    }
    if options.recipe == "representation_mse":
        model = target_model or get_target_model(ctx, source, options)
        targets = model.represent_pixels(images, source.mean, source.std).cpu().float()
        prov["target_model"] = {"path": model.path, "sha256": model.sha256, "quality": model.quality,
                                "feature_dim": model.feature_dim}
        prov["labels"] = "target model representations (the 'random + same recipe' control)"
        return DistilledSet.from_source(source, images, targets, label_kind="representation",
                                        recipe="representation_mse", method=method, options=options, **prov)
    if target_model is not None:
        prov["target_model"] = {"path": target_model.path, "sha256": target_model.sha256,
                                "quality": target_model.quality, "feature_dim": target_model.feature_dim}
    return DistilledSet.from_source(source, images, source.y_train[idx].clone(), label_kind="hard",
                                    recipe="hard_ce_dsa", method=method, options=options, **prov)
