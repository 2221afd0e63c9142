"""What the real-subset baselines (``random``, ``kmeans``) declare alike: options, presets,
label kind by recipe. A shared declaration module, not a method: each method imports it,
never the other method (their torch side shares :mod:`ddbench.toolkit`)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from ddbench.errors import OptionError
from ddbench.interfaces import Method, Preset
from ddbench.options import option
from ddbench_plugins.paper import PAPER_SOURCES, QUICK_BUDGET, QUICK_SOURCE
from ddbench_plugins.targets import TARGET_PRESETS, TargetOptions

SUBSET_RECIPES = ("hard_ce_dsa", "representation_mse")


@dataclasses.dataclass
class SubsetOptions(TargetOptions):
    """Recipe and resolution of a real-subset baseline, plus the target model's ``target_*``
    options (read only with ``recipe=representation_mse``, or by a method whose selection uses
    the target model). The budget is the run's (``--ipc`` / ``--images``)."""

    recipe: str = option("hard_ce_dsa", "pre-training recipe of the set: hard_ce_dsa (hard labels, CE + DSA) or "
                                        "representation_mse (targets = the target model's representations, "
                                        "KRR-ST's recipe: the 'random + same recipe' control)")
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one)")

    def validate(self) -> None:
        super().validate()
        if self.recipe not in SUBSET_RECIPES:
            raise OptionError(f"recipe must be one of {', '.join(SUBSET_RECIPES)}, got {self.recipe!r}")
        if self.resolution is not None and self.resolution < 1:
            raise OptionError(f"resolution must be a positive number of pixels, got {self.resolution}")


#: how each preset departs from the paper; written into every record
SCALING: dict[str, str] = {
    "smoke": "smoke test: 8 images, tiny target model; not a result",
    "quick": "m 200 (1 per class on tinyimagenet200_32_subset) = KRR-ST's quick m (paper: 1000-2000, 10 per "
             "class); 32 px; target model = TARGET_PRESETS['quick'] (ResNet18 x1/4, shared with KRR-ST)",
}


def subset_presets() -> tuple[Preset, ...]:
    """The real-subset baselines' presets: the budgets equal KRR-ST's for the same entry
    (tests/test_baselines.py checks)."""
    from ddbench.types import Budget

    return (
        Preset("smoke", {**TARGET_PRESETS["smoke"]}, budget=Budget(images=8), any_budget=True,
               scaling=SCALING["smoke"]),
        Preset("quick", {**TARGET_PRESETS["quick"], "resolution": 32}, source=QUICK_SOURCE, budget=QUICK_BUDGET,
               scaling=SCALING["quick"]),
        *(Preset("paper", {**TARGET_PRESETS["paper"], "resolution": resolution}, source=source, budget=budget,
                 scaling=f"unscaled: m as protocol §1.2 for {source}")
          for source, (resolution, budget) in PAPER_SOURCES.items()),
    )


class SubsetMethod(Method):
    """What the real-subset baselines share: options, presets, label kind by recipe."""

    Options = SubsetOptions
    recipes = SUBSET_RECIPES
    presets: ClassVar[tuple[Preset, ...]] = subset_presets()
    default_sources: ClassVar[Mapping[str, str]] = {"paper": "cifar100"}

    def label_kind_for(self, options: SubsetOptions) -> str:
        return "representation" if options.recipe == "representation_mse" else "hard"

    def source_resolution(self, options: SubsetOptions) -> int | None:
        return options.resolution

    def distill(self, ctx, source, options):  # pragma: no cover - abstract
        raise NotImplementedError
