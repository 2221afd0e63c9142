"""ddbench plugins"""

from __future__ import annotations

import json

import click


@click.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="machine-readable list on stdout")
def plugins_cmd(as_json):
    """Show every plugin and which distribution supplied what."""
    from ..plugins import KINDS, registry

    by_origin: dict[str, dict[str, list[str]]] = {}
    for kind in KINDS:
        for e in registry(kind):
            by_origin.setdefault(e.origin, {}).setdefault(kind + "s", []).append(e.name)
    if as_json:
        click.echo(json.dumps([{"origin": o, **v} for o, v in sorted(by_origin.items())], indent=2))
        return
    from rich.table import Table

    from ..term import console

    t = Table(title="plugins")
    t.add_column("origin", style="bold")
    t.add_column("supplies")
    for o, v in sorted(by_origin.items()):
        t.add_row(o, "; ".join(f"{k}: {', '.join(sorted(n))}" for k, n in sorted(v.items())))
    console().print(t)
