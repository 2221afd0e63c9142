"""Kernel ridge regression with a trace-scaled ridge, differentiable in the kernels and the
targets (KRR-ST's inner solve; usable by any kernel-based distillation method)."""

from __future__ import annotations

import torch
from torch import Tensor

SOLVERS = ("cholesky", "solve")


def krr_solve(K_ss: Tensor, Y_s: Tensor, ridge: float, solver: str = "cholesky",
              eye: Tensor | None = None) -> tuple[Tensor, bool]:
    """``alpha = (K_ss + lambda I)^-1 Y_s`` with ``lambda = ridge * trace(K_ss)`` (detached).

    ``solver="cholesky"`` factorises (fast) and falls back to an LU solve when the
    factorisation fails; ``"solve"`` always uses the LU solve. ``eye`` is an identity of
    ``K_ss``'s size, passed in to skip allocating one per call. Returns ``(alpha, fell_back)``,
    ``fell_back`` True when the Cholesky factorisation failed."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if eye is None:
        eye = torch.eye(K_ss.shape[0], dtype=K_ss.dtype, device=K_ss.device)
    lam = ridge * K_ss.detach().diagonal().sum()
    A = K_ss + lam * eye
    if solver == "cholesky":
        L, info = torch.linalg.cholesky_ex(A)
        # one scalar read: free on CPU, the only host sync on CUDA; a failed factorisation
        # must never reach the result
        if int(info) == 0:
            return torch.cholesky_solve(Y_s, L), False
        return torch.linalg.solve(A, Y_s), True
    return torch.linalg.solve(A, Y_s), False


def krr_predict(K_bs: Tensor, K_ss: Tensor, Y_s: Tensor, ridge: float, solver: str = "cholesky",
                eye: Tensor | None = None) -> tuple[Tensor, bool]:
    """KRR's prediction for the query points, ``K_bs (K_ss + lambda I)^-1 Y_s`` (see
    :func:`krr_solve`); returns ``(prediction, fell_back)``."""
    alpha, fell_back = krr_solve(K_ss, Y_s, ridge, solver, eye)
    return K_bs @ alpha, fell_back
