"""``gaussian``: the Gaussian-noise baseline of target-data-free knowledge distillation (Lee
et al., ICLR 2024, Table 4, "Gaussian"). See README.md.

The set is seeded N(0, I) noise of the budget's shape in the normalised input space, with
no targets (label kind ``noise``); the ``kd`` task draws fresh noise of each batch's shape
anyway and teaches a randomly initialised student. Every other task refuses it (the host
checks ``Task.label_kinds``). This module must not import torch.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from ddbench import hookimpl
from ddbench.interfaces import Method, Preset
from ddbench.options import Options, option
from ddbench.types import Budget
from ddbench_plugins.paper import PAPER_SOURCES, QUICK_BUDGET, QUICK_SOURCE

#: the set's recipe: nothing to pre-train on (the kd task skips pre-training for noise sets)
RECIPE = "none"
OFFSET_NOISE = 7


@dataclasses.dataclass
class GaussianOptions(Options):
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one); the "
                                          "noise's height and width")


class Gaussian(Method):
    """N(0, I) noise images in the normalised space (the data-free row of the KD table)."""

    name = "gaussian"
    description = "Gaussian noise N(0, I) of the budget's shape (the data-free KD baseline; only task kd takes it)"
    label_kind = "noise"
    recipes = (RECIPE,)
    reference = False
    Options = GaussianOptions
    version = "1"
    #: the budgets and sources of the ``random`` baseline (its hard-label entries)
    presets: ClassVar[tuple[Preset, ...]] = (
        Preset("smoke", {}, budget=Budget(images=8), any_budget=True, scaling="smoke test: 8 noise images"),
        Preset("quick", {"resolution": 32}, source=QUICK_SOURCE, budget=QUICK_BUDGET,
               scaling="m 200 noise images at 32 px (the quick tier's budget)"),
        *(Preset("paper", {"resolution": resolution}, source=source, budget=budget,
                 scaling=f"unscaled: m as protocol §1.2 for {source}")
          for source, (resolution, budget) in PAPER_SOURCES.items()),
    )
    default_sources: ClassVar[Mapping[str, str]] = {"quick": QUICK_SOURCE, "paper": "tinyimagenet"}

    def seed_varies(self) -> str:
        return "noise seed + evaluation seed (paired across methods)"

    def source_resolution(self, options: GaussianOptions) -> int | None:
        return options.resolution

    def distill(self, ctx, source, options):
        import torch

        from ddbench.distilled import DistilledSet

        m, r = int(ctx.budget.images), int(source.resolution)
        images = torch.randn((m, 3, r, r), generator=ctx.generator(OFFSET_NOISE))
        return DistilledSet(images=images, targets=torch.zeros(m, 0), label_kind="noise", recipe=RECIPE,
                            mean=tuple(source.mean), std=tuple(source.std), num_classes=None, source=source.name,
                            resolution=r, method=self.name, value_range=None,
                            provenance={"options": options.to_dict(),
                                        "selection": "N(0, I) noise in the normalised space, seeded by ctx.seed"})


@hookimpl
def ddbench_register_methods(register):
    register(Gaussian())
