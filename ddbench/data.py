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


def prepare(name: str, resolution: int | None = None, *, val_fraction: float = 0.1, val_seed: int = 0,
            cache: Any = None) -> PreparedData:
    """Load dataset ``name`` from the registry, resize to ``resolution`` (default: native),
    carve the validation split, compute statistics, and cache the result."""
    raise NotImplementedError
