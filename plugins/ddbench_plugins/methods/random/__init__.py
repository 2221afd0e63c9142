"""``random``: random real source images (the "Random" baseline of Lee et al., ICLR 2024;
protocol.md §2). See README.md.

With ``recipe=hard_ce_dsa`` (default) the set is a class-balanced random subset that keeps
its hard labels and is pre-trained like the other hard-label baselines. With
``recipe=representation_mse`` it is KRR-ST's control: exactly the random real images
KRR-ST initialises from for the same seed, with the target model's representations as
targets, pre-trained with KRR-ST's recipe (protocol §3.2) — data quality separated from
recipe, with no class-coverage difference.

This module must not import torch (``ddbench ls`` imports it); the work happens in
:mod:`.select`, imported inside :meth:`RandomSubset.distill`; the declarations it shares
with ``kmeans`` are in :mod:`ddbench_plugins.subsets`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from typing import ClassVar, Mapping

from ddbench import hookimpl
from ddbench.interfaces import Preset
from ddbench_plugins.matching import CIFAR10_SAMPLE, CIFAR10_SAMPLE_BUDGET
from ddbench_plugins.paper import QUICK_SOURCE
from ddbench_plugins.subsets import SubsetMethod, SubsetOptions, subset_presets
from ddbench_plugins.targets import target_options_dict

@dataclasses.dataclass
class RandomOptions(SubsetOptions):
    pass


class RandomSubset(SubsetMethod):
    """Random real training images: class-balanced (hard labels), or KRR-ST's initial draw
    (``recipe=representation_mse``)."""

    name = "random"
    description = "random real images (hard labels, or KRR-ST's initial images with target representations " \
                  "under recipe=representation_mse)"
    label_kind = "hard"
    Options = RandomOptions
    version = "1"
    #: the shared entries, plus the CIFAR-10 sample at IPC 10: the reference row beside DSA and DM
    #: in their sanity check (the from-scratch ``scratch`` task)
    presets: ClassVar[tuple[Preset, ...]] = subset_presets() + (
        Preset("quick", {"resolution": 32}, source=CIFAR10_SAMPLE, budget=CIFAR10_SAMPLE_BUDGET,
               scaling="IPC 10 on the cifar10_32 sample: the DSA/DM papers' Random row in miniature"),)
    default_sources: ClassVar[Mapping[str, str]] = {"quick": QUICK_SOURCE, "paper": "cifar100"}

    def cache_options(self, options: RandomOptions) -> dict[str, Any]:
        """A hard-label subset never reads the target model: its options stay out of the key."""
        out = options.to_dict()
        if options.recipe == "hard_ce_dsa":
            for name in target_options_dict(options):
                out.pop(name)
        return out

    def distill(self, ctx, source, options):
        from .select import CONTROL_SELECTION, build_set, random_indices

        images, ipc = int(ctx.budget.images), ctx.budget.ipc
        idx, per_class = random_indices(ctx, source, options, images=images, ipc=ipc or 0)
        selection = (CONTROL_SELECTION if options.recipe == "representation_mse"
                     else "uniformly at random within each class, redrawn per seed")
        return build_set(ctx, source, options, idx, per_class, method=self.name, selection=selection)


@hookimpl
def ddbench_register_methods(register):
    register(RandomSubset())
