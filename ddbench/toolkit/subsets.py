"""Choosing real source images: per-class budgets, KRR-ST's class-agnostic initial draw, and
turning chosen indices into a :class:`~ddbench.distilled.DistilledSet` (hard labels, or a
target model's representations).

Two methods that call :func:`initial_draw` with the same context seed and size draw the same
images: that is how the ``random`` control starts from exactly KRR-ST's initial images.
"""

from __future__ import annotations

from typing import Any

import torch

from ddbench.errors import DataError

#: seed offset (``ctx.generator(INITIAL_DRAW_OFFSET)``) of KRR-ST's initial draw of real images
INITIAL_DRAW_OFFSET = 7001
#: seed offset of class-balanced selection (the quota's extra images, then the random picks);
#: ``random`` and ``kmeans`` share it, so their per-class quotas agree for a seed
SELECT_OFFSET = 11


def class_indices(source: Any) -> list[torch.Tensor]:
    """Indices into ``source.x_train`` of each class, in label order."""
    y = source.y_train
    return [(y == c).nonzero()[:, 0] for c in range(int(source.num_classes))]


def per_class_quota(counts: list[int], images: int, ipc: int, generator: torch.Generator) -> list[int]:
    """Images per class: ``ipc`` each when ipc > 0, else ``images`` spread as evenly as possible
    (``images // C`` each; the ``images % C`` extra ones go to seeded-random classes). A class
    never gets more images than it has; a budget larger than the data is an error."""
    k = len(counts)
    if ipc > 0:
        quota = [ipc] * k
    else:
        base, extra = divmod(int(images), k)
        quota = [base] * k
        if extra:
            for c in torch.randperm(k, generator=generator)[:extra].tolist():
                quota[c] += 1
    short = [c for c in range(k) if quota[c] > counts[c]]
    if short:
        c = short[0]
        raise DataError(f"the budget asks for {quota[c]} images of class {c}, which has only {counts[c]} training "
                        f"images ({len(short)} class(es) are short); lower the budget")
    return quota


def random_draw(n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """``m`` distinct indices out of ``n``, class-agnostic, in draw order."""
    if not 0 <= m <= n:
        raise DataError(f"cannot draw {m} distinct images out of {n}")
    return torch.randperm(n, generator=generator)[:m]


def initial_draw_generator(ctx: Any) -> torch.Generator:
    """The (CPU) generator of KRR-ST's initial draw for ``ctx.seed``."""
    return ctx.generator(INITIAL_DRAW_OFFSET, None)


def initial_draw(ctx: Any, n: int, m: int) -> torch.Tensor:
    """The ``m`` training-image indices (out of ``n``) KRR-ST initialises from for ``ctx.seed``."""
    return random_draw(n, m, initial_draw_generator(ctx))


def target_model_record(model: Any) -> Any:
    """What a distilled set's provenance says about the target model it used."""
    from ddbench.types import ArtifactRef

    return ArtifactRef(path=model.path, sha256=model.sha256,
                       info={"quality": model.quality, "feature_dim": model.feature_dim})


def subset_set(source: Any, idx: torch.Tensor, *, recipe: str, method: str, selection: str,
               per_class: list[int] | None = None, options: Any = None, target_model: Any = None,
               **provenance: Any):
    """The distilled set of the real images ``source.x_train[idx]``, normalised with the source's
    statistics. ``recipe="hard_ce_dsa"``: their hard labels. ``recipe="representation_mse"``:
    ``target_model.represent_pixels(images, mean, std)`` as targets (``target_model`` required).

    The provenance records ``selection`` (how the images were chosen, in words), the indices,
    the per-class counts when given, the target model when given (either recipe), and
    ``provenance``."""
    from ddbench.distilled import DistilledSet

    images = source.x_train[idx]
    prov: dict[str, Any] = {"selection": selection, "indices": idx.tolist(),
                            "indices_into": "source.x_train (validation removed)", "depends_on": {}}
    if per_class is not None:
        prov["per_class"] = {"min": min(per_class), "max": max(per_class), "classes": len(per_class)}
    prov.update(provenance)
    if target_model is not None:
        prov["depends_on"] = {"target_model": target_model_record(target_model)}
    if recipe == "representation_mse":
        if target_model is None:
            raise ValueError("recipe representation_mse needs the target model whose representations are the targets")
        targets = target_model.represent_pixels(images, source.mean, source.std).cpu().float()
        return DistilledSet.from_source(source, images, targets, label_kind="representation",
                                        recipe="representation_mse", method=method, options=options, **prov)
    if recipe != "hard_ce_dsa":
        raise ValueError(f"a subset of real images has recipe hard_ce_dsa or representation_mse, not {recipe!r}")
    return DistilledSet.from_source(source, images, source.y_train[idx].clone(), label_kind="hard",
                                    recipe="hard_ce_dsa", method=method, options=options, **prov)
