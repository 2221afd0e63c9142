"""CIFAR-10 and CIFAR-100 from the official python release, read by torchvision
(``cifar-10-batches-py/`` and ``cifar-100-python/``; torchvision checks the files' md5)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ddbench.errors import DataError

from ._common import LayoutDataset, corrupt_message, download_enabled


class _Cifar(LayoutDataset):
    resolution = 32
    can_download = True
    tv_class: ClassVar[str] = ""

    def _tv(self, root: Path, train: bool, download: bool = False):
        import torchvision

        return getattr(torchvision.datasets, self.tv_class)(root=str(root), train=train, download=download)

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        self._tv(root, train=True, download=True)

    def _read(self, layout: Path):
        import numpy as np

        from ddbench.interfaces import RawSplits

        root = layout.parent
        try:
            train, test = self._tv(root, True), self._tv(root, False)
        except (RuntimeError, OSError, EOFError, ValueError, KeyError) as e:
            hint = ", or set DDBENCH_DOWNLOAD=1" if not download_enabled(self.download) else ""
            raise DataError(corrupt_message(layout, e) + hint) from e
        return RawSplits(np.ascontiguousarray(train.data, dtype=np.uint8), np.asarray(train.targets, np.int64),
                         np.ascontiguousarray(test.data, dtype=np.uint8), np.asarray(test.targets, np.int64),
                         [str(c) for c in train.classes], {"format": f"torchvision {self.tv_class}"})


class Cifar10(_Cifar):
    name = "cifar10"
    description = "CIFAR-10, official python release (50,000 train / 10,000 test, 10 classes, 32 px)"
    tv_class = "CIFAR10"
    candidates = ("cifar-10-batches-py", "cifar10/cifar-10-batches-py")
    markers = ("batches.meta", "data_batch_1", "test_batch")
    layout_hint = "'cifar-10-batches-py' folder (from cifar-10-python.tar.gz)"


class Cifar100(_Cifar):
    name = "cifar100"
    description = "CIFAR-100, official python release (50,000 train / 10,000 test, 100 fine classes, 32 px)"
    tv_class = "CIFAR100"
    candidates = ("cifar-100-python", "cifar100/cifar-100-python")
    markers = ("meta", "train", "test")
    layout_hint = "'cifar-100-python' folder (from cifar-100-python.tar.gz)"
