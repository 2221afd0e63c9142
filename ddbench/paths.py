"""Where ddbench keeps its state (no torch here)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``DDBENCH_HOME``, default ``~/.ddbench``; created on first use."""
    p = Path(os.environ.get("DDBENCH_HOME") or Path.home() / ".ddbench").expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def data_search_path() -> list[Path]:
    """``DDBENCH_DATA`` (``:``-separated folders), then ``$DDBENCH_HOME/data``."""
    out = [Path(p).expanduser() for p in os.environ.get("DDBENCH_DATA", "").split(os.pathsep) if p.strip()]
    out.append(Path(os.environ.get("DDBENCH_HOME") or Path.home() / ".ddbench").expanduser() / "data")
    return out
