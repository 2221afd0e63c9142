"""PNG figures that belong with an artifact: a grid of images and a loss curve (matplotlib's
object API, no global pyplot state, so it is safe in any process)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch


def image_grid_png(path: str | Path, pixels01: torch.Tensor, title: str, *, columns: int = 10) -> None:
    """Write the (N, C, H, W) [0, 1] images as a grid, ``columns`` per row, 1 px white gaps.
    Nothing is written for an empty batch."""
    from matplotlib.figure import Figure

    n = pixels01.shape[0]
    if not n:
        return
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    c, h, w = pixels01.shape[1:]
    grid = torch.ones(rows * (h + 1) + 1, cols * (w + 1) + 1, c)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = pixels01[i].permute(1, 2, 0)
    fig = Figure(figsize=(cols * 0.6 + 0.4, rows * 0.6 + 0.6), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(grid.squeeze(-1).numpy() if c == 1 else grid.numpy(), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.savefig(Path(path), bbox_inches="tight")


def loss_curve_png(path: str | Path, losses: Sequence[float], *, xlabel: str, ylabel: str, title: str) -> None:
    """Write the loss per step (1-based), with a moving mean over 1/50 of the run when it is
    long enough to be noisy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    if losses:
        steps = list(range(1, len(losses) + 1))
        k = max(1, len(losses) // 50)
        ax.plot(steps, list(losses), lw=0.5 if k > 1 else 1.0, alpha=0.4 if k > 1 else 1.0, label="loss")
        if k > 1:
            smooth = torch.tensor(list(losses)).unfold(0, k, 1).mean(1).tolist()
            ax.plot(steps[k - 1:], smooth, lw=1.2, label=f"moving mean ({k})")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path))


def write_set_outputs(folder: str | Path, distilled, losses: Sequence[float], *, title: str, xlabel: str,
                      ylabel: str) -> None:
    """What belongs beside a learned set: ``grid.png`` (up to 100 images), ``loss.png`` and
    ``loss.json`` (the loss per outer step) in ``folder``."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loss.json").write_text(json.dumps({"step": list(range(1, len(losses) + 1)), "loss": list(losses)}))
    px = distilled.pixels01()[:100]
    image_grid_png(folder / "grid.png", px, f"{title}: first {px.shape[0]} of {distilled.num_images} images")
    loss_curve_png(folder / "loss.png", losses, xlabel=xlabel, ylabel=ylabel, title=f"{title} loss")
