"""ddbench leaderboard build|show|add|submit|verify|accept"""

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
    """Rebuild the Markdown, CSV and PNG tables and the page DIR/index.html from DIR/records."""
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


@leaderboard.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="the bundle to write (default: submission-<first run id>.zip)")
def submit(run_ids, output):
    """Write one submission bundle (a zip) of finished runs: their records, the distilled sets they
    were scored on (safetensors + JSON), the environment and plugin versions, and a sha256 manifest.
    Send the file to the leaderboard's maintainers; `ddbench leaderboard verify` checks it."""
    from ..bundle import write_bundle
    from ..store import RunStore

    store = RunStore()
    records = [store.get(rid) for rid in run_ids]
    if len({r.run_id for r in records}) != len(records):
        raise click.UsageError("a run is named twice")
    out = output or Path(f"submission-{records[0].run_id}.zip")
    manifest = write_bundle(records, out)
    size = out.stat().st_size
    click.echo(f"wrote {out} ({len(manifest['members'])} members, {size / 2**20:.1f} MiB): "
               f"{', '.join(r.run_id for r in records)}", err=True)
    click.echo(str(out))


def _verify_options(f):
    f = click.option("--seeds", default="first", show_default=True,
                     help="which seeds to re-score: first (each run's first seed), all, or a list such as 0,1")(f)
    f = click.option("--tolerance", type=float, default=None,
                     help="largest accepted |submitted - re-scored|, in each metric's unit [default: 1e-4]")(f)
    f = click.option("--device", default="cpu", show_default=True, help="device to re-score on: cpu, cuda or cuda:N")(f)
    return f


def _run_verify(bundle, seeds, tolerance, device):
    from ..verify import DEFAULT_TOLERANCE, parse_seed_choice, verify

    return verify(bundle, seeds=parse_seed_choice(seeds), device=device,
                  tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance)


def _print_report(report) -> None:
    from rich.table import Table as RTable

    from ..term import console

    con = console()
    checks = RTable(title=f"checks of {report.bundle}")
    checks.add_column("check", style="bold")
    checks.add_column("result")
    checks.add_column("detail")
    for what, status, detail in report.checks:
        checks.add_row(what, "[green]ok[/]" if status == "ok" else "[red]FAILED[/]", detail)
    con.print(checks)
    if report.comparisons:
        t = RTable(title=f"re-scored numbers (tolerance {report.tolerance:g}, absolute, in each metric's unit; "
                         f"device {report.device})")
        for col in ("run", "seed", "metric", "submitted", "re-scored", "|diff|", ""):
            t.add_column(col)
        for c in report.comparisons:
            t.add_row(c.run_id, str(c.seed), c.metric, "–" if c.submitted is None else f"{c.submitted:.6g}",
                      "–" if c.rescored is None else f"{c.rescored:.6g}", "–" if c.diff is None else f"{c.diff:.2g}",
                      "[green]ok[/]" if c.ok else "[red]differs[/]")
        con.print(t)
    for note in report.notes:
        con.print(f"note: {note}")
    colour = {"verified": "green", "not reproduced": "red"}.get(report.verdict, "red")
    con.print(f"verdict: [bold {colour}]{report.verdict}[/] — {report.reason}")


def _finish(report, as_json: bool) -> None:
    from ..errors import DDBenchError

    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    if report.exit_code == 2:
        raise DDBenchError(f"bundle {report.bundle} is malformed or tampered: {report.reason}")
    if report.exit_code == 1:
        click.echo(f"not reproduced: {report.reason}", err=True)
        raise click.exceptions.Exit(1)


@leaderboard.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@_verify_options
@click.option("--json", "as_json", is_flag=True, help="the report on stdout as JSON")
def verify(bundle, seeds, tolerance, device, as_json):
    """Check a submission bundle without trusting it (hashes, member types and sizes, installed
    plugins) and re-score its distilled sets with the named task. Exit 0: verified; 1: the numbers
    do not reproduce within the tolerance; 2: malformed or tampered."""
    report = _run_verify(bundle, seeds, tolerance, device)
    _print_report(report)
    _finish(report, as_json)


@leaderboard.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@_verify_options
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=DEFAULT_DIR, show_default=True,
              help="leaderboard folder (records go to DIR/records; tables are rebuilt in DIR)")
@click.option("--no-png", is_flag=True, help="skip the PNG charts when rebuilding")
def accept(bundle, seeds, tolerance, device, folder, no_png):
    """Verify a bundle and, only if it verifies, add its records to DIR/records with the
    verifier's numbers beside the submitted ones (the record's `verification` block), then
    rebuild the tables and the page."""
    from ..errors import DDBenchError
    from ..leaderboard import build as do_build

    report = _run_verify(bundle, seeds, tolerance, device)
    _print_report(report)
    _finish(report, False)
    records_dir = folder / "records"
    taken = [r.run_id for r in report.records if (records_dir / f"{r.run_id}.json").exists()]
    if taken:
        raise DDBenchError(f"run {taken[0]} is already on the leaderboard ({records_dir / (taken[0] + '.json')}); "
                           "remove that file first to replace it")
    records_dir.mkdir(parents=True, exist_ok=True)
    for rec in report.records:
        rec.verification = report.verification(rec)
        p = records_dir / f"{rec.run_id}.json"
        p.write_text(json.dumps(rec.to_dict(), indent=2, sort_keys=True, default=str))
        click.echo(str(p))
    for p in do_build(records_dir, folder, png=not no_png):
        click.echo(str(p))
