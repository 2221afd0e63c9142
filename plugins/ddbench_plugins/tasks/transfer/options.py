"""Options of the ``transfer`` task (defaults: the paper, source CIFAR-100): the shared
pre-train/fine-tune options of :mod:`ddbench.toolkit.transfer_options`, unchanged."""

from __future__ import annotations

import dataclasses

from ddbench.toolkit.transfer_options import EVAL_SPLITS, FINE_GRAINED, FinetuneOptions  # noqa: F401 (public)


@dataclasses.dataclass
class TransferOptions(FinetuneOptions):
    """Options of the transfer task (defaults: the paper, source CIFAR-100)."""
