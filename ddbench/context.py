"""What a method or task gets besides its options: seed, device, cache, progress, log."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from . import term
from .cache import ArtifactCache
from .types import Budget


@dataclasses.dataclass
class RunContext:
    seed: int
    device: str = "cpu"
    preset: str | None = None
    run_id: str = ""
    cache: ArtifactCache = dataclasses.field(default_factory=ArtifactCache)
    #: the run's image budget, resolved against the source (``images`` and, with labels, ``ipc``)
    budget: Budget = dataclasses.field(default_factory=Budget)
    #: per-seed diagnostics a plugin wants in the record (e.g. target-model quality)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: artifacts produced for this seed: name -> {"path": ..., "sha256": ...}
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: set by the runner while a method distills: where to keep resumable checkpoints
    #: (survives a kill, removed once the artifact is complete) and where to write extra
    #: files (PNG grids, loss curves) that belong with the artifact
    checkpoint_dir: Any = None
    output_dir: Any = None

    def log(self, msg: str) -> None:
        term.log(msg)

    def mark_diagnostic(self, reason: str) -> None:
        """Say that this result is a diagnostic (an ablation, an oracle), not an entry for its
        method: ``extras["diagnostic"]`` collects the reasons, and the leaderboard shows such
        rows apart and never counts them as best."""
        reasons = self.extras.setdefault("diagnostic", [])
        if reason not in reasons:
            reasons.append(reason)

    def report(self, label: str, value: Any, description: str = "") -> None:
        """Show ``value`` beside this result (a leaderboard column named ``label``, and in
        ``ddbench show``), e.g. the quality of a model the method depends on."""
        self.extras.setdefault("reported", {})[label] = {"value": value, "description": description}

    def progress(self, total: int, description: str):
        """``with ctx.progress(total, "what") as bar: ... bar.advance(1, loss=0.3)``: a live bar
        with ETA on a terminal, a line with ETA about every 30 s otherwise."""
        return term.progress(total, description)

    def seed_everything(self, offset: int = 0) -> None:
        """Seed python, numpy and torch (CPU and CUDA) with ``seed + offset``."""
        import numpy as np
        import torch

        s = int(self.seed) + int(offset)
        random.seed(s)
        np.random.seed(s % (2**32))
        torch.manual_seed(s)

    def generator(self, offset: int = 0, device: str | None = None):
        import torch

        g = torch.Generator(device=device or "cpu")
        g.manual_seed(int(self.seed) * 1_000_003 + int(offset))
        return g

    def torch_device(self):
        import torch

        return torch.device(self.device)

    def prepare(self, name: str, resolution: int | None = None):
        from .data import prepare

        return prepare(name, resolution, cache=self.cache)
