"""Content-addressed artifact cache and checkpoints.

An artifact (target model, distilled set, expert trajectories, prepared data) lives in
``$DDBENCH_HOME/cache/<kind>/<key>/`` where ``key`` hashes the config that made it.
Creation writes into ``<key>.partial/`` and renames when done, so a killed run never
leaves a half-written artifact; the ``.partial`` folder keeps checkpoints for resume.

Creation holds an exclusive ``flock`` on ``<key>.lock`` (removed once the artifact is in
place): a second process (another grid worker, on this machine or on any machine that
mounts the same folder) that needs the same artifact waits, then reuses it; nothing is
computed twice. The operating system drops the lock of a killed process, so a stale lock
never blocks. Each finished artifact carries
``cache-manifest.json`` (the sha256 of every file); a cache made with ``verify=True``
checks it whenever it hands out an artifact made elsewhere (shared storage).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from . import paths

#: the sha256 of every file of a finished artifact, written before it is renamed into place
MANIFEST = "cache-manifest.json"


def config_hash(config: Any, n: int = 16) -> str:
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


class ArtifactCache:
    def __init__(self, root: Path | None = None, verify: bool = False) -> None:
        self.root = Path(root) if root else paths.home() / "cache"
        #: check each artifact handed out from the cache against its manifest (once per process)
        self.verify = verify
        self._verified: set[str] = set()
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
        """Return (folder, was_cached). ``create(out_dir, checkpoint_dir)`` fills ``out_dir``.

        Safe across processes: one creates, the others wait on ``<key>.lock`` and reuse."""
        final = self.path(kind, config)
        if (final / "config.json").exists():
            self._check(final)
            return final, True
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = final.with_name(final.name + ".lock")
        with _exclusive(lock, f"{kind} {final.name}"):
            if (final / "config.json").exists():  # another process made it while this one waited
                self._check(final)
                return final, True
            for stale in final.parent.glob(final.name + ".tmp*"):  # left by a killed process: the lock is ours
                shutil.rmtree(stale, ignore_errors=True)
            ckpt = self.partial(kind, config)
            tmp = final.with_name(final.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True)
            try:
                create(tmp, ckpt)
            except BaseException:  # failed or interrupted: the checkpoints stay, the half-made copy goes
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            (tmp / MANIFEST).write_text(json.dumps(_hashes(tmp), indent=1, sort_keys=True))
            (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
            if final.exists():  # a folder without config.json: an unfinished copy, never handed out
                shutil.rmtree(final, ignore_errors=True)
            try:
                tmp.rename(final)
            except OSError:  # another process finished first (without locks, e.g. an older ddbench): keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(ckpt, ignore_errors=True)
            # safe while held: a process waiting on this lock, or opening it now, finds config.json first
            lock.unlink(missing_ok=True)
        self._verified.add(str(final))
        return final, False

    def _check(self, folder: Path) -> None:
        if not self.verify or str(folder) in self._verified:
            return
        manifest = folder / MANIFEST
        if manifest.exists():  # artifacts made before manifests existed are trusted as they are
            expected = json.loads(manifest.read_text())
            actual = _hashes(folder, only=expected)
            bad = sorted(name for name, digest in expected.items() if actual.get(name) != digest)
            if bad:
                from .errors import StoreError

                raise StoreError(f"the cached artifact {folder} does not match its manifest ({', '.join(bad[:3])} "
                                 f"{'differs' if len(bad) == 1 else 'differ'}): it was damaged or only partly copied; "
                                 f"delete the folder (rm -r {folder}) and run again to rebuild it")
        self._verified.add(str(folder))


def _hashes(folder: Path, only: dict[str, str] | None = None) -> dict[str, str]:
    out = {}
    names = only if only is not None else sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST, "config.json"))
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        out[name] = digest.hexdigest()
    return out


@contextmanager
def _exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``; wait (saying so) while another process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: creation is still atomic, only not shared
        yield
        return
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from . import term

            term.log(f"  waiting for another process that is making {what}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write a checkpoint (tensors / plain containers only) so a kill never leaves it half-written."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Any:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
