"""ddbench runs / ddbench show"""

from __future__ import annotations

import json

import click


def _fmt(m) -> str:
    if m.mean is None:
        return "–"
    if abs(m.mean) < 0.1 and m.mean != 0:
        return f"{m.mean:.4f} ± {m.std:.4f} (n={m.n})"
    return f"{m.mean:.2f} ± {m.std:.2f} (n={m.n})"


def print_record(rec) -> None:
    from rich.table import Table

    from ..term import console

    c = console()
    colour = {"finished": "green", "failed": "red", "interrupted": "yellow"}.get(rec.status, "white")
    from ..leaderboard import diagnostic_reason, metric_specs, reported

    budget = f", budget {rec.budget.get('images')} images" if rec.config.method_info.takes_budget and rec.budget else ""
    c.print(f"run [bold]{rec.run_id}[/]: {rec.method} on {rec.source} → {rec.task} "
            f"(preset {rec.preset}{budget}, seeds {rec.seeds}) [{colour}]{rec.status}[/]")
    if rec.metrics:
        t = Table()
        for col in ("metric", "unit", "mean ± std (n)", "per seed", "predictor"):
            t.add_column(col)
        details = Table(title="breakdown", title_justify="left")
        for col in ("metric", "unit", "mean ± std (n)"):
            details.add_column(col)
        for spec in metric_specs(rec):
            m = rec.metric(spec.name)
            arrow = "↑" if spec.higher_is_better else "↓"
            name = f"{spec.name} {arrow}" + (" (diagnostic)" if spec.diagnostic else "")
            if spec.detail:  # the parts behind a headline number: a compact second table
                details.add_row(name, spec.unit, _fmt(m))
            else:
                t.add_row(name, spec.unit, _fmt(m), ", ".join(f"{v:.4g}" for v in m.per_seed), m.predictor)
        c.print(t)
        if details.row_count:
            c.print(details)
    for label, value in reported(rec).items():
        c.print(f"{label}: {value}")
    why = diagnostic_reason(rec)
    if why:
        c.print(f"[yellow]diagnostic run[/] (not a leaderboard entry): {why}")
    c.print(f"time {rec.timings.get('total_s', 0):.1f} s, peak memory {rec.peak_memory_mb} MB, device {rec.env.get('device')} ({rec.env.get('device_name')})")
    if rec.error:
        c.print(f"[red]error:[/] {rec.error.strip().splitlines()[-1] if rec.error.strip() else rec.error}")


@click.command()
@click.option("--method", default=None, help="only runs of this method")
@click.option("--task", default=None, help="only runs of this task")
@click.option("--json", "as_json", is_flag=True, help="machine-readable list on stdout")
def runs(method, task, as_json):
    """List recorded runs, oldest first."""
    from ..store import RunStore

    recs = list(RunStore().all(method=method, task=task))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in recs], indent=2, default=str))
        return
    from rich.table import Table

    from ..term import console

    t = Table(title=f"{len(recs)} runs")
    for col in ("run id", "method", "task", "source", "preset", "seeds", "status", "metrics"):
        t.add_column(col)
    for r in recs:
        ms = "; ".join(f"{m.name}={m.mean:.2f}" for m in r.metrics if m.mean is not None)
        t.add_row(r.run_id, r.method, r.task, r.source, str(r.preset), ",".join(map(str, r.seeds)), r.status, ms)
    console().print(t)


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON on stdout")
def show(run_id, as_json):
    """Show one run's record (RUN_ID may be a unique prefix)."""
    from ..store import RunStore

    rec = RunStore().get(run_id)
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print_record(rec)
