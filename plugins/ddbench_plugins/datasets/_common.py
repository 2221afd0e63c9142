"""Shared plumbing for the built-in datasets: where to look, when to download, what to
say when nothing is found, and image decoding. No torch, no numpy at import time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import ddbench
from ddbench import paths
from ddbench.errors import DataError
from ddbench.interfaces import Dataset

#: how each data folder was found, shown by ``ddbench ls datasets``
VIA_ENV = "DDBENCH_DATA"
VIA_HOME = "$DDBENCH_HOME/data"
VIA_CWD = "../shared/data (next to the working directory)"
VIA_REPO = "../shared/data (next to the repository)"


def search_folders() -> list[tuple[Path, str]]:
    """The data folders in search order, each with how it was found.

    ``ddbench.paths.data_search_path()`` (``DDBENCH_DATA`` folders, then
    ``$DDBENCH_HOME/data``); when ``DDBENCH_DATA`` is unset, also ``../shared/data``
    relative to the working directory and to the repository root, so the sample data
    of a checkout is found without configuration. Duplicates (same real path) are
    dropped, keeping the first.
    """
    env_set = bool(os.environ.get("DDBENCH_DATA", "").strip())
    found = paths.data_search_path()
    out: list[tuple[Path, str]] = [(p, VIA_ENV) for p in found[:-1]] + [(found[-1], VIA_HOME)]
    if not env_set:
        try:
            out.append((Path.cwd().parent / "shared" / "data", VIA_CWD))
        except OSError:  # the working directory was removed
            pass
        out.append((Path(ddbench.__file__).resolve().parents[1].parent / "shared" / "data", VIA_REPO))
    seen: set[str] = set()
    unique = []
    for p, via in out:
        try:
            key = str(p.resolve())
        except OSError:
            key = str(p.absolute())
        if key not in seen:
            seen.add(key)
            unique.append((p, via))
    return unique


def download_root() -> Path:
    """Where downloads go: ``$DDBENCH_HOME/data``."""
    root = paths.home() / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root


def download_enabled(flag: bool = False) -> bool:
    return bool(flag) or os.environ.get("DDBENCH_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def stat_identity(path: Path, files: Iterable[str] = ()) -> dict[str, Any]:
    """Path, size and mtime of ``path`` (and of ``files`` inside it): changes when the data does."""
    def one(p: Path) -> list[Any]:
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]

    ident: dict[str, Any] = {"path": str(path.resolve()), "stat": one(path)}
    extra = {f: one(path / f) for f in files if (path / f).exists()}
    if extra:
        ident["files"] = extra
    return ident


def load_rgb(path: Any, size: int | tuple[int, int] | None):
    """Decode one image to uint8 (H, W, 3); resize to ``size`` with Pillow's bicubic
    filter (antialiased when shrinking) when given and different."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            wh = (size, size) if isinstance(size, int) else (size[1], size[0])
            if im.size != wh:
                im = im.resize(wh, Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8)


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Map with a few threads (Pillow releases the GIL while decoding)."""
    if len(items) < 64:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=64))


def stack_images(images: Sequence[Any], where: str):
    import numpy as np

    if not images:
        raise DataError(f"{where}: no images found; the folder looks incomplete: re-download or delete it")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{where}: images have different sizes {sorted(shapes)[:3]}...; expected one size")
    return np.stack(images).astype(np.uint8, copy=False)


class LayoutDataset(Dataset):
    """A dataset stored in an official release layout under one of the data folders.

    Subclasses set ``candidates`` (folders, relative to a data folder, that may hold the
    layout; the first is where a download lands), ``markers`` (files or folders inside the
    layout that must exist), and implement ``_read(layout_dir)``. ``can_download`` and
    ``_download(root)`` add downloading with ``DDBENCH_DOWNLOAD=1`` or ``download=True``.
    """

    candidates: ClassVar[tuple[str, ...]] = ()
    markers: ClassVar[tuple[str, ...]] = ()
    #: what the user must put in a data folder, in words
    layout_hint: ClassVar[str] = ""
    #: how to get the data when it cannot be downloaded automatically
    manual_hint: ClassVar[str] = ""
    can_download: ClassVar[bool] = False
    #: bump when the loader's output changes
    version: ClassVar[str] = "1"

    def __init__(self, download: bool = False) -> None:
        self.download = download

    # -- finding ---------------------------------------------------------------------
    def _is_layout(self, d: Path) -> bool:
        return all((d / m).exists() for m in self.markers)

    def find(self) -> tuple[Path, str] | None:
        """(layout folder, how its data folder was found), or None."""
        for folder, via in search_folders():
            for c in self.candidates:
                d = folder / c
                if self._is_layout(d):
                    return d, via
        return None

    def locate(self) -> str | None:
        hit = self.find()
        return str(hit[0]) if hit else None

    def searched(self) -> list[str]:
        return [str(folder / c) for folder, _ in search_folders() for c in self.candidates]

    def how_to_get(self) -> str:
        text = (f"put the official {self.layout_hint} in one of those places, or point DDBENCH_DATA at "
                f"the folder that holds it (DDBENCH_DATA=/path/to/data, ':'-separated for several)")
        if self.can_download:
            text += ", or set DDBENCH_DOWNLOAD=1 (needs internet) to download it into $DDBENCH_HOME/data"
        if self.manual_hint:
            text += f"; {self.manual_hint}"
        return text

    def identity(self) -> dict[str, Any]:
        hit = self.find()
        if hit is None:
            return {"path": None}
        return stat_identity(hit[0], self.markers)

    def require(self) -> tuple[Path, str]:
        hit = self.find()
        if hit is None and self.can_download and download_enabled(self.download):
            self._download(download_root())
            hit = self.find()
        if hit is None:
            raise DataError(not_found_message(self))
        return hit

    # -- loading ---------------------------------------------------------------------
    def load(self):
        layout, via = self.require()
        raw = self._read(layout)
        raw.info.setdefault("location", str(layout))
        raw.info.setdefault("found_via", via)
        return raw

    def _read(self, layout: Path):  # pragma: no cover - abstract
        raise NotImplementedError

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        raise NotImplementedError


def not_found_message(ds: Dataset) -> str:
    places = ds.searched()
    where = ", ".join(places) if places else "(no data folders)"
    hint = ds.how_to_get()
    return f"dataset {ds.name!r} was not found. Looked in: {where}. To get it: {hint}."


def corrupt_message(where: Any, err: BaseException) -> str:
    return (f"{where}: cannot read it ({type(err).__name__}: {err}); it looks corrupt or truncated: "
            f"re-download or delete it")
