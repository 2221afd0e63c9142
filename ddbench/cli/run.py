"""ddbench run"""

from __future__ import annotations

import json
import signal
import sys

import click

from ..errors import DDBenchError


@click.command()
@click.option("--method", "-m", required=True, help="method to distill with (see `ddbench ls methods`)")
@click.option("--task", "-t", required=True, help="task that evaluates the distilled set (see `ddbench ls tasks`)")
@click.option("--source", "-s", default=None, help="source dataset to distill (default: the method's for the preset)")
@click.option("--preset", "-p", default="quick", show_default=True,
              help="smoke (seconds, tests) | quick (minutes on a CPU, real data) | paper (the paper's setup, GPU) | "
                   "none (defaults and -o only); `ddbench ls presets` lists each plugin's entries")
@click.option("--ipc", type=int, default=None, help="budget: images per class (exclusive with --images)")
@click.option("--images", type=int, default=None, help="budget: images in total (exclusive with --ipc)")
@click.option("--seeds", default="0", show_default=True, help="comma-separated seeds, or a range such as 0-2")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="override an option of the method or task (method.KEY / task.KEY to disambiguate); repeatable")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--json", "as_json", is_flag=True, help="print the finished run record as JSON on stdout")
def run(method, task, source, preset, ipc, images, seeds, options, device, as_json):
    """Distill SOURCE with METHOD and evaluate the result with TASK, for each seed.

    Every run writes a record (see `ddbench runs`). Distilled sets and evaluations are
    cached by the hash of what made them, so running the same command again after an
    interruption resumes where it stopped.
    """
    from ..runner import RunSpec, parse_overrides, parse_seeds
    from .. import term

    spec = RunSpec(method=method, task=task, source=source, preset=None if preset == "none" else preset,
                   seeds=parse_seeds(seeds), overrides=parse_overrides(options), device=device,
                   images=images, ipc=ipc)
    from ..runner import requested_budget

    requested_budget(spec)  # --ipc and --images together: one clear error before anything loads
    from ..runner import run as do_run

    def _terminated(signum, frame):  # SIGTERM: record the run as interrupted, like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminated)
    try:
        record = do_run(spec)
    except KeyboardInterrupt:
        term.log("[red]interrupted[/]: the run's record says so; run the same command again to resume")
        sys.exit(130)
    except DDBenchError:
        raise
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        from .runs import print_record

        print_record(record)
