"""``none``: the no-pre-training reference. Returns an empty distilled set (label kind
``none``); the transfer task then fine-tunes a randomly initialised network ("w/o pre"
in Lee et al., ICLR 2024, Tables 1-2). See README.md."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping

from ddbench import hookimpl
from ddbench.interfaces import Method, Preset
from ddbench.options import Options, option
from ddbench_plugins.paper import PAPER_SOURCES, QUICK_SOURCE


@dataclasses.dataclass
class NoneOptions(Options):
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one); sets the "
                                          "resolution targets are resized to")


class NoPretraining(Method):
    """No distilled data at all: evaluation starts from a random initialisation."""

    name = "none"
    description = "no pre-training: an empty set; the task fine-tunes a randomly initialised network"
    label_kind = "none"
    reference = True
    takes_budget = False
    Options = NoneOptions
    version = "1"
    presets: ClassVar[tuple[Preset, ...]] = (
        Preset("smoke", {}, scaling="nothing to scale: no data"),
        Preset("quick", {"resolution": 32}, source=QUICK_SOURCE, scaling="nothing to scale: no data"),
        *(Preset("paper", {"resolution": resolution}, source=source, scaling="nothing to scale: no data")
          for source, (resolution, _budget) in PAPER_SOURCES.items()),
    )
    default_sources: ClassVar[Mapping[str, str]] = {"paper": "cifar100"}

    def source_resolution(self, options: NoneOptions) -> int | None:
        return options.resolution

    def distill(self, ctx, source, options):
        from ddbench.distilled import DistilledSet
        from ddbench.types import Provenance

        out = DistilledSet.empty(source, method=self.name)
        out.provenance = Provenance(options=options.to_dict(), selection="no images: the no-pre-training reference",
                                    scaling="nothing to scale: no data (the task's preset sizes the fine-tuning)")
        return out


@hookimpl
def ddbench_register_methods(register):
    register(NoPretraining())
