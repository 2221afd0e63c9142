"""``ddbench grid --executor ray`` on a local Ray cluster of 2 CPUs started by the test: a
worker SIGKILLed mid-distillation is retried by Ray and resumes from its checkpoint; every
record is present exactly once, written by the driver alone; a storage folder the workers
cannot read is refused before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tests.core import test_grid as core  # noqa: E402  (the test plugin: slowpick, stoponce)
from tests.core.test_grid import grid_plugins  # noqa: E402,F401  (a fixture)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of 2 CPUs on this machine; its workers import the test plugin
    (``tests.core.test_grid``) by name, so the repository goes on their PYTHONPATH."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture
def ray_plugins(cluster, grid_plugins):
    yield


def test_a_killed_ray_worker_is_retried_and_resumes(ray_plugins, tmp_path, monkeypatch):
    from ddbench import grid as g
    from ddbench.grid.executors import RayExecutor
    from ddbench.store import RunStore

    killed = core.kill_mid_run(tmp_path, monkeypatch)
    grid = g.expand(core.slow_blocks(), origin="test")
    store = RunStore()
    g.mark_done(grid, store.all())
    executor = RayExecutor(None, tmp_path / "storage", threads=1, device="cpu", retries=2)
    assert executor.slots == 2
    outcome = g.execute(grid, executor, store, retries=2)

    assert killed, "the test never saw seed 0 of slowpick running"
    assert outcome.counts() == {"finished": 2} and not outcome.interrupted
    recs = list(store.all())
    assert sorted((r.method, r.status, tuple(r.seeds)) for r in recs) == [
        ("pick", "finished", (0,)), ("slowpick", "finished", (0, 1))]  # each record exactly once
    slow = core.check_resumed(recs, killed)
    assert slow.per_seed["1"].extras["resumed_from"] == 0  # Ray retried only the task whose worker died
    assert Path(slow.artifacts["distilled/seed0"]["path"]).is_relative_to(tmp_path / "storage" / "cache")
    # the workers wrote no run database into the storage folder: the driver alone writes records
    assert not (tmp_path / "storage" / "runs.sqlite").exists()
    out = json.dumps(outcome.to_dict())
    assert slow.run_id in out


def test_a_storage_folder_the_workers_cannot_read_is_refused(ray_plugins, tmp_path, monkeypatch):
    from ddbench.errors import DDBenchError
    from ddbench.grid import executors

    real = executors._write_token

    def elsewhere(home, token):  # as if the driver's folder were not the one the workers mount
        return real(tmp_path / "driver-only", token)

    monkeypatch.setattr(executors, "_write_token", elsewhere)
    with pytest.raises(DDBenchError, match="the storage path .* is not shared: Ray node .* cannot read"):
        executors.RayExecutor(None, tmp_path / "storage", threads=1, device="cpu", retries=0)
    assert ray.is_initialized()  # the test's cluster is left as it was


def test_cuda_on_a_cluster_without_gpus_is_refused(ray_plugins, tmp_path):
    from ddbench.errors import DDBenchError
    from ddbench.grid import executors

    with pytest.raises(DDBenchError, match="has no GPU"):
        executors.RayExecutor(None, tmp_path / "storage", threads=1, device="cuda", retries=0)


def test_the_command_on_ray_interrupts_cleanly_and_resumes(ray_plugins, tmp_path):
    """``ddbench grid --executor ray`` end to end: a unit interrupted as by Ctrl-C stops the grid
    (exit 130, a summary, the rest cancelled); the same command then finishes it."""
    from click.testing import CliRunner

    from ddbench.cli import main
    from ddbench.store import RunStore

    marker = tmp_path / "interrupted-once"
    f = tmp_path / "g.toml"
    f.write_text(f'preset = "smoke"\n[[run]]\nmethods = ["stoponce"]\ntasks = ["meanpix"]\n'
                 f'options = {{ marker = "{marker}" }}\n[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n')
    args = ["grid", str(f), "--executor", "ray", "--storage", str(tmp_path / "storage"), "--jobs", "1", "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 130, (res.stdout, res.stderr)
    out = json.loads(res.stdout)
    assert out["interrupted"] and [r["status"] for r in out["runs"]] == ["interrupted", "cancelled"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["counts"] == {"finished": 2}
    assert sorted(r.status for r in RunStore().all()) == ["finished", "finished", "interrupted"]
