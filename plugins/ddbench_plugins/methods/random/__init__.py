"""``random``: a class-balanced random subset of real source images, redrawn per seed
(the "Random" baseline of Lee et al., ICLR 2024; protocol.md §2). See README.md.

With ``recipe=hard_ce_dsa`` (default) the set keeps its hard labels and is pre-trained
like the other hard-label baselines. With ``recipe=representation_mse`` its targets are
the target model's representations of the chosen images and it is pre-trained with
KRR-ST's recipe: the "random + same recipe" control that separates data quality from
recipe (protocol §3.2).

This module must not import torch (``ddbench ls`` imports it); the work happens in
:mod:`.select`, imported inside :meth:`RandomSubset.distill`. :class:`SubsetOptions`,
``budget_presets`` and ``paper_budget`` are shared with the ``kmeans`` method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.errors import OptionError
from ddbench.interfaces import Method
from ddbench.options import option
from ddbench_plugins.paper import PAPER_RESOLUTION, paper_source_row
from ddbench_plugins.targets.barlow_twins import TARGET_PRESETS, TargetOptions

SUBSET_RECIPES = ("hard_ce_dsa", "representation_mse")


@dataclasses.dataclass
class SubsetOptions(TargetOptions):
    """Budget and recipe of a real-image subset, plus the target model's ``target_*`` options
    (used for ``recipe=representation_mse``, and by Kmeans for its feature space)."""

    m: int = option(1000, "total number of images, spread over the classes as evenly as possible (the extra "
                          "images of an uneven split go to seeded-random classes); ignored when ipc > 0")
    ipc: int = option(0, "images per class; > 0 overrides m (budget = ipc x classes)")
    recipe: str = option("hard_ce_dsa", "pre-training recipe of the set: hard_ce_dsa (hard labels, CE + DSA) or "
                                        "representation_mse (targets = the target model's representations, "
                                        "KRR-ST's recipe: the 'random + same recipe' control)")
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one)")

    def validate(self) -> None:
        super().validate()
        if self.ipc < 0 or self.m < 0:
            raise OptionError(f"ipc and m must be >= 0, got ipc={self.ipc}, m={self.m}")
        if self.ipc == 0 and self.m == 0:
            raise OptionError("the budget is empty: set m (total images) or ipc (images per class)")
        if self.recipe not in SUBSET_RECIPES:
            raise OptionError(f"recipe must be one of {', '.join(SUBSET_RECIPES)}, got {self.recipe!r}")
        if self.resolution is not None and self.resolution < 1:
            raise OptionError(f"resolution must be a positive number of pixels, got {self.resolution}")


#: budgets per preset; they equal KRR-ST's ``num_images`` for the same preset (tests/test_baselines.py checks)
BUDGETS: dict[str, dict[str, Any]] = {
    "smoke": {"m": 8},
    "quick": {"m": 200, "resolution": 32},
}
#: protocol §1.2: m per paper source (CIFAR-100 1000 = 10 per class; TinyImageNet 2000 = 10 per class)
PAPER_BUDGET = {"cifar100": 1000, "tinyimagenet": 2000, "imagenet64": 1000}


#: how each preset departs from the paper; written into the set's provenance
SCALING: dict[str, str] = {
    "smoke": "smoke test: 8 images, tiny target model; not a result",
    "quick": "m 200 (1 per class on tinyimagenet200_32_subset) = KRR-ST's quick m (paper: 1000-2000, 10 per "
             "class); 32 px; target model = TARGET_PRESETS['quick'] (ResNet18 x1/4, shared with KRR-ST)",
    "paper": "unscaled: m as protocol §1.2 for the source",
}


def budget_presets() -> dict[str, dict[str, Any]]:
    return {
        "smoke": {**TARGET_PRESETS["smoke"], **BUDGETS["smoke"]},
        "quick": {**TARGET_PRESETS["quick"], **BUDGETS["quick"]},
        "paper": {**TARGET_PRESETS["paper"], "m": PAPER_BUDGET["cifar100"], "resolution": 32},
    }


def paper_budget(source: Any) -> dict[str, Any]:
    row = paper_source_row(source)
    return {**TARGET_PRESETS["paper"], "m": PAPER_BUDGET[row], "resolution": PAPER_RESOLUTION[row]}


class SubsetMethod(Method):
    """Shared preset logic of the real-subset baselines."""

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = budget_presets()
    default_sources: ClassVar[Mapping[str, str]] = {"quick": "tinyimagenet200_32_subset", "paper": "cifar100"}

    def preset_values(self, preset: str | None, source: Any = None, **context: Any) -> Mapping[str, Any]:
        """``paper`` picks m and the resolution by ``source`` (protocol §1.2)."""
        if preset == "paper" and source is not None:
            return paper_budget(source)
        return super().preset_values(preset, **context)

    def distill(self, ctx, source, options):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass
class RandomOptions(SubsetOptions):
    pass


class RandomSubset(SubsetMethod):
    """A class-balanced random subset of the source's training images."""

    name = "random"
    description = "class-balanced random real images (hard labels, or target representations with " \
                  "recipe=representation_mse)"
    label_kind = "hard"
    Options = RandomOptions
    version = "1"

    def distill(self, ctx, source, options):
        from .select import build_set, random_indices

        idx, per_class = random_indices(ctx, source, options)
        return build_set(ctx, source, options, idx, per_class, method=self.name,
                         selection="uniformly at random within each class, redrawn per seed")


@hookimpl
def ddbench_register_methods(register):
    register(RandomSubset())
