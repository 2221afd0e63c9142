"""ddbench ls"""

from __future__ import annotations

import json

import click

KINDS = {"methods": "method", "tasks": "task", "architectures": "architecture", "datasets": "dataset"}


def describe(kind: str, entry) -> dict:
    obj = entry.obj
    row = {"name": entry.name, "kind": kind, "origin": entry.origin, "description": getattr(obj, "description", "")}
    if kind in ("method", "task"):
        row["presets"] = sorted({p.name for p in obj.preset_entries()})
        row["default_sources"] = {tier: obj.default_source(tier) for tier in row["presets"]}
        row["options"] = obj.Options.help()
    if kind == "method":
        row["label_kind"] = obj.label_kind
        row["recipes"] = list(obj.recipes)
        row["reference"] = obj.reference
        row["takes_budget"] = obj.takes_budget
        row["controls"] = [c.to_dict() for c in obj.controls]
    if kind == "architecture":
        row["param_count"] = getattr(obj, "param_count", None)
        row["default_shape"] = list(obj.default_shape)
    if kind == "dataset":
        where = obj.locate()
        row["present"] = where is not None
        row["where"] = where
    return row


def preset_rows(method: str | None = None, task: str | None = None) -> list[dict]:
    """Every preset entry of the methods and tasks (or of the one named), with its values."""
    from ..plugins import registry

    rows = []
    for kind, only in (("method", method), ("task", task)):
        if (method or task) and not only:
            continue
        entries = [registry(kind).entry(only)] if only else list(registry(kind))
        for e in entries:
            for p in e.obj.preset_entries():
                rows.append({"kind": kind, "plugin": e.name, **p.to_dict(), "budgets": p.budget_labels()})
    return rows


@click.command()
@click.argument("what", type=click.Choice(sorted([*KINDS, "presets"])))
@click.option("--method", "method", default=None, help="presets: only this method's")
@click.option("--task", "task", default=None, help="presets: only this task's")
@click.option("--json", "as_json", is_flag=True, help="machine-readable list on stdout")
def ls(what, method, task, as_json):
    """List the registered methods, tasks, architectures or datasets, or the presets (each
    an entry per tier, source and budget, with its option values)."""
    from ..plugins import registry

    if what == "presets":
        rows = preset_rows(method, task)
        if as_json:
            click.echo(json.dumps(rows, indent=2, default=str))
            return
        from rich.table import Table

        from ..term import console

        t = Table(title="presets")
        for col in ("plugin", "tier", "source", "budgets", "scaling"):
            t.add_column(col)
        for r in rows:
            t.add_row(f"{r['kind']} {r['plugin']}", r["name"], r["source"] or "any", ", ".join(r["budgets"]) or "–",
                      r["scaling"])
        console().print(t)
        return
    if method or task:
        raise click.UsageError("--method/--task filter `ddbench ls presets` only")
    kind = KINDS[what]
    rows = [describe(kind, e) for e in registry(kind)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.table import Table

    from ..term import console

    t = Table(title=what)
    t.add_column("name", style="bold")
    t.add_column("description")
    extra = {"method": "label kind", "architecture": "params", "dataset": "where", "task": "presets"}[kind]
    t.add_column(extra)
    t.add_column("origin")
    for r in rows:
        x = {"method": r.get("label_kind"), "architecture": f"{r.get('param_count') or 0:,}",
             "dataset": r.get("where") or "[red]missing[/]", "task": ", ".join(r.get("presets", []))}[kind]
        t.add_row(r["name"], r["description"], str(x), r["origin"])
    console().print(t)
