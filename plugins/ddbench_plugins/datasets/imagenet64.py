"""Downsampled ImageNet 64x64 (Chrabaszcz, Loshchilov & Hutter, 2017), official npz release:
``Imagenet64_train_npz/train_data_batch_{1..10}.npz`` and ``Imagenet64_val/val_data.npz``,
each with ``data`` uint8 (N, 12288) (CHW flattened: 64x64 red, then green, then blue) and
``labels`` 1-based. Class names come from ``map_clsloc.txt`` (ILSVRC devkit: ``wnid id
name``) when it lies in the layout folder or one of the two sub-folders; otherwise the
labels are named ``class_0000`` ...

The full training set is 1.28 M images, ~15.7 GB as uint8 (4x that as float32 once
prepared): it needs a large machine.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ddbench.errors import DataError

from ._common import LayoutDataset, corrupt_message

_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, KeyError)


def _batch(path: Path):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as d:
            data, labels = d["data"], d["labels"]
    except _ERRORS as e:
        raise DataError(corrupt_message(path, e)) from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 64 * 64:
        raise DataError(f"{path}: data has dtype {data.dtype} and shape {data.shape}; expected uint8 (N, 12288)")
    labels = np.asarray(labels).reshape(-1).astype(np.int64) - 1
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    x = data.reshape(-1, 3, 64, 64).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels


def _class_names(layout: Path, n: int = 1000) -> list[str]:
    for p in (layout / "map_clsloc.txt", layout / "Imagenet64_train_npz" / "map_clsloc.txt",
              layout / "Imagenet64_val" / "map_clsloc.txt"):
        if p.is_file():
            names = {}
            for line in p.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1].isdigit():
                    names[int(parts[1]) - 1] = parts[2]
            if len(names) == n:
                return [names[i] for i in range(n)]
    return [f"class_{i:04d}" for i in range(n)]


class ImageNet64(LayoutDataset):
    name = "imagenet64"
    description = "ImageNet 64x64 (downsampled ImageNet, npz release; 1.28M train / 50,000 val as test, 1000 classes)"
    resolution = 64
    candidates = (".", "imagenet64")
    markers = ("Imagenet64_train_npz/train_data_batch_1.npz", "Imagenet64_val/val_data.npz")
    layout_hint = ("'Imagenet64_train_npz' and 'Imagenet64_val' folders (from Imagenet64_train_npz.zip and "
                   "Imagenet64_val.zip)")
    manual_hint = ("they cannot be downloaded automatically: sign in at https://image-net.org/download-images, "
                   "download the 64x64 downsampled npz files and unzip them into one data folder")

    def searched(self) -> list[str]:
        return [f"{p}/Imagenet64_train_npz and {p}/Imagenet64_val" for p in super().searched()]

    def _read(self, layout: Path):
        import numpy as np

        from ddbench.interfaces import RawSplits

        files = sorted((layout / "Imagenet64_train_npz").glob("train_data_batch_*.npz"),
                       key=lambda p: int(p.stem.rsplit("_", 1)[-1]) if p.stem.rsplit("_", 1)[-1].isdigit() else 0)
        parts = [_batch(p) for p in files]
        x_train = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        y_train = np.concatenate([p[1] for p in parts])
        del parts
        x_test, y_test = _batch(layout / "Imagenet64_val" / "val_data.npz")
        names = _class_names(layout)
        return RawSplits(x_train, y_train, x_test, y_test, names,
                         {"format": "Imagenet64 npz", "train_batches": [p.name for p in files]})
