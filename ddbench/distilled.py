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
from .interfaces import LABEL_KINDS

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .data import PreparedData

SCHEMA_VERSION = 1

#: the recipe of the empty no-pre-training reference; every other recipe name is the
#: method's to declare and the consuming task's to implement (the host knows none of them)
NO_RECIPE = "none"


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
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the range the images must lie in once mapped back to pixels ([0, 1] for real or clamped
    #: images); None = unbounded, for methods whose learned pixels may leave it (KRR-ST, DSA, ...)
    value_range: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.label_kind not in LABEL_KINDS:
            raise DataError(f"label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")
        if not isinstance(self.recipe, str) or not self.recipe:
            raise DataError(f"recipe must be a non-empty name (the method's declared pre-training recipe), got {self.recipe!r}")
        if self.pixel_space not in ("normalized", "raw01"):
            raise DataError(f"pixel_space must be 'normalized' or 'raw01', got {self.pixel_space!r}")
        if len(self.images) != len(self.targets):
            raise DataError(f"{len(self.images)} images but {len(self.targets)} targets")

    @classmethod
    def from_source(cls, source: "PreparedData", images01: "torch.Tensor", targets: "torch.Tensor", *,
                    label_kind: str, recipe: str, method: str, options: Any = None, **provenance: Any) -> "DistilledSet":
        """Build a set from [0, 1] source pixels, normalising them with the source's statistics."""
        from .data import normalize

        prov = {"options": options.to_dict() if hasattr(options, "to_dict") else options, **provenance}
        return cls(images=normalize(images01, source.mean, source.std).contiguous(), targets=targets.contiguous(),
                   label_kind=label_kind, recipe=recipe, pixel_space="normalized",
                   mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                   source=source.name, resolution=source.resolution, method=method, provenance=prov)

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

    def budget(self) -> dict[str, int]:
        return {"images": self.num_images, "bytes": self.nbytes, "float_bytes": int(
            self.images.numel() * self.images.element_size() + self.targets.numel() * self.targets.element_size())}

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
            "budget": self.budget(), "provenance": self.provenance,
        }

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write the set; returns {"images": sha256, "manifest": sha256}."""
        from safetensors.torch import save_file

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
        return cls(images=t["images"], targets=t["targets"], label_kind=m["label_kind"], recipe=m["recipe"],
                   pixel_space=m["pixel_space"], mean=tuple(m["mean"]), std=tuple(m["std"]),
                   num_classes=m["num_classes"], source=m["source"], resolution=m["resolution"],
                   method=m["method"], provenance=m["provenance"])


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
