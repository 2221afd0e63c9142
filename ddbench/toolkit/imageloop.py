"""The outer loop of a method that learns its synthetic set step by step (DSA, DM, ...):
resumable checkpoints, a progress bar with ETA and the running loss, a NaN/inf check that
keeps the last good checkpoint, and the cost of the run (seconds, peak memory).

A method supplies one ``step(k) -> loss`` (a 0-d tensor, left on the device: the loop
syncs with the host only every ``log_every`` steps) and its state as a dict of tensors and
plain containers (images, optimiser, generators). Everything random must live in that
state (``torch.Generator.get_state()``) so that a resumed run continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ddbench.cache import atomic_torch_save, load_checkpoint
from ddbench.errors import DivergenceError

__all__ = ["LoopResult", "run_loop", "peak_memory_mib", "loss_summary"]

#: tests only: called with the step count after every step (the resume tests set it in a child
#: process to SIGKILL itself mid-run)
after_step: Callable[[int], None] | None = None


@dataclasses.dataclass
class LoopResult:
    losses: list[float]
    seconds: float
    resumed_from: int | None


def peak_memory_mib(device: torch.device) -> dict[str, Any]:
    """The run's memory high-water mark: peak allocated CUDA memory on a GPU, the process's
    peak resident set size on CPU (everything the process held, data included)."""
    if device.type == "cuda":
        return {"peak_cuda_allocated_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024
    return {"peak_rss_mib": round(rss_bytes / 2**20, 1)}


def loss_summary(losses: list[float]) -> dict[str, Any]:
    """First/last/min and the means of the first and last tenth of a loss curve."""
    if not losses:
        return {"n": 0}
    n = len(losses)
    k = max(1, n // 10)
    return {"n": n, "first": losses[0], "last": losses[-1], "min": min(losses),
            "mean_first_10pct": sum(losses[:k]) / k, "mean_last_10pct": sum(losses[-k:]) / k}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_loop(ctx: Any, *, name: str, total: int, step: Callable[[int], Tensor],
             state_dict: Callable[[], dict[str, Any]], load_state_dict: Callable[[dict[str, Any]], None],
             fingerprint: dict[str, Any], checkpoint_every: int, log_every: int,
             divergence_hint: str = "lower the learning rate") -> LoopResult:
    """Run ``step(k)`` for k = done+1 .. ``total`` (resuming from ``ctx.checkpoint_dir`` when a
    checkpoint with the same ``fingerprint`` is there), with progress and checks.

    Checkpoints are written every ``checkpoint_every`` steps (0: never) to
    ``<checkpoint_dir>/<name>.pt``; a checkpoint made with other settings is ignored with a
    message. Raises :class:`~ddbench.errors.DivergenceError` when a loss is NaN/inf."""
    fp = _jsonable(fingerprint)
    ckpt_dir = Path(ctx.checkpoint_dir) if getattr(ctx, "checkpoint_dir", None) else None
    ckpt_path = ckpt_dir / f"{name}.pt" if ckpt_dir else None
    losses: list[Tensor] = []
    done, seconds, resumed_from = 0, 0.0, None
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("fingerprint") != fp:
            ctx.log(f"{name}: ignoring a checkpoint made with other settings: {ckpt_path}")
        else:
            load_state_dict(state["method"])
            done, seconds = int(state["step"]), float(state["seconds"])
            losses = [torch.tensor(v) for v in state["losses"]]
            resumed_from = done
            ctx.log(f"{name}: resuming from step {done}/{total} ({ckpt_path})")
    last_ckpt: int | None = done if resumed_from is not None else None

    def host_losses() -> list[float]:
        return [float(v) for v in torch.stack(losses).cpu()] if losses else []

    def save(k: int) -> None:
        nonlocal last_ckpt
        if ckpt_path is None:
            return
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"fingerprint": fp, "step": k, "seconds": seconds, "losses": host_losses(),
                           "method": state_dict()}, ckpt_path)
        last_ckpt = k

    checked = done
    with ctx.progress(total, f"{name}: {total} steps") as bar:
        if done:
            bar.set(done)
        t0, since = time.time(), done
        for k in range(done + 1, total + 1):
            losses.append(step(k).detach().reshape(()))
            if after_step is not None:
                after_step(k)
            at_ckpt = checkpoint_every > 0 and k % checkpoint_every == 0 and k < total
            if k % log_every == 0 or at_ckpt or k == total:
                chunk = torch.stack(losses[checked:k]).cpu()
                bad = ~torch.isfinite(chunk)
                if bool(bad.any()):
                    j = int(bad.nonzero()[0, 0]) + checked + 1
                    kept = (f"the last good checkpoint (step {last_ckpt}) is kept in {ckpt_dir}"
                            if last_ckpt is not None else "no checkpoint was written")
                    raise DivergenceError(f"{name}: the loss became {float(chunk[j - checked - 1])} at step {j}; "
                                          f"{kept}; {divergence_hint}")
                now = time.time()
                seconds += now - t0
                t0 = now
                bar.advance(k - since, loss=float(chunk.mean()), s_per_step=round(seconds / max(1, k), 3))
                since, checked = k, k
                if at_ckpt:
                    save(k)
    return LoopResult(losses=host_losses(), seconds=seconds, resumed_from=resumed_from)
