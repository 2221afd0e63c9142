"""Where ddbench keeps its state (no torch here)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``DDBENCH_HOME``, default ``~/.ddbench``; created on first use."""
    from .errors import StoreError

    p = Path(os.environ.get("DDBENCH_HOME") or Path.home() / ".ddbench").expanduser()
    if p.exists() and not p.is_dir():
        raise StoreError(f"DDBENCH_HOME {p} is a file, not a folder; point DDBENCH_HOME at a folder (ddbench keeps its "
                         "run database and cache there), or move the file away")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create DDBENCH_HOME {p} ({e.strerror}); point DDBENCH_HOME at a folder you can "
                         "write to") from None
    return p


def data_search_path() -> list[Path]:
    """``DDBENCH_DATA`` (``:``-separated folders), then ``$DDBENCH_HOME/data``."""
    out = [Path(p).expanduser() for p in os.environ.get("DDBENCH_DATA", "").split(os.pathsep) if p.strip()]
    out.append(Path(os.environ.get("DDBENCH_HOME") or Path.home() / ".ddbench").expanduser() / "data")
    return out
