"""ddbench leaderboard build|show|add"""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_DIR = Path("leaderboard")


@click.group()
def leaderboard():
    """Build and show the leaderboard from run records (tables are never edited by hand)."""


@leaderboard.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True,
              help="leaderboard folder (records go to DIR/records)")
def add(run_ids, folder):
    """Export finished runs from the local store into DIR/records as JSON."""
    from .. import paths
    from ..errors import DDBenchError
    from ..store import RunStore

    store = RunStore()
    (folder / "records").mkdir(parents=True, exist_ok=True)
    for rid in run_ids:
        rec = store.get(rid)
        if rec.status != "finished":
            raise DDBenchError(f"run {rec.run_id} is {rec.status}, not finished; only finished runs go on the leaderboard")
        p = folder / "records" / f"{rec.run_id}.json"
        text = json.dumps(rec.to_dict(), indent=2, sort_keys=True, default=str)
        # artifact paths are local to this machine's DDBENCH_HOME: publish them relative to it
        text = text.replace(json.dumps(str(paths.home()))[1:-1], "$DDBENCH_HOME")
        p.write_text(text)
        click.echo(str(p))


@leaderboard.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True,
              help="leaderboard folder (reads DIR/records, writes tables into DIR)")
@click.option("--no-png", is_flag=True, help="skip the PNG charts")
def build(folder, no_png):
    """Rebuild Markdown, CSV and PNG tables from DIR/records."""
    from ..leaderboard import build as do_build

    for p in do_build(folder / "records", folder, png=not no_png):
        click.echo(str(p))


@leaderboard.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True,
              help="leaderboard folder (reads DIR/records)")
def show(folder):
    """Print the leaderboard tables in the terminal."""
    from rich.table import Table as RTable

    from ..leaderboard import _cell, build_tables, load_records
    from ..term import console

    tables = build_tables(load_records(folder / "records"))
    if not tables:
        console().print(f"no finished records in {folder / 'records'}; add some with `ddbench leaderboard add RUN_ID`")
    for t in tables:
        cols = t.columns()
        rt = RTable(title=f"{t.task} — source {t.source}, preset {t.preset}, budget {t.budget}"
                    + (" (validation: sizing, not results)" if t.split == "val" else ""))
        rt.add_column("method", style="bold")
        for c in cols:
            rt.add_column(f"{c} {'↑' if t.spec(c).higher_is_better else '↓'}")
        rt.add_column("n")
        for label, rec in t.rows.items():
            cells = [_cell(rec, c, t.best(c) == label).replace("**", "") for c in cols]
            cells = [f"[bold green]{x}[/]" if t.best(c) == label else x for x, c in zip(cells, cols)]
            rt.add_row(label, *cells, str(max((m.n for m in rec.metrics), default=0)))
        console().print(rt)
        for n in t.notes():
            console().print(f"  {n}")
