"""``none``: the no-pre-training reference. Returns an empty distilled set (label kind
``none``); the transfer task then fine-tunes a randomly initialised network ("w/o pre"
in Lee et al., ICLR 2024, Tables 1-2). See README.md."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.interfaces import Method
from ddbench.options import Options, option

from ddbench_plugins.paper import PAPER_RESOLUTION, paper_source_row  # noqa: F401 (re-exported)


@dataclasses.dataclass
class NoneOptions(Options):
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one); sets the "
                                          "resolution targets are resized to")


class NoPretraining(Method):
    """No distilled data at all: evaluation starts from a random initialisation."""

    name = "none"
    description = "no pre-training: an empty set; the task fine-tunes a randomly initialised network"
    label_kind = "none"
    Options = NoneOptions
    version = "1"
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "smoke": {}, "quick": {"resolution": 32}, "paper": {"resolution": 32},
    }
    default_sources: ClassVar[Mapping[str, str]] = {"quick": "tinyimagenet200_32_subset", "paper": "cifar100"}

    def preset_values(self, preset: str | None, source: Any = None, **context: Any) -> Mapping[str, Any]:
        if preset == "paper" and source is not None:
            return {"resolution": PAPER_RESOLUTION[paper_source_row(source)]}
        return super().preset_values(preset, **context)

    def distill(self, ctx, source, options):
        from ddbench.distilled import DistilledSet

        out = DistilledSet.empty(source, method=self.name)
        out.provenance = {"options": options.to_dict(), "note": "no pre-training reference (random init)",
                          "scaling": "nothing to scale: no data (the task's preset sizes the fine-tuning)"}
        return out


@hookimpl
def ddbench_register_methods(register):
    register(NoPretraining())
