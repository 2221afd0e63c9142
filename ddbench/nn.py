"""The network contract every architecture returns."""

from __future__ import annotations

import torch
from torch import nn


class Network(nn.Module):
    """A trunk that maps images to ``(N, feature_dim)`` features, plus an optional linear head.

    ``embed(x)`` returns the trunk's features; ``forward(x)`` applies the head when there
    is one and returns the features otherwise. ``reset_head(n)`` swaps in a fresh
    ``Linear(feature_dim, n)`` (fine-tuning drops the pre-training head this way).
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, num_outputs: int | None = None, spec: dict | None = None):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.head: nn.Module = nn.Linear(self.feature_dim, num_outputs) if num_outputs else nn.Identity()
        #: what was built (architecture name, widths, norm, ...), recorded with results
        self.spec = dict(spec or {})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def reset_head(self, num_outputs: int | None) -> "Network":
        device = next(self.parameters()).device
        self.head = (nn.Linear(self.feature_dim, num_outputs) if num_outputs else nn.Identity()).to(device)
        return self

    def trunk_parameters(self) -> int:
        return sum(p.numel() for p in self.trunk.parameters())
