"""The distilled set: what a method returns and a task consumes.

Saved as ``images.safetensors`` (images, targets) plus ``manifest.json`` (everything
else). No pickle anywhere; ``load`` returns an identical object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError
from .types import LABEL_KINDS, Provenance

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .data import PreparedData

SCHEMA_VERSION = 1

#: the recipe of the empty no-pre-training reference; every other recipe name is the
#: method's to declare and the consuming task's to implement (the host knows none of them)
NO_RECIPE = "none"

#: how far (in pixel units, as a fraction of the range's width) images may stray outside
#: ``value_range``: normalising and denormalising in float32 must never trip the check
RANGE_TOLERANCE = 1e-3


@dataclasses.dataclass
class DistilledSet:
    """Images (in model-input space) and their targets.

    ``pixel_space`` says how ``images`` relate to pixels: ``"normalized"`` means
    ``(pixel - mean) / std`` with the recorded ``mean``/``std``; ``"raw01"`` means
    pixels in [0, 1] fed to the network as they are (the KRR-ST reference code's
    behaviour).
    """

    images: "torch.Tensor"  # (m, C, H, W) float32
    targets: "torch.Tensor"  # (m,) int64 for hard labels; (m, d) float32 otherwise
    label_kind: str  # one of LABEL_KINDS
    recipe: str  # how a task should pre-train on the set: a name the method declares and the task implements
    pixel_space: str = "normalized"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    num_classes: int | None = None
    source: str = ""
    resolution: int = 32
    method: str = ""
    #: how it was made (a dict given here is read into :class:`~ddbench.types.Provenance`)
    provenance: Provenance = dataclasses.field(default_factory=Provenance)
    #: the range the images must lie in once mapped back to pixels ([0, 1] for real or clamped
    #: images); None = unbounded, for methods whose learned pixels may leave it (KRR-ST, DSA, ...)
    value_range: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        self.provenance = Provenance.parse(self.provenance)
        if self.value_range is not None:
            self.value_range = tuple(self.value_range)  # type: ignore[assignment]  # JSON gives a list
        self.validate()

    def validate(self) -> None:
        """Check the set against the contract every task relies on; raise one
        :class:`DataError` that names the method, says what is wrong and what to do.

        Runs on every set (at construction, before saving, after loading), so the checks
        on the tensors' contents are single reductions: a NaN or inf shows up in the
        per-channel minimum or maximum, which the range check needs anyway.
        """
        who = _who(self.method)
        if self.label_kind not in LABEL_KINDS:
            raise DataError(f"{who}: label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")
        if not isinstance(self.recipe, str) or not self.recipe:
            raise DataError(f"recipe must be a non-empty name (the method's declared pre-training recipe), got {self.recipe!r}")
        if self.pixel_space not in ("normalized", "raw01"):
            raise DataError(f"{who}: pixel_space must be 'normalized' or 'raw01', got {self.pixel_space!r}")
        vr = self.value_range
        if vr is not None and not (len(vr) == 2 and all(isinstance(v, (int, float)) for v in vr) and vr[0] < vr[1]):
            raise DataError(f"{who}: value_range must be (low, high) with low < high, or None for unbounded pixels; "
                            f"got {vr!r}")
        channels = len(self.mean)
        if len(self.std) != channels or any(not s > 0 for s in self.std):
            raise DataError(f"{who}: mean {self.mean} and std {self.std} must give one value per channel, with every std > 0")
        check_images(self.images, channels, self.resolution, who)
        self._check_targets(who)
        if len(self.images) != len(self.targets):
            raise DataError(f"{who}: the distilled set has {len(self.images)} images but {len(self.targets)} targets; "
                            "give one target per image")
        if self.num_images:
            self._check_pixels(who)

    def _check_targets(self, who: str) -> None:
        import torch

        t = self.targets
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{who}: the distilled set's targets are a {type(t).__module__}.{type(t).__name__}, not a "
                            "torch.Tensor; convert with torch.as_tensor(...)")
        shape = tuple(t.shape)
        if self.label_kind == "hard":
            if t.dtype != torch.long or t.dim() != 1:
                fix = ("use targets.argmax(1), or declare label_kind 'soft'" if t.is_floating_point() and t.dim() == 2
                       else "convert with .long()" if t.dim() == 1 else "flatten them to (N,)")
                raise DataError(f"{who}: hard labels must be int64 class indices of shape (N,); got {_dtype(t)} "
                                f"{shape}: {fix}")
            if t.numel():
                lo, hi = int(t.min()), int(t.max())
                top = self.num_classes
                if lo < 0 or (top is not None and hi >= top):
                    raise DataError(f"{who}: hard labels lie in [{lo}, {hi}], outside [0, {top if top is not None else 'num_classes'}); "
                                    "give class indices of the source")
        elif self.label_kind in ("soft", "representation"):
            if t.dtype != torch.float32 or t.dim() != 2:
                fix = ("declare label_kind 'hard' for class indices" if not t.is_floating_point()
                       else "convert with .float()" if t.dim() == 2 else "give one (d,) vector per image")
                raise DataError(f"{who}: {self.label_kind} targets must be float32 of shape (N, d); got {_dtype(t)} "
                                f"{shape}: {fix}")
            if t.numel() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise DataError(f"{who}: {bad} of the distilled set's targets are NaN or infinite; the method diverged "
                                "or divided by zero: fix it (or lower its learning rate)")

    def _check_pixels(self, who: str) -> None:
        import torch

        with torch.no_grad():
            x = self.images.detach()
            lo, hi = x.amin(dim=(0, 2, 3)), x.amax(dim=(0, 2, 3))
            if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
                bad = int((~torch.isfinite(x)).sum())
                raise DataError(f"{who}: {bad} of the distilled set's {x.numel()} pixel values are NaN or infinite; the "
                                "method diverged or divided by zero: fix it (or lower its learning rate)")
            if self.value_range is None:
                return
            if self.pixel_space == "normalized":  # std > 0, so the map back to pixels keeps the order
                mean = torch.tensor(self.mean, dtype=lo.dtype, device=lo.device)
                std = torch.tensor(self.std, dtype=lo.dtype, device=lo.device)
                lo, hi = lo * std + mean, hi * std + mean
            plo, phi = float(lo.min()), float(hi.max())
        rlo, rhi = self.value_range
        eps = RANGE_TOLERANCE * (rhi - rlo)
        if plo >= rlo - eps and phi <= rhi + eps:
            return
        span = f"[{plo:.4g}, {phi:.4g}]"
        if (rlo, rhi) == (0.0, 1.0) and 10.0 < phi <= 255.0 + eps and plo >= -eps:
            raise DataError(f"{who}: the distilled set's images span {span} in pixel space, which looks like 0-255 pixels: "
                            "divide by 255 (DistilledSet.from_source takes float32 pixels in [0, 1])")
        raise DataError(f"{who}: the distilled set's images span {span} in pixel space, outside its value_range "
                        f"({rlo:g}, {rhi:g}); clamp the pixels into that range (e.g. images01.clamp(0, 1)) before "
                        "building the set, or pass value_range=None if your method learns pixels that may leave it")

    @classmethod
    def from_source(cls, source: "PreparedData", images01: "torch.Tensor", targets: "torch.Tensor", *,
                    label_kind: str, recipe: str, method: str, options: Any = None,
                    value_range: tuple[float, float] | None = (0.0, 1.0), **provenance: Any) -> "DistilledSet":
        """Build a set from float32 ``(N, C, H, W)`` pixels in [0, 1] at the source's channels
        and resolution, normalising them with the source's statistics. ``value_range=None``
        lets learned pixels leave [0, 1]."""
        import torch

        from .data import normalize

        who = _who(method)
        # before normalising: a uint8 or channels-last tensor would otherwise fail (or broadcast) inside it
        check_images(images01, len(source.mean), source.resolution, who, source=source.name)
        if not isinstance(targets, torch.Tensor):
            raise DataError(f"{who}: the distilled set's targets are a {type(targets).__module__}.{type(targets).__name__}, "
                            "not a torch.Tensor; convert with torch.as_tensor(...)")
        prov = {"options": options.to_dict() if hasattr(options, "to_dict") else options, **provenance}
        return cls(images=normalize(images01, source.mean, source.std).contiguous(), targets=targets.contiguous(),
                   label_kind=label_kind, recipe=recipe, pixel_space="normalized",
                   mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                   source=source.name, resolution=source.resolution, method=method, provenance=prov,
                   value_range=value_range)

    @classmethod
    def empty(cls, source: "PreparedData", method: str = "none") -> "DistilledSet":
        """The no-pre-training reference: no images at all."""
        import torch

        r = source.resolution
        return cls(images=torch.zeros(0, 3, r, r), targets=torch.zeros(0, dtype=torch.long), label_kind="none",
                   recipe=NO_RECIPE, mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                   source=source.name, resolution=r, method=method)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        """Storage of the set: images in uint8 (as a dataset would ship them) + targets as stored."""
        import torch

        images = self.images.numel()  # one byte per pixel channel
        if self.targets.dtype == torch.long:
            # one class index per image: the smallest integer type that holds it
            per = 1 if (self.num_classes or 0) <= 256 else 2
            targets = self.targets.numel() * per
        else:
            targets = self.targets.numel() * self.targets.element_size()
        return int(images + targets)

    def check_preparation(self, source: Any) -> None:
        """Raise DataError when the set lives in the normalised space but was normalised with
        other statistics than ``source``'s (it was made from another preparation of the data)."""
        if self.pixel_space != "normalized":
            return
        diff = max(max(abs(a - b) for a, b in zip(self.mean, source.mean)),
                   max(abs(a - b) for a, b in zip(self.std, source.std)))
        if diff > 1e-4:
            raise DataError(f"the distilled set was normalised with mean {list(self.mean)} / std {list(self.std)}, "
                            f"but the source's statistics are {list(source.mean)} / {list(source.std)}; it was "
                            f"made from a different preparation of {source.name}")

    def budget(self) -> dict[str, int]:
        return {"images": self.num_images, "bytes": self.nbytes, "float_bytes": int(
            self.images.numel() * self.images.element_size() + self.targets.numel() * self.targets.element_size())}

    def inputs(self, x01: "torch.Tensor") -> "torch.Tensor":
        """Images given in [0, 1] pixels, in the space this set's images live in (the space a
        network trained on the set expects): normalised with the set's statistics, or as they
        are for a ``raw01`` set."""
        from .data import normalize

        if self.pixel_space == "raw01":
            return x01
        return normalize(x01, self.mean, self.std)

    def pixels01(self) -> "torch.Tensor":
        """Images back in [0, 1] pixel space (for plots)."""
        import torch

        if self.pixel_space == "raw01":
            return self.images.clamp(0, 1)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (self.images * std + mean).clamp(0, 1)

    def manifest(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "label_kind": self.label_kind, "recipe": self.recipe, "pixel_space": self.pixel_space,
            "mean": list(self.mean), "std": list(self.std), "num_classes": self.num_classes,
            "source": self.source, "resolution": self.resolution, "method": self.method,
            "shape": {"images": list(self.images.shape), "targets": list(self.targets.shape)},
            "budget": self.budget(), "provenance": self.provenance.to_dict(),
            "value_range": list(self.value_range) if self.value_range is not None else None,
        }

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write the set; returns {"images": sha256, "manifest": sha256}."""
        from safetensors.torch import save_file

        self.validate()  # a method may have changed the tensors after building the set
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"images": self.images.detach().cpu().contiguous(), "targets": self.targets.detach().cpu().contiguous()}
        tmp = folder / "images.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(folder / "images.safetensors")
        man = folder / "manifest.json"
        man.write_text(json.dumps(self.manifest(), indent=2, sort_keys=True, default=str))
        return {"images": sha256_file(folder / "images.safetensors"), "manifest": sha256_file(man)}

    @classmethod
    def load(cls, folder: str | Path) -> "DistilledSet":
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            m = json.loads((folder / "manifest.json").read_text())
            t = load_file(str(folder / "images.safetensors"))
        except FileNotFoundError as e:
            raise DataError(f"no distilled set at {folder}: {e.filename} is missing") from None
        except (json.JSONDecodeError, Exception) as e:  # safetensors raises its own error types
            if isinstance(e, DataError):
                raise
            raise DataError(f"the distilled set at {folder} is corrupt ({e}); delete it and rerun") from None
        if m.get("schema_version") != SCHEMA_VERSION:
            raise DataError(f"distilled set at {folder} has schema {m.get('schema_version')}, expected {SCHEMA_VERSION}")
        try:
            return cls(images=t["images"], targets=t["targets"], label_kind=m["label_kind"], recipe=m["recipe"],
                       pixel_space=m["pixel_space"], mean=tuple(m["mean"]), std=tuple(m["std"]),
                       num_classes=m["num_classes"], source=m["source"], resolution=m["resolution"],
                       method=m["method"], provenance=m["provenance"],
                       value_range=m.get("value_range", (0.0, 1.0)))  # sets saved before the field were [0, 1]
        except DataError as e:
            raise DataError(f"the distilled set at {folder} is invalid ({e}); delete it and rerun") from None


def check_returned(obj: Any, method: str) -> DistilledSet:
    """Check what a method's ``distill`` returned (the runner and the conformance suite
    call this): a :class:`DistilledSet` that passes :meth:`DistilledSet.validate`."""
    if not isinstance(obj, DistilledSet):
        raise DataError(f"{_who(method)}: distill returned {type(obj).__module__}.{type(obj).__name__}, not a "
                        "DistilledSet; build one with DistilledSet.from_source(source, images01, targets, ...)")
    obj.validate()
    return obj


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _who(method: str) -> str:
    return f"method {method!r}" if method else "DistilledSet (no method named)"


def _dtype(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def check_images(images: Any, channels: int, resolution: int, who: str, source: str = "") -> None:
    """The checks on an image tensor that need no pass over its values: type, dtype, layout,
    channels and size. ``source`` names the dataset the sizes come from (for the message)."""
    import torch

    if not isinstance(images, torch.Tensor):
        raise DataError(f"{who}: the distilled set's images are a {type(images).__module__}.{type(images).__name__}, not a "
                        "torch.Tensor; convert with torch.as_tensor(...).float()")
    shape = tuple(images.shape)
    where = f"source {source!r} has" if source else "the set's mean/std have"
    expected = f"(N, {channels}, {resolution}, {resolution})"
    # a set straight from image files is often both uint8 and channels-last: say both at once
    channels_last = images.dim() == 4 and shape[1] != channels and shape[3] == channels and shape[1] == shape[2]
    if images.dtype == torch.uint8:
        layout = ", and channels-last: permute to (N, C, H, W) with images.permute(0, 3, 1, 2)" if channels_last else ""
        raise DataError(f"{who}: the distilled set's images are uint8 {shape}; convert with .float()/255 (images are "
                        f"float32 pixels in [0, 1], or normalised){layout}")
    if images.dtype != torch.float32:
        raise DataError(f"{who}: the distilled set's images are {_dtype(images)}; expected float32: convert with .float()")
    if images.dim() != 4:
        raise DataError(f"{who}: the distilled set's images have shape {shape}; expected (N, C, H, W) = {expected}")
    if channels_last:
        raise DataError(f"{who}: the distilled set's images have shape {shape}, which is channels-last: permute to "
                        f"(N, C, H, W) with images.permute(0, 3, 1, 2) (expected {expected})")
    if shape[1] != channels:
        raise DataError(f"{who}: the distilled set's images have {shape[1]} channels but {where} {channels}; "
                        f"expected {expected}")
    if shape[2] != resolution or shape[3] != resolution:
        size = f"source {source!r} is {resolution}x{resolution}" if source else f"its resolution is {resolution}"
        raise DataError(f"{who}: the distilled set's images are {shape[2]}x{shape[3]} but {size}; distill at the "
                        f"source's resolution (expected {expected})")
