"""LARS (layer-wise adaptive rate scaling) on top of SGD with momentum, as NVIDIA apex's LARC
and solo-learn apply it: each weight's gradient (plus its weight decay) is scaled by a clipped
trust ratio, then a plain SGD-momentum step runs. Biases and norm parameters get neither LARS
nor weight decay.

Usage::

    opt = lars_sgd([backbone, projector], lr=0.3, weight_decay=1e-4)
    fit(forward, data, opt, steps, before_step=lambda: lars_adapt(opt))
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

#: trust coefficient (solo-learn's CIFAR recipe)
ETA = 0.02


def param_groups(modules: Sequence[torch.nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights (ndim > 1) get weight decay and LARS; biases and norm parameters
    neither. The keys ``wd`` and ``lars`` are read by :func:`lars_adapt`."""
    decay, exempt = [], []
    for m in modules:
        for p in m.parameters():
            (decay if p.ndim > 1 else exempt).append(p)
    return [{"params": decay, "wd": float(weight_decay), "lars": True}, {"params": exempt, "wd": 0.0, "lars": False}]


def lars_sgd(modules: Sequence[torch.nn.Module], lr: float, weight_decay: float,
             momentum: float = 0.9) -> torch.optim.SGD:
    """The SGD half of LARS; call :func:`lars_adapt` between ``backward`` and ``step``. Weight
    decay is applied by :func:`lars_adapt`, so SGD's own is 0."""
    return torch.optim.SGD(param_groups(modules, weight_decay), lr=lr, momentum=momentum, weight_decay=0.0)


def lars_adapt(optimizer: torch.optim.Optimizer, eta: float = ETA, eps: float = 1e-8) -> None:
    """Add weight decay to each LARS weight's gradient and scale it by ``min(1, trust / lr)``,
    ``trust = eta * |w| / (|g| + wd * |w| + eps)``."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            if not group.get("lars"):
                continue
            wd, lr = group["wd"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                if wd:
                    p.grad.add_(p, alpha=wd)
                if p_norm > 0 and g_norm > 0 and lr > 0:
                    trust = eta * p_norm / (g_norm + wd * p_norm + eps)
                    p.grad.mul_(torch.clamp(trust / lr, max=1.0))
