"""Prepared datasets: float tensors at a resolution, normalisation statistics computed
from the training split, and a seeded class-balanced validation split. Cached."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch


@dataclasses.dataclass
class PreparedData:
    name: str
    resolution: int
    num_classes: int
    class_names: list[str]
    x_train: torch.Tensor  # float32 (N, 3, R, R) in [0, 1]; the validation images are NOT in here
    y_train: torch.Tensor  # int64 (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, float, float]  # per channel, from x_train at this resolution
    std: tuple[float, float, float]
    content_hash: str  # sha256 over the prepared tensors
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "resolution": self.resolution, "num_classes": self.num_classes,
                "n_train": len(self.y_train), "n_val": len(self.y_val), "n_test": len(self.y_test),
                "mean": list(self.mean), "std": list(self.std), "content_hash": self.content_hash}


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


# --------------------------------------------------------------------------------------
# prepare(): registry dataset -> PreparedData, cached on disk and memoised in-process.
#
# Pipeline (bump PREP_VERSION when any step changes its output):
#   1. ``Dataset.load()`` gives uint8 (N, H, W, 3) images; they are checked (dtypes, shapes,
#      label range, lengths) by :func:`check_raw`.
#   2. The validation split is carved from the training split per class (:func:`split_indices`).
#   3. Pixels become float32 (N, 3, R, R) in [0, 1] as ``uint8 / 255``. When ``resolution``
#      differs from the images' size they are resized with torch's bicubic interpolation,
#      ``antialias=True``, on float [0, 1], then clamped to [0, 1] (bicubic overshoots);
#      resized pixels are not re-quantised to 8 bits.
#   4. mean/std per channel come from the remaining training images at that resolution
#      (population std), never from validation or test.
#   5. ``content_hash`` is the sha256 over the bytes of x_train, y_train, x_val, y_val,
#      x_test, y_test (in that order, C-contiguous float32 / int64).
# The cache stores the tensors in safetensors (uint8 when not resized, which is lossless)
# and the rest in meta.json, under cache kind "data".
# --------------------------------------------------------------------------------------

PREP_VERSION = "1"
_RESIZE_METHOD = "torch.nn.functional.interpolate(bicubic, antialias=True) on float [0,1], clamped"
_SPLITS = ("train", "val", "test")
_CHUNK = 1024

_memo: dict[tuple[str, str], PreparedData] = {}


def clear_memo() -> None:
    """Forget the prepared datasets kept in this process (tests use this)."""
    _memo.clear()


def check_raw(raw: Any, where: str) -> Any:
    """Check a :class:`~ddbench.interfaces.RawSplits` and return it with numpy arrays and
    ``str`` class names; raise :class:`~ddbench.errors.DataError` naming ``where`` and the
    problem otherwise."""
    import numpy as np

    from .errors import DataError
    from .types import RawSplits

    names = raw.class_names
    if names is None or isinstance(names, (str, bytes)) or len(names) == 0:
        raise DataError(f"{where}: class_names is missing or empty; expected one name per class")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    k = len(names)
    arrays = {}
    for split in ("train", "test"):
        x = np.asarray(getattr(raw, f"x_{split}"))
        y = np.asarray(getattr(raw, f"y_{split}"))
        if x.dtype != np.uint8:
            raise DataError(f"{where}: x_{split} has dtype {x.dtype}; expected uint8 RGB images (0-255)")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"{where}: x_{split} has shape {x.shape}; expected (N, H, W, 3), channels last")
        if y.dtype != np.int64:
            raise DataError(f"{where}: y_{split} has dtype {y.dtype}; expected int64 class indices")
        if y.ndim != 1:
            raise DataError(f"{where}: y_{split} has shape {y.shape}; expected (N,)")
        if len(x) != len(y):
            raise DataError(f"{where}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels; "
                            f"they must match")
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= k:
            raise DataError(f"{where}: y_{split} has labels in [{lo}, {hi}], outside [0, {k}) "
                            f"(num_classes = len(class_names) = {k})")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return RawSplits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], names,
                     dict(raw.info or {}))


def split_indices(y: Any, num_classes: int, val_fraction: float, val_seed: int) -> tuple[Any, Any]:
    """(train indices, validation indices) into ``y``, both sorted.

    Per class (in label order), ``round(val_fraction * count)`` images go to validation,
    at least 1 when the class has 2 or more images and ``val_fraction > 0``, and never
    all of them; they are drawn by one ``numpy.random.default_rng(val_seed)`` stream.
    """
    import numpy as np

    y = np.asarray(y)
    rng = np.random.default_rng(val_seed)
    val = []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        n = len(idx)
        k = int(round(val_fraction * n))
        if val_fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = min(k, max(n - 1, 0))
        if k:
            val.append(rng.choice(idx, size=k, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    mask = np.ones(len(y), bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx.astype(np.int64)


def _to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.to(torch.float32).div_(255.0)


def _pixels(x: Any, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, H, W, 3) numpy -> (float32 (N, 3, r, r), tensor to store)."""
    import torch.nn.functional as F

    u8 = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    if tuple(u8.shape[2:]) == (r, r):
        return _to_float(u8), u8
    out = torch.empty((len(u8), 3, r, r), dtype=torch.float32)
    for i in range(0, len(u8), _CHUNK):
        chunk = _to_float(u8[i:i + _CHUNK])
        out[i:i + _CHUNK] = F.interpolate(chunk, size=(r, r), mode="bicubic", align_corners=False,
                                          antialias=True).clamp_(0.0, 1.0)
    return out, out


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std of (N, C, H, W) images, accumulated in float64."""
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    ss = torch.zeros_like(s)
    for chunk in x.split(_CHUNK):
        c = chunk.to(torch.float64)
        s += c.sum(dim=(0, 2, 3))
        ss += c.square().sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / n
    std = (ss / n - mean.square()).clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[return-value]


def tensor_hash(tensors: Sequence[torch.Tensor]) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous().numpy()
        if a.size:
            h.update(memoryview(a.reshape(-1)).cast("B"))
    return h.hexdigest()


def _identity(ds: Any, location: str | None) -> Any:
    """What changes when the data on disk changes: ``ds.identity()`` when the dataset has
    one, else path, size and mtime of its location when that is a path, else the location."""
    ident = getattr(ds, "identity", None)
    if callable(ident):
        return ident()
    if location:
        import os

        try:
            st = os.stat(location)
            return {"path": os.path.realpath(location), "stat": [st.st_size, st.st_mtime_ns]}
        except OSError:
            pass
    return {"location": location}


def _build(raw: Any, where: str, resolution: int | None, val_fraction: float, val_seed: int):
    from .errors import DataError

    raw = check_raw(raw, where)
    sizes = {s: tuple(getattr(raw, f"x_{s}").shape[1:3]) for s in ("train", "test")}
    if resolution is None:
        if len(set(sizes.values())) != 1 or sizes["train"][0] != sizes["train"][1]:
            raise DataError(f"{where}: images are {sizes['train']} (train) and {sizes['test']} (test), "
                            f"not one square size; pass a resolution to resize them")
        resolution = sizes["train"][0]
    num_classes = len(raw.class_names)
    tr, va = split_indices(raw.y_train, num_classes, val_fraction, val_seed)
    if len(tr) == 0:
        raise DataError(f"{where}: no training images are left after carving the validation split")
    src = {"train": (raw.x_train[tr], raw.y_train[tr]), "val": (raw.x_train[va], raw.y_train[va]),
           "test": (raw.x_test, raw.y_test)}
    tensors: dict[str, torch.Tensor] = {}
    stored: dict[str, torch.Tensor] = {}
    for s in _SPLITS:
        x, y = src[s]
        tensors[f"x_{s}"], stored[f"x_{s}"] = _pixels(x, resolution)
        tensors[f"y_{s}"] = stored[f"y_{s}"] = torch.from_numpy(y.copy())
    mean, std = channel_stats(tensors["x_train"])
    meta = {
        "resolution": resolution, "num_classes": num_classes, "class_names": raw.class_names,
        "mean": list(mean), "std": list(std),
        "content_hash": tensor_hash([tensors[f"{a}_{s}"] for s in _SPLITS for a in "xy"]),
        "native_size": {s: list(v) for s, v in sizes.items()},
        "resized": any(v != (resolution, resolution) for v in sizes.values()),
        "source": raw.info,
    }
    if meta["resized"]:
        meta["resize_method"] = _RESIZE_METHOD
    return tensors, stored, meta


def _save(folder: Any, stored: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import json

    from safetensors.torch import save_file

    save_file(stored, str(folder / "tensors.safetensors"), metadata={"format": "ddbench-prepared-data"})
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def _load(folder: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a cache entry (KeyError/OSError/... when damaged). safetensors may map the file
    copy-on-write: in-place edits of the tensors never reach the cache."""
    import json

    from safetensors.torch import load_file

    meta = json.loads((folder / "meta.json").read_text())
    stored = load_file(str(folder / "tensors.safetensors"))
    tensors = {}
    for s in _SPLITS:
        x = stored[f"x_{s}"]
        tensors[f"x_{s}"] = _to_float(x) if x.dtype == torch.uint8 else x
        tensors[f"y_{s}"] = stored[f"y_{s}"]
    return tensors, meta


def prepare(name: str, resolution: int | None = None, *, val_fraction: float = 0.1, val_seed: int = 0,
            cache: Any = None) -> PreparedData:
    """Load dataset ``name`` from the registry, resize to ``resolution`` (default: native),
    carve the validation split, compute statistics, and cache the result.

    ``cache``: an :class:`~ddbench.cache.ArtifactCache` (default ``ArtifactCache()``, i.e.
    ``$DDBENCH_HOME/cache``), or ``False`` to neither read nor write the disk cache. The cache
    key holds the name, resolution, validation settings, the data's identity on disk (path,
    size, mtime) and ``PREP_VERSION``. Within one process the result is also memoised, so
    repeated calls return the same object: treat it as read-only.

    The validation split is class-balanced and seeded (:func:`split_indices`); its images
    are removed from ``x_train``. ``info`` records where the data came from, whether it was
    resized and how, and whether it came from the cache.
    """
    import numbers
    import shutil

    from . import plugins
    from .cache import ArtifactCache, config_hash
    from .errors import DDBenchError

    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) or resolution < 1:
            raise DDBenchError(f"resolution must be a positive integer, got {resolution!r}")
        resolution = int(resolution)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise DDBenchError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    val_fraction, val_seed = float(val_fraction), int(val_seed)

    ds = plugins.get_dataset(name)
    location = ds.locate()
    raw = None
    if location is None:
        raw = ds.load()  # may download; otherwise the dataset raises DataError saying where it looked
        location = ds.locate()
    store = None if cache is False else (cache if cache is not None else ArtifactCache())
    config = {
        "name": name, "resolution": resolution if resolution is not None else "native",
        "val_fraction": val_fraction, "val_seed": val_seed, "source": _identity(ds, location),
        "dataset": f"{type(ds).__module__}.{type(ds).__qualname__}",
        "dataset_version": str(getattr(ds, "version", "")), "prep_version": PREP_VERSION,
    }
    memo_key = (str(store.root) if store is not None else "", config_hash(config, 64))
    if memo_key in _memo:
        return _memo[memo_key]

    where = location or name
    folder = None
    from_cache = False
    tensors = meta = None
    if store is not None:
        folder = store.path("data", config)
        if (folder / "config.json").exists():
            try:
                tensors, meta = _load(folder)
                from_cache = True
            except Exception:  # a damaged cache entry: rebuild it
                shutil.rmtree(folder, ignore_errors=True)
    if tensors is None:
        if raw is None:
            raw = ds.load()
        tensors, stored, meta = _build(raw, where, resolution, val_fraction, val_seed)
        meta["location"] = location
        raw = None
        if store is not None:
            folder, _ = store.get_or_create("data", config, lambda out, _ckpt: _save(out, stored, meta))
        del stored

    info = {
        "location": meta.get("location"), "source": meta.get("source", {}),
        "native_size": meta.get("native_size"), "resized": meta.get("resized", False),
        "resize_method": meta.get("resize_method"),
        "val_fraction": val_fraction, "val_seed": val_seed, "prep_version": PREP_VERSION,
        "cache_dir": str(folder) if folder is not None else None, "from_cache": from_cache,
        "config": config,
    }
    out = PreparedData(
        name=name, resolution=int(meta["resolution"]), num_classes=int(meta["num_classes"]),
        class_names=list(meta["class_names"]),
        x_train=tensors["x_train"], y_train=tensors["y_train"], x_val=tensors["x_val"],
        y_val=tensors["y_val"], x_test=tensors["x_test"], y_test=tensors["y_test"],
        mean=tuple(meta["mean"]), std=tuple(meta["std"]), content_hash=meta["content_hash"], info=info,
    )
    _memo[memo_key] = out
    return out
