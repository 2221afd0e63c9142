"""The grid's driver: splits runs into units, starts them in dependency order, saves the
records the workers send back (it alone writes the run database), shows one progress
display, and stops cleanly on Ctrl-C.

Units. A run with one seed is one unit. A run with several seeds is one unit per seed
(distil and evaluate that seed, into the cache) and a last unit that assembles the record
from the cache, so seeds run in parallel and the record has the usual shape. A unit that
needs a distilled set another unit also needs (same method, options, budget, source and
seed) starts after the first of them: the set is made once, then read from the cache.
Artifacts the host cannot see (a target model, a teacher, prepared data) are shared
through the cache's lock: the first worker makes them, the others wait and reuse.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any

from .. import term
from .executors import Executor, WorkerLost, payload_for, wait_briefly
from .spec import Grid, GridRun
from .worker import forwarded_env, runtime_plugins

#: seconds to wait for running units to record themselves interrupted after Ctrl-C
INTERRUPT_GRACE_S = 30.0


@dataclasses.dataclass
class Unit:
    id: int
    run: GridRun
    seeds: list[int]
    #: "run" makes the run's record; "seed" fills the cache for one seed of a multi-seed run
    kind: str
    deps: set[int] = dataclasses.field(default_factory=set)
    attempts: int = 0
    started: float | None = None


def _is_work(u: Unit) -> bool:
    return u.kind == "seed" or len(u.run.seeds) == 1


def plan(grid: Grid) -> list[Unit]:
    units: list[Unit] = []
    producer: dict[str, int] = {}

    def add(run: GridRun, seeds: list[int], kind: str, deps: set[int]) -> Unit:
        u = Unit(id=len(units), run=run, seeds=seeds, kind=kind, deps=set(deps))
        if kind == "seed" or len(run.seeds) == 1:
            for s in seeds:
                key = run.dkeys[s]
                if key in producer:
                    u.deps.add(producer[key])
                else:
                    producer[key] = u.id
        units.append(u)
        return u

    for run in grid.runs:
        if run.status != "todo":
            continue
        if len(run.seeds) == 1:
            add(run, run.seeds, "run", set())
        else:
            seed_units = [add(run, [s], "seed", set()) for s in run.seeds]
            add(run, run.seeds, "run", {u.id for u in seed_units})
    return units


def shared_sets(grid: Grid) -> tuple[int, int]:
    """(distilled sets the todo runs need, seed-runs that need one): how much is shared."""
    keys = [k for r in grid.runs if r.status == "todo" for k in r.dkeys.values()]
    return len(set(keys)), len(keys)


@dataclasses.dataclass
class Outcome:
    grid: Grid
    executor: str
    wall_s: float
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.grid.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"grid": self.grid.origin, "variant": self.grid.variant, "executor": self.executor,
                "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted, "counts": self.counts(),
                "runs": [r.to_dict() for r in self.grid.runs]}


def execute(grid: Grid, executor: Executor, store: Any, retries: int = 2) -> Outcome:
    units = plan(grid)
    plugins, env = runtime_plugins(), forwarded_env()
    pending = list(units)
    in_flight: dict[Any, Unit] = {}
    finished_ids: set[int] = set()
    run_started: dict[int, float] = {}
    durations: list[float] = []
    made_sha: dict[str, str] = {}
    t0 = time.time()
    display = Display(grid, executor, units)
    interrupted = False

    def fail_run(run: GridRun, status: str, error: str | None) -> None:
        if run.status in ("failed", "interrupted"):
            return
        run.status, run.error = status, error
        run.seconds = round(time.time() - run_started.get(run.index, time.time()), 1)
        display.event(run)

    def on_result(u: Unit, result: dict[str, Any] | None, exc: BaseException | None) -> bool:
        """Handle one finished unit; False when it should be tried again."""
        run = u.run
        if exc is not None:
            if isinstance(exc, WorkerLost) and executor.driver_retries and u.attempts <= retries:
                display.note(f"[yellow]worker lost[/] running {run.label}; retrying (attempt {u.attempts + 1} of "
                             f"{retries + 1}), it resumes from its checkpoints")
                return False
            fail_run(run, "failed", str(exc))
            return True
        status, record = result.get("status"), result.get("record")
        if status == "finished":
            problem = _check_hashes(record or {}, made_sha)
            if problem:
                status, result = "failed", {**result, "error": problem}
                if record is not None:
                    record = {**record, "status": "failed", "error": problem}
        if status == "finished":
            if _is_work(u):  # the assembling unit of a multi-seed run only reads the cache
                durations.append(float(result.get("seconds") or 0.0))
            if u.kind == "run":
                _save(store, record)
                run.status, run.run_id = "finished", record["run_id"]
                run.seconds = round(time.time() - run_started.get(run.index, time.time()), 1)
                display.event(run)
            return True
        if record is not None:  # a failed or interrupted record is kept, as `ddbench run` keeps it
            _save(store, record)
            run.run_id = record["run_id"]
        fail_run(run, "interrupted" if status == "interrupted" else "failed", result.get("error"))
        return True

    try:
        with display:
            while pending or in_flight:
                for u in list(pending):
                    if len(in_flight) >= executor.slots:
                        break
                    if u.run.status in ("failed", "interrupted"):
                        pending.remove(u)
                        finished_ids.add(u.id)
                        continue
                    if u.deps <= finished_ids:
                        pending.remove(u)
                        u.attempts += 1
                        u.started = time.time()
                        run_started.setdefault(u.run.index, u.started)
                        u.run.status = "running"
                        display.update(in_flight, pending, durations)
                        in_flight[executor.submit(payload_for(executor, _spec_dict(u), plugins, env))] = u
                if not in_flight:
                    if pending and not any(u.deps <= finished_ids for u in pending):  # pragma: no cover
                        raise RuntimeError("grid plan has a dependency cycle")
                    continue
                for handle, result, exc in executor.wait(list(in_flight), timeout=0.5):
                    u = in_flight.pop(handle)
                    if on_result(u, result, exc):
                        finished_ids.add(u.id)
                    else:
                        pending.insert(0, u)
                    if result is not None and result.get("status") == "interrupted":
                        raise KeyboardInterrupt  # a worker was interrupted: the user pressed Ctrl-C
                display.update(in_flight, pending, durations)
    except KeyboardInterrupt:
        interrupted = True
        if in_flight:
            term.log(f"[yellow]interrupting[/]: {len(in_flight)} running unit(s) are saving their state "
                     f"(up to {INTERRUPT_GRACE_S:.0f} s; Ctrl-C again to stop at once)")
            try:
                executor.interrupt(list(in_flight))
                for handle, result, exc in wait_briefly(executor, list(in_flight), INTERRUPT_GRACE_S):
                    u = in_flight.pop(handle)
                    if exc is None and result is not None:
                        on_result(u, result, None)
            except KeyboardInterrupt:
                pass
        for u in in_flight.values():
            fail_run(u.run, "interrupted", "interrupted by the user; run the same command again to resume")
        for run in grid.runs:
            if run.status in ("todo", "running"):
                run.status = "cancelled"
    finally:
        try:
            executor.close(now=interrupted)
        except KeyboardInterrupt:  # pragma: no cover
            pass
    return Outcome(grid=grid, executor=executor.describe(), wall_s=time.time() - t0, interrupted=interrupted)


def _spec_dict(u: Unit) -> dict[str, Any]:
    spec = dataclasses.asdict(u.run.spec)
    spec["seeds"] = list(u.seeds)
    spec["overrides"] = dict(spec["overrides"])
    return spec


def _check_hashes(record: dict[str, Any], made: dict[str, str]) -> str | None:
    """The same distilled set read by two workers must have the same sha256 (shared storage)."""
    for name, art in (record.get("artifacts") or {}).items():
        if not name.startswith("distilled/") or not isinstance(art, dict):
            continue
        path, sha = art.get("path"), art.get("sha256")
        if path in made and made[path] != sha:
            return (f"the distilled set {path} was read with sha256 {str(sha)[:12]}… but made with "
                    f"{made[path][:12]}…: the storage folder is not coherent between workers")
        made.setdefault(path, sha)
    return None


def _save(store: Any, record: dict[str, Any] | None) -> None:
    if record is None:
        return
    from ..records import RunRecord

    store.save(RunRecord.from_dict(record))


# ---------------------------------------------------------------------------- display


class Display:
    """One live line for the whole grid on a terminal (runs done/running/failed, ETA); a log
    line per finished run otherwise; nothing with DDBENCH_QUIET."""

    def __init__(self, grid: Grid, executor: Executor, units: list[Unit]) -> None:
        self.grid, self.executor = grid, executor
        self.total = len(grid.runs)
        self.work_total = sum(1 for u in units if _is_work(u))
        self.quiet = bool(os.environ.get("DDBENCH_QUIET"))
        self.live = not self.quiet and (sys.stderr.isatty() or bool(os.environ.get("DDBENCH_PROGRESS")))
        self._progress = None
        self._task = None
        self._t0 = time.time()
        self._last_line = 0.0

    def __enter__(self) -> "Display":
        done = sum(1 for r in self.grid.runs if r.status == "done")
        if not self.quiet:
            term.log(f"grid: {self.total} runs ({done} already done) on {self.executor.describe()}")
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("grid"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("{task.fields[status]}"), console=term.console(), transient=False)
            self._progress.start()
            self._task = self._progress.add_task("grid", total=self.total, completed=done, status="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def status(self, in_flight: dict[Any, Unit], pending: list[Unit], durations: list[float]) -> str:
        c: dict[str, int] = {}
        for r in self.grid.runs:
            c[r.status] = c.get(r.status, 0) + 1
        running = len({u.run.index for u in in_flight.values()})
        parts = [f"{c.get('finished', 0) + c.get('done', 0)} done ({c.get('done', 0)} skipped)",
                 f"{running} running", f"{c.get('failed', 0)} failed"]
        if c.get("interrupted"):
            parts.append(f"{c['interrupted']} interrupted")
        # a run's seeds run as separate units (processes): say which, so that two busy workers
        # on one run's seeds do not read as one
        working = sorted((u for u in in_flight.values() if _is_work(u)), key=lambda u: u.id)
        if self.work_total:
            left = sum(1 for u in pending if _is_work(u)) + len(working)
            seeds = f"seed units {self.work_total - left}/{self.work_total}"
            if working:
                seeds += " (now: " + ", ".join(f"{u.run.spec.method} → {u.run.spec.task} seed "
                                               f"{','.join(map(str, u.seeds))}" for u in working[:4])
                seeds += ", …)" if len(working) > 4 else ")"
            parts.append(seeds)
        remaining = sum(1 for u in pending if _is_work(u)) + 0.5 * sum(1 for u in in_flight.values() if _is_work(u))
        if durations and remaining:
            eta = sum(durations) / len(durations) * remaining / max(1, self.executor.slots)
            parts.append(f"eta {term._duration(eta)}")
        elif remaining:
            parts.append("eta ?")
        return " · ".join(parts)

    def update(self, in_flight: dict[Any, Unit], pending: list[Unit], durations: list[float]) -> None:
        if self.quiet:
            return
        text = self.status(in_flight, pending, durations)
        if self._progress is not None:
            completed = sum(1 for r in self.grid.runs if r.status in ("done", "finished", "failed", "interrupted"))
            self._progress.update(self._task, completed=completed, status=text)
        elif time.time() - self._last_line >= term.LINE_EVERY_S:
            self._last_line = time.time()
            term.log(f"  grid: {text}")

    def event(self, run: GridRun) -> None:
        colour = {"finished": "green", "failed": "red", "interrupted": "yellow"}.get(run.status, "white")
        secs = f" in {term._duration(run.seconds)}" if run.seconds is not None else ""
        line = f"[{colour}]{run.status}[/] #{run.index} {run.label}{secs}" + (f" → {run.run_id}" if run.run_id else "")
        if run.status == "failed" and run.error:
            line += f": {run.error.strip().splitlines()[-1][:200]}"
        self.note(line)

    def note(self, line: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            term.log(line)


def print_summary(outcome: Outcome, dry_run: bool = False) -> None:
    """The table of runs on stderr: run, seeds, status, time, record id."""
    from rich.table import Table

    if os.environ.get("DDBENCH_QUIET"):
        return
    grid = outcome.grid
    title = f"grid: {grid.origin}" + (f" (variant {grid.variant})" if grid.variant else "")
    table = Table(title=title, title_justify="left")
    for col in ("#", "run", "seeds", "status", "time", "record"):
        table.add_column(col, justify="right" if col in ("#", "time") else "left", no_wrap=col in ("record", "time"))
    colours = {"finished": "green", "done": "cyan", "failed": "red", "interrupted": "yellow", "cancelled": "yellow",
               "todo": "white"}
    for r in grid.runs:
        status = r.status
        if r.status == "failed" and r.error:
            status += f": {r.error.strip().splitlines()[-1][:80]}"
        table.add_row(str(r.index), r.label, ",".join(map(str, r.seeds)),
                      f"[{colours.get(r.status, 'white')}]{status}[/]",
                      term._duration(r.seconds) if r.seconds is not None else "", r.run_id or "")
    term.console().print(table)
    c = outcome.counts()
    if dry_run:
        sets, needs = shared_sets(grid)
        term.log(f"{c.get('todo', 0)} to run, {c.get('done', 0)} already done (finished records with the same "
                 f"config hash and seeds); the runs to do need {sets} distilled set(s) for {needs} run-seed(s)")
        return
    term.log(" · ".join(f"{n} {k}" for k, n in sorted(c.items())) + f" in {term._duration(outcome.wall_s)} on "
             f"{outcome.executor}")
    if outcome.interrupted:
        term.log("[yellow]interrupted[/]: finished runs are recorded and checkpoints are kept; run the same "
                 "command again to resume (done runs are skipped)")
    elif c.get("failed"):
        term.log("[red]some runs failed[/]: `ddbench show RUN_ID` shows a record's error; fix it and run the same "
                 "command again (finished runs are skipped)")
