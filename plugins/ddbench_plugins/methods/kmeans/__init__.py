"""``kmeans``: per class, k-means in the target model's feature space, keeping the real
image nearest each centroid (the "Kmeans" baseline of Lee et al., ICLR 2024;
protocol.md §2). See README.md.

Recipe and target-model options are shared with ``random``
(:class:`~ddbench_plugins.subsets.SubsetOptions`). This module must not import
torch; the work happens in :mod:`.cluster`, imported inside :meth:`KMeansSubset.distill`.
"""

from __future__ import annotations

import dataclasses

from ddbench import hookimpl
from ddbench.errors import OptionError
from ddbench.options import option
from ddbench_plugins.subsets import SubsetMethod, SubsetOptions


@dataclasses.dataclass
class KMeansOptions(SubsetOptions):
    kmeans_iters: int = option(100, "maximum Lloyd iterations per class (stops earlier when assignments settle)")
    kmeans_init: str = option("k-means++", "centroid initialisation: k-means++ (seeded) or random (seeded)")

    def validate(self) -> None:
        super().validate()
        if self.kmeans_iters < 1:
            raise OptionError(f"kmeans_iters must be >= 1, got {self.kmeans_iters}")
        if self.kmeans_init not in ("k-means++", "random"):
            raise OptionError(f"kmeans_init must be k-means++ or random, got {self.kmeans_init!r}")


class KMeansSubset(SubsetMethod):
    """Per class, the real images nearest the k-means centroids of the target model's features."""

    name = "kmeans"
    description = "per class, real images nearest the k-means centroids in the target model's feature space"
    label_kind = "hard"
    Options = KMeansOptions
    version = "1"

    def distill(self, ctx, source, options):
        from .cluster import kmeans_indices

        return kmeans_indices(ctx, source, options, images=int(ctx.budget.images), ipc=ctx.budget.ipc or 0,
                              method=self.name)


@hookimpl
def ddbench_register_methods(register):
    register(KMeansSubset())
