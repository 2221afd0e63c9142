"""The network contract every architecture returns, and a fast eval-mode feature pass."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def fused_embed(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """A no-grad eval-mode ``model.embed`` with each Conv2d+BatchNorm2d pair folded into one
    convolution and ReLUs applied in place. Falls back to ``model.embed`` when the trunk is
    not a plain ``nn.Sequential``. Equal to ``embed`` up to float rounding.

    The folded weights are computed once, from the model's state at call time: build a new
    one after the model changes."""
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, nn.Sequential):
        return model.embed
    mods = list(trunk)
    ops: list[Callable[[Tensor], Tensor]] = []
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if (isinstance(m, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d) and not nxt.training
                and nxt.running_mean is not None and m.padding_mode == "zeros"):
            scale = torch.rsqrt(nxt.running_var + nxt.eps)
            if nxt.weight is not None:
                scale = scale * nxt.weight
            bias = m.bias if m.bias is not None else torch.zeros_like(nxt.running_mean)
            b = (bias - nxt.running_mean) * scale
            if nxt.bias is not None:
                b = b + nxt.bias
            w = m.weight * scale.view(-1, 1, 1, 1)  # keeps the weight's memory format
            ops.append(lambda x, w=w, b=b, m=m: F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups))
            i += 2
            continue
        if isinstance(m, nn.ReLU):
            ops.append(torch.relu_)
        else:
            ops.append(m)
        i += 1

    def run(x: Tensor) -> Tensor:
        inp = x
        for op in ops:
            # never modify the caller's tensor in place
            x = torch.relu(x) if (op is torch.relu_ and x is inp) else op(x)
        return x

    return run
