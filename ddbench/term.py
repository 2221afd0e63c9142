"""All human-facing terminal output (rich), always on stderr; honours NO_COLOR."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    return _console


def log(msg: str) -> None:
    if os.environ.get("DDBENCH_QUIET"):
        return
    console().print(msg)


class Tracker:
    """A progress bar handle: ``advance(n, **postfix)`` moves it and shows the postfix."""

    def __init__(self, progress: Any, task_id: Any, total: int) -> None:
        self._p, self._id, self.total = progress, task_id, total
        self.postfix: dict[str, Any] = {}

    def advance(self, n: int = 1, **postfix: Any) -> None:
        if postfix:
            self.postfix.update(postfix)
        if self._p is not None:
            text = " ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())
            self._p.update(self._id, advance=n, info=text)

    def set(self, completed: int) -> None:
        if self._p is not None:
            self._p.update(self._id, completed=completed)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@contextmanager
def progress(total: int, description: str) -> Iterator[Tracker]:
    """A bar with ETA for a loop of ``total`` steps (silent when DDBENCH_QUIET is set
    or stderr is not a terminal and DDBENCH_PROGRESS is not set)."""
    quiet = os.environ.get("DDBENCH_QUIET") or (not sys.stderr.isatty() and not os.environ.get("DDBENCH_PROGRESS"))
    if quiet:
        t0 = time.time()
        yield Tracker(None, None, total)
        if not os.environ.get("DDBENCH_QUIET") and time.time() - t0 > 5:
            log(f"  {description}: {total} steps in {time.time() - t0:.1f} s")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=console(), transient=False) as p:
        tid = p.add_task(description, total=total, info="")
        yield Tracker(p, tid, total)
