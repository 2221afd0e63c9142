"""The ``.npz`` sample format: one ``numpy.savez_compressed`` archive per dataset
(``x_train``/``x_test`` uint8 (N, H, W, 3), ``y_train``/``y_test`` int64 (N,),
``class_names`` unicode (num_classes,), optional metadata such as ``source_repo``).

Every ``*.npz`` file directly inside a data folder is a dataset named by its file stem;
the first folder in the search order wins when two hold the same stem.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

from ddbench.errors import DataError
from ddbench.interfaces import Dataset

from ._common import corrupt_message, search_folders, stat_identity

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names")
#: what reading a damaged archive raises (zlib.error: a corrupt compressed member)
_READ_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, KeyError)


class NpzDataset(Dataset):
    """One ``.npz`` file in the sample format."""

    version = "1"

    def __init__(self, name: str, path: Path, found_via: str, shadowed: list[Path] | None = None,
                 replaces: str | None = None) -> None:
        self.name = name  # type: ignore[misc]  # per instance, not per class
        self.path = Path(path)
        #: how the folder holding it was found (DDBENCH_DATA, $DDBENCH_HOME/data, ../shared/data)
        self.found_via = found_via
        #: files with the same stem in later folders, ignored
        self.shadowed = list(shadowed or [])
        #: the built-in dataset this file stands in for, if its stem is a built-in name
        self.replaces = replaces
        self.description = f".npz dataset {self.path.name} ({found_via})"
        if replaces:
            self.description += f"; used instead of the built-in {replaces!r} loader"

    def locate(self) -> str | None:
        return str(self.path) if self.path.is_file() else None

    def searched(self) -> list[str]:
        return [str(self.path)]

    def how_to_get(self) -> str:
        return (f"the file {self.path} was there when the plugins loaded but is gone now; put it back, "
                f"or point DDBENCH_DATA at the folder that holds {self.path.name}")

    def identity(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"path": str(self.path)}
        return stat_identity(self.path)

    def read_arrays(self) -> dict[str, Any]:
        """All arrays of the file (no pickles), or DataError for a missing or damaged file."""
        import numpy as np

        if not self.path.is_file():
            from ._common import not_found_message

            raise DataError(not_found_message(self))
        try:
            with np.load(self.path, allow_pickle=False) as d:
                return {k: d[k] for k in d.files}
        except _READ_ERRORS as e:
            raise DataError(corrupt_message(self.path, e)) from e

    def load(self):
        from ddbench.data import check_raw
        from ddbench.interfaces import RawSplits

        arrays = self.read_arrays()
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise DataError(f"{self.path}: missing key(s) {', '.join(missing)}; a ddbench .npz dataset needs "
                            f"{', '.join(REQUIRED_KEYS)} (see the data README)")
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{self.path}: class_names has dtype {names.dtype} and shape {names.shape}; "
                            f"expected a 1-D unicode array, one name per class")
        info = {"location": str(self.path), "found_via": self.found_via, "format": "npz"}
        for k, v in arrays.items():
            if k not in REQUIRED_KEYS and v.ndim == 0 and v.dtype.kind in "US":
                info[k] = str(v)  # source_repo, source_commit, ...
        raw = RawSplits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                        [str(n) for n in names], info)
        return check_raw(raw, str(self.path))


def content_sha256(arrays: Mapping[str, Any]) -> str:
    """The data README's content hash: for each key in sorted order, its name, dtype
    (``str(array.dtype)``), shape (``str(array.shape)``) and raw C-order bytes."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def scan(reserved: frozenset[str] = frozenset()) -> list[NpzDataset]:
    """One :class:`NpzDataset` per ``*.npz`` stem in the data folders (first folder wins)."""
    found: dict[str, NpzDataset] = {}
    for folder, via in search_folders():
        try:
            files = sorted(p for p in folder.glob("*.npz") if p.is_file())
        except OSError:
            continue
        for p in files:
            if p.stem in found:
                found[p.stem].shadowed.append(p)
            else:
                found[p.stem] = NpzDataset(p.stem, p, via, replaces=p.stem if p.stem in reserved else None)
    return list(found.values())
