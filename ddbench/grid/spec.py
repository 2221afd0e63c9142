"""A grid of runs: blocks from a TOML file or from the command line, expanded and validated.

A block crosses its axes (methods × tasks × sources × budgets) into runs; each run is one
``ddbench run`` with its seeds, so it makes one record of the usual shape. Every run is
resolved (plugins, presets, options) before any work starts, and one already recorded as
finished (same config hash, same seeds) is marked ``done``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import DDBenchError, OptionError

TOP_KEYS = ("title", "description", "seeds", "preset", "variants", "run")
BLOCK_KEYS = ("name", "methods", "tasks", "sources", "preset", "seeds", "ipc", "images", "options", "method_options",
              "variants")
VARIANT_KEYS = ("description", "options")


@dataclasses.dataclass
class Block:
    """One ``[[run]]`` table (or the command line's flags) before expansion."""

    where: str
    methods: list[str]
    tasks: list[str]
    sources: list[str | None] = dataclasses.field(default_factory=lambda: [None])
    preset: str | None = "quick"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    #: (images, ipc) pairs; (None, None) = the preset's budget
    budgets: list[tuple[int | None, int | None]] = dataclasses.field(default_factory=lambda: [(None, None)])
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    method_options: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GridRun:
    """One run of the grid and what became of it."""

    index: int
    where: str
    spec: Any  # runner.RunSpec
    config_hash: str
    seeds: list[int]
    #: seed -> key of the distilled set that seed needs (runs with equal keys share it)
    dkeys: dict[int, str]
    label: str
    status: str = "todo"  # todo | done | running | finished | failed | interrupted | cancelled
    run_id: str | None = None
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"index": self.index, "where": self.where, "label": self.label, "method": s.method, "task": s.task,
                "source": s.source, "preset": s.preset, "seeds": list(self.seeds), "ipc": s.ipc, "images": s.images,
                "overrides": dict(s.overrides), "device": s.device, "config_hash": self.config_hash,
                "status": self.status, "run_id": self.run_id, "seconds": self.seconds, "error": self.error}


@dataclasses.dataclass
class Grid:
    runs: list[GridRun]
    origin: str
    variant: str | None = None


# ---------------------------------------------------------------------------- parsing


def _fail(where: str, msg: str) -> OptionError:
    return OptionError(f"{where}: {msg}")


def _as_text(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise _fail(where, f"option {key!r} has a value of type {type(value).__name__}; write a string, number, "
                       "boolean or list")


def _options(table: Any, where: str, what: str = "options") -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise _fail(where, f"{what} must be a table of key = value, e.g. {what} = {{ steps = \"100\" }}")
    return {str(k): _as_text(v, where, k) for k, v in table.items()}


def axis(value: Any, where: str, key: str, kind: type = str) -> list:
    """A scalar, a list, or (command line) a comma-separated string; each value once."""
    if value is None:
        return []
    if isinstance(value, str) and kind is str:
        items: list = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, str):
        try:
            items = [kind(v.strip()) for v in value.split(",") if v.strip()]
        except ValueError:
            raise _fail(where, f"cannot parse {key} {value!r}: give comma-separated integers such as 1,10") from None
    elif isinstance(value, list):
        items = list(value)
    else:
        items = [value]
    for v in items:
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise _fail(where, f"{key} must be integers, got {v!r}")
        if kind is str and not isinstance(v, str):
            raise _fail(where, f"{key} must be names (strings), got {v!r}")
    if not items:
        raise _fail(where, f"{key} is empty: give at least one value")
    seen: set = set()
    for v in items:
        if v in seen:
            raise _fail(where, f"{key} lists {v!r} twice; each value of an axis must appear once")
        seen.add(v)
    return items


def seeds_of(value: Any, where: str) -> list[int]:
    from ..runner import parse_seeds

    if isinstance(value, str):
        try:
            return parse_seeds(value)
        except OptionError as e:
            raise _fail(where, str(e)) from None
    return axis(value, where, "seeds", int)


def _budgets(ipc: Any, images: Any, where: str, prefix: str = "") -> list[tuple[int | None, int | None]]:
    if ipc is not None and images is not None:
        raise _fail(where, f"give the budget once: {prefix}ipc (images per class) or {prefix}images (in total), not both")
    if ipc is not None:
        return [(None, k) for k in axis(ipc, where, f"{prefix}ipc", int)]
    if images is not None:
        return [(n, None) for n in axis(images, where, f"{prefix}images", int)]
    return [(None, None)]


def _preset(value: Any, where: str) -> str | None:
    if not isinstance(value, str):
        raise _fail(where, f"preset must be a name such as \"quick\", got {value!r}")
    return None if value == "none" else value


def block_from_table(table: Mapping[str, Any], where: str, seeds: list[int], preset: str | None,
                     extra_options: Mapping[str, str]) -> Block:
    unknown = sorted(set(table) - set(BLOCK_KEYS))
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}; a [[run]] table takes {', '.join(BLOCK_KEYS)}")
    for key in ("methods", "tasks"):
        if key not in table:
            raise _fail(where, f"{key} is missing: every [[run]] names its {key}")
    methods = axis(table["methods"], where, "methods")
    method_options = {}
    for m, opts in _table(table.get("method_options", {}), where, "method_options").items():
        if m not in methods:
            raise _fail(where, f"method_options names {m!r}, which is not among the block's methods "
                               f"({', '.join(methods)})")
        method_options[m] = _options(opts, where, f"method_options.{m}")
    return Block(
        where=where, methods=methods, tasks=axis(table["tasks"], where, "tasks"),
        sources=axis(table["sources"], where, "sources") if "sources" in table else [None],
        preset=_preset(table["preset"], where) if "preset" in table else preset,
        seeds=seeds_of(table["seeds"], where) if "seeds" in table else list(seeds),
        budgets=_budgets(table.get("ipc"), table.get("images"), where),
        options={**extra_options, **_options(table.get("options", {}), where)},
        method_options=method_options,
    )


def _table(value: Any, where: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"{key} must be a table")
    return value


def load_file(path: Path, variant: str | None = None, seeds: str | None = None,
              overrides: Mapping[str, str] | None = None) -> tuple[list[Block], str | None]:
    """Blocks of a grid file for one variant (default: the first listed), and that variant."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DDBenchError(f"no grid file {path}; give the path of a TOML grid file (see docs/howto-grid.md)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DDBenchError(f"cannot read the grid file {path} ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise DDBenchError(f"{path} is not valid TOML ({e})") from None
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}; a grid file takes {', '.join(TOP_KEYS)}")
    variants = _table(data.get("variants", {}), where, "variants")
    for name, v in variants.items():
        bad = sorted(set(_table(v, where, f"variants.{name}")) - set(VARIANT_KEYS))
        if bad:
            raise _fail(where, f"variants.{name} has an unknown key {bad[0]!r}; a variant takes "
                               f"{', '.join(VARIANT_KEYS)}")
    if variant is not None and variant not in variants:
        raise _fail(where, f"no variant {variant!r}; " + (f"the file has {', '.join(variants)}" if variants
                                                          else "the file defines no [variants]"))
    chosen = variant if variant is not None else next(iter(variants), None)
    v_opts = _options(variants[chosen].get("options", {}), where, f"variants.{chosen}.options") if chosen else {}
    file_seeds = seeds_of(seeds, "--seeds") if seeds is not None else (
        seeds_of(data["seeds"], where) if "seeds" in data else [0])
    preset = _preset(data["preset"], where) if "preset" in data else "quick"
    tables = data.get("run", [])
    if not isinstance(tables, list) or not tables:
        raise _fail(where, "no runs: add at least one [[run]] table with methods and tasks")
    blocks = []
    for i, table in enumerate(tables, 1):
        bwhere = f"{where} [[run]] #{i}" + (f" ({table['name']})" if isinstance(table, Mapping) and "name" in table else "")
        if not isinstance(table, Mapping):
            raise _fail(bwhere, "must be a table")
        only = table.get("variants")
        if only is not None:
            only = axis(only, bwhere, "variants")
            missing = [v for v in only if v not in variants]
            if missing:
                raise _fail(bwhere, f"variants names {missing[0]!r}, which [variants] does not define")
            if chosen not in only:
                continue
        table = {k: v for k, v in table.items() if k != "variants"}
        block = block_from_table(table, bwhere, file_seeds, preset, v_opts)
        block.options.update(overrides or {})
        blocks.append(block)
    if not blocks:
        raise _fail(where, f"variant {chosen!r} has no runs")
    return blocks, chosen


def block_from_flags(methods: str, tasks: str, sources: str | None, preset: str | None, ipc: str | None,
                     images: str | None, seeds: str, overrides: Mapping[str, str]) -> Block:
    where = "the command line"
    return Block(where=where, methods=axis(methods, where, "--methods"), tasks=axis(tasks, where, "--tasks"),
                 sources=axis(sources, where, "--sources") if sources else [None], preset=preset,
                 seeds=seeds_of(seeds, where), budgets=_budgets(ipc, images, where, "--"),
                 options=dict(overrides))


# ---------------------------------------------------------------------------- expansion


def expand(blocks: Sequence[Block], device: str = "cpu", origin: str = "the command line",
           variant: str | None = None) -> Grid:
    """Every run of every block, resolved: the first bad name or option stops it, saying where."""
    from ..cache import config_hash
    from ..runner import RunSpec, resolve

    runs: list[GridRun] = []
    seen: dict[tuple[str, tuple[int, ...]], GridRun] = {}
    for block in blocks:
        for method in block.methods:
            for task in block.tasks:
                for source in block.sources:
                    for images, ipc in block.budgets:
                        overrides = {**block.options, **block.method_options.get(method, {})}
                        spec = RunSpec(method=method, task=task, source=source, preset=block.preset,
                                       seeds=list(block.seeds), overrides=overrides, device=device,
                                       images=images, ipc=ipc)
                        where = f"{block.where}, method {method}, task {task}"
                        try:
                            r = resolve(spec)
                        except DDBenchError as e:
                            raise DDBenchError(f"{where}: {e}") from None
                        chash = r.config.hash()
                        key = (chash, tuple(sorted(r.seeds)))
                        if key in seen:
                            raise OptionError(f"{where}: the same run as {seen[key].where} (config {chash}, seeds "
                                              f"{','.join(map(str, r.seeds))}); list each run once")
                        base = {"method": r.method.name, "version": r.method.version,
                                "options": r.method.cache_options(r.m_opts), "budget": r.config.budget.to_dict(),
                                "source": r.config.source, "device": device.split(":")[0]}
                        run = GridRun(index=len(runs) + 1, where=where, spec=spec, config_hash=chash,
                                      seeds=list(r.seeds),
                                      dkeys={s: config_hash({**base, "seed": s}) for s in r.seeds},
                                      label=label(spec, r.config))
                        seen[key] = run
                        runs.append(run)
    return Grid(runs=runs, origin=origin, variant=variant)


def label(spec: Any, config: Any) -> str:
    text = f"{config.method} → {config.task} ({config.source}"
    if not config.budget.empty:
        text += f", {config.budget.label()}"
    text += ")"
    if spec.overrides:
        text += " " + " ".join(f"{k}={v}" for k, v in spec.overrides.items())
    return text


def mark_done(grid: Grid, records: Iterable[Any]) -> None:
    """Mark runs that already have a finished record (same config hash and seeds) as done."""
    finished: dict[tuple[str, tuple[int, ...]], str] = {}
    for rec in records:
        if rec.status == "finished":
            finished[(rec.config_hash, tuple(sorted(rec.seeds)))] = rec.run_id
    for run in grid.runs:
        found = finished.get((run.config_hash, tuple(sorted(run.seeds))))
        if found:
            run.status, run.run_id = "done", found
