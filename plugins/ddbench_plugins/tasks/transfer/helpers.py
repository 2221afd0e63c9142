"""Small helpers of the ``transfer`` task (seed offsets, target kinds, checks of a set): the
shared toolkit's (:mod:`ddbench.toolkit.transfer`), kept under these names for callers of
the first version."""

from ddbench.toolkit.transfer import (OFFSET_FINETUNE_BASE, check_set, is_fine_grained,  # noqa: F401
                                      target_offset)
