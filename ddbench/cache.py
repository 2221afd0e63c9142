"""Content-addressed artifact cache and checkpoints.

An artifact (target model, distilled set, expert trajectories, prepared data) lives in
``$DDBENCH_HOME/cache/<kind>/<key>/`` where ``key`` hashes the config that made it.
Creation writes into ``<key>.partial/`` and renames when done, so a killed run never
leaves a half-written artifact; the ``.partial`` folder keeps checkpoints for resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from . import paths


def config_hash(config: Any, n: int = 16) -> str:
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


class ArtifactCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.home() / "cache"
        if self.root.exists() and not self.root.is_dir():
            from .errors import StoreError

            raise StoreError(f"the cache folder {self.root} is a file, not a folder; move it away (ddbench keeps prepared "
                             "data, distilled sets and evaluations there and recreates the folder) or point DDBENCH_HOME "
                             "at another folder")

    def path(self, kind: str, config: Any) -> Path:
        return self.root / kind / config_hash(config)

    def partial(self, kind: str, config: Any) -> Path:
        """Folder for checkpoints of an artifact being made (kept across kills)."""
        p = self.path(kind, config).with_name(self.path(kind, config).name + ".partial")
        p.mkdir(parents=True, exist_ok=True)
        return p

    def get_or_create(self, kind: str, config: Any, create: Callable[[Path, Path], None]) -> tuple[Path, bool]:
        """Return (folder, was_cached). ``create(out_dir, checkpoint_dir)`` fills ``out_dir``."""
        final = self.path(kind, config)
        if (final / "config.json").exists():
            return final, True
        ckpt = self.partial(kind, config)
        tmp = final.with_name(final.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        create(tmp, ckpt)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ckpt, ignore_errors=True)
        return final, False


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write a checkpoint (tensors / plain containers only) so a kill never leaves it half-written."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
