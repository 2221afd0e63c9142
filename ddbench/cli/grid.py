"""ddbench grid"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from ..errors import DDBenchError


@click.command()
@click.argument("grid_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--variant", default=None, help="with GRID_FILE: which of its [variants] to run (default: the first)")
@click.option("--methods", "-m", default=None, help="comma-separated methods (a grid without a file)")
@click.option("--tasks", "-t", default=None, help="comma-separated tasks (a grid without a file)")
@click.option("--sources", "-s", default=None, help="comma-separated source datasets (default: each method's)")
@click.option("--preset", "-p", default="quick", show_default=True,
              help="smoke | quick | paper | none, for a grid without a file (a file names its own)")
@click.option("--ipc", default=None, help="budgets in images per class, comma-separated (e.g. 1,10,50)")
@click.option("--images", default=None, help="budgets in images in total, comma-separated")
@click.option("--seeds", default=None, help="seeds, e.g. 0,1,2 or 0-2 (with a file: replaces its default seeds)")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="override an option of every run's method or task; repeatable")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N, for every run")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool on this machine; ray: Ray tasks on a cluster (pip install 'ddbench[ray]')")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="runs at once (local default: CPU cores / --threads; ray: the cluster's CPUs or GPUs)")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads per run (local default: cores / --jobs; ray default 1, its num_cpus)")
@click.option("--address", default=None, help="with --executor ray: the cluster (HOST:PORT, ray://HOST:PORT or "
                                              "auto); default: start Ray on this machine")
@click.option("--storage", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="the folder for the artifact cache (default DDBENCH_HOME); on Ray a folder every node mounts")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="times a run whose worker died is tried again (it resumes from its checkpoints)")
@click.option("--dry-run", is_flag=True, help="list the runs and which are already done; run nothing")
@click.option("--json", "as_json", is_flag=True, help="print the grid's summary as JSON on stdout")
@click.option("--ids", "as_ids", is_flag=True,
              help="print the record id of every finished run on stdout, one per line (for `ddbench leaderboard add`)")
def grid(grid_file, variant, methods, tasks, sources, preset, ipc, images, seeds, options, device, executor, jobs,
         threads, address, storage, retries, dry_run, as_json, as_ids):
    """Run a grid of runs (methods × tasks × sources × budgets, with seeds), skipping done ones.

    The grid comes from GRID_FILE (TOML, see docs/howto-grid.md) or from --methods and
    --tasks. Every run is validated before any work starts; a run whose finished record
    is already stored (same config hash and seeds) is skipped, so running the same command
    again resumes a grid. Distilled sets, target models and other artifacts are made once
    and shared between the runs that need them.
    """
    from .. import grid as g
    from ..runner import parse_overrides
    from ..store import RunStore

    if as_json and as_ids:
        raise DDBenchError("give --json or --ids, not both")
    if grid_file is not None and (methods or tasks or sources or ipc or images):
        raise DDBenchError("give the grid as a file or as --methods/--tasks, not both (-o, --seeds and --device "
                           "apply to a file's runs)")
    if variant is not None and grid_file is None:
        raise DDBenchError("--variant needs a GRID_FILE")
    if executor != "ray" and address:
        raise DDBenchError("--address needs --executor ray")
    overrides = parse_overrides(options)
    if grid_file is not None:
        blocks, variant = g.load_file(grid_file, variant=variant, seeds=seeds, overrides=overrides)
        origin = str(grid_file)
    else:
        if not methods or not tasks:
            raise DDBenchError("give a GRID_FILE, or --methods and --tasks (e.g. ddbench grid -m random,dm -t scratch)")
        blocks = [g.block_from_flags(methods, tasks, sources, None if preset == "none" else preset, ipc, images,
                                     seeds or "0", overrides)]
        origin = "the command line"
    built = g.expand(blocks, device=device, origin=origin, variant=variant)
    store = RunStore()
    g.mark_done(built, store.all())

    if dry_run:
        outcome = g.Outcome(grid=built, executor=executor, wall_s=0.0)
        g.print_summary(outcome, dry_run=True)
        _emit(outcome, as_json, as_ids)
        return

    ex = _executor(executor, address, storage, jobs, threads, device, retries)

    def _terminated(signum, frame):  # SIGTERM on the driver: stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminated)
    outcome = g.execute(built, ex, store, retries=retries)
    g.print_summary(outcome)
    _emit(outcome, as_json, as_ids)
    if outcome.interrupted:
        sys.exit(130)
    if outcome.counts().get("failed"):
        sys.exit(1)


def _emit(outcome, as_json: bool, as_ids: bool) -> None:
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str))
    elif as_ids:
        for r in outcome.grid.runs:
            if r.status in ("done", "finished") and r.run_id:
                click.echo(r.run_id)


def _executor(kind, address, storage, jobs, threads, device, retries):
    from .. import paths
    from ..grid import executors

    if kind == "ray":
        if address and storage is None:
            raise DDBenchError("--executor ray --address needs --storage PATH: a folder every Ray node mounts at the "
                               "same path, for the artifact cache (distilled sets, models)")
        home = Path(storage).expanduser().resolve() if storage else paths.home()
        return executors.RayExecutor(address, home, threads or 1, device, retries, jobs)
    from ..runner import check_device

    check_device(device)
    home = Path(storage).expanduser().resolve() if storage else None
    if home is not None:
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DDBenchError(f"cannot create the storage folder {home} ({e.strerror})") from None
    ex = executors.local((home or paths.home()) / "cache", jobs, threads)
    ex.home = home
    return ex
