"""ddbench ls"""

from __future__ import annotations

import json

import click

KINDS = {"methods": "method", "tasks": "task", "architectures": "architecture", "datasets": "dataset"}


def describe(kind: str, entry) -> dict:
    obj = entry.obj
    row = {"name": entry.name, "kind": kind, "origin": entry.origin, "description": getattr(obj, "description", "")}
    if kind in ("method", "task"):
        row["presets"] = sorted(getattr(obj, "presets", {}) or {})
        row["options"] = obj.Options.help()
    if kind == "method":
        row["label_kind"] = obj.label_kind
        row["default_sources"] = dict(obj.default_sources)
    if kind == "architecture":
        row["param_count"] = getattr(obj, "param_count", None)
        row["default_shape"] = list(obj.default_shape)
    if kind == "dataset":
        where = obj.locate()
        row["present"] = where is not None
        row["where"] = where
    return row


@click.command()
@click.argument("what", type=click.Choice(sorted(KINDS)))
@click.option("--json", "as_json", is_flag=True, help="machine-readable list on stdout")
def ls(what, as_json):
    """List the registered methods, tasks, architectures or datasets."""
    from ..plugins import registry

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
