"""Small helpers of the ``transfer`` task: seed offsets, target kinds, checks of a set."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from ddbench.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

#: seed offsets of the task's phases (pre-training uses recipes.OFFSET_*, 101-103)
OFFSET_FINETUNE_BASE = 10_000


def target_offset(name: str) -> int:
    """A per-target seed offset that does not depend on the target's position in the list."""
    return OFFSET_FINETUNE_BASE + (zlib.crc32(name.encode()) % 1_000_000) * 10


def is_fine_grained(name: str, prefixes: list[str]) -> bool:
    low = name.lower()
    return any(low.startswith(p.lower()) for p in prefixes)


def check_set(distilled: "DistilledSet", source: "PreparedData") -> None:
    """Normalisation and pixel space travel with the set; check them against the source."""
    if distilled.source and distilled.source != source.name:
        raise DataError(f"the distilled set was made from {distilled.source!r} but the run's source is "
                        f"{source.name!r}; pass --source {distilled.source}")
    if int(distilled.resolution) != int(source.resolution):
        raise DataError(f"the distilled set is at {distilled.resolution} px but the source was prepared at "
                        f"{source.resolution} px")
    if distilled.label_kind == "none":
        if distilled.num_images:
            raise DataError(f"a set with label kind 'none' must be empty; this one has {distilled.num_images} images")
        return
    if distilled.num_images == 0:
        raise DataError(f"the distilled set from {distilled.method or '?'} is empty but its label kind is "
                        f"{distilled.label_kind!r}; only the 'none' reference may be empty")
    distilled.check_preparation(source)
