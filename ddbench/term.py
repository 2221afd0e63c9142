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


#: seconds between progress lines when stderr is not a terminal (a cluster log, ``> log 2>&1``)
LINE_EVERY_S = float(os.environ.get("DDBENCH_PROGRESS_EVERY", "30"))


class Tracker:
    """A progress handle: ``advance(n, **postfix)`` moves it and shows the postfix. With a
    live bar it updates the bar; otherwise (``lines=True``) it prints one line with the
    rate and ETA about every ``LINE_EVERY_S`` seconds, so a long phase in a log file is
    never silent."""

    def __init__(self, progress: Any, task_id: Any, total: int, description: str = "", lines: bool = False) -> None:
        self._p, self._id, self.total = progress, task_id, total
        self.postfix: dict[str, Any] = {}
        self.description, self._lines = description, lines
        self.completed = 0
        self._t0 = self._last = time.time()

    def _info(self) -> str:
        return " ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())

    def advance(self, n: int = 1, **postfix: Any) -> None:
        if postfix:
            self.postfix.update(postfix)
        self.completed += n
        if self._p is not None:
            self._p.update(self._id, advance=n, info=self._info())
        elif self._lines and time.time() - self._last >= LINE_EVERY_S:
            self._last = time.time()
            log(self.line())

    def line(self) -> str:
        """``description: done/total (pct) elapsed, eta, postfix``."""
        elapsed = time.time() - self._t0
        done, total = self.completed, max(1, self.total)
        eta = elapsed / done * (total - done) if done else float("nan")
        eta_s = "?" if eta != eta else _duration(eta)
        return (f"  {self.description}: {done}/{self.total} ({100 * done / total:.0f}%) "
                f"elapsed {_duration(elapsed)}, eta {eta_s}" + (f", {self._info()}" if self.postfix else ""))

    def set(self, completed: int) -> None:
        self.completed = completed
        if self._p is not None:
            self._p.update(self._id, completed=completed)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@contextmanager
def progress(total: int, description: str) -> Iterator[Tracker]:
    """A live bar with ETA for a loop of ``total`` steps on a terminal; when stderr is not a
    terminal (and DDBENCH_PROGRESS is not set), a line with ETA about every 30 s
    (``DDBENCH_PROGRESS_EVERY``) and one at the end; nothing with DDBENCH_QUIET."""
    if os.environ.get("DDBENCH_QUIET"):
        yield Tracker(None, None, total, description)
        return
    if not sys.stderr.isatty() and not os.environ.get("DDBENCH_PROGRESS"):
        t0 = time.time()
        tracker = Tracker(None, None, total, description, lines=True)
        yield tracker
        if time.time() - t0 > 5:
            log(f"  {description}: {tracker.completed}/{total} steps in {_duration(time.time() - t0)}")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                  console=console(), transient=False) as p:
        tid = p.add_task(description, total=total, info="")
        yield Tracker(p, tid, total)
