"""``ddbench grid``: expansion and validation, skipping done runs, sharing distilled sets, the
local executors (this process and a spawned pool), failures, Ctrl-C and resume, and the
quick tier's grid file."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddbench import hookimpl
from ddbench.cli import main
from ddbench.options import option
from tests.fakes import PickMethod, PickOptions

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- a test plugin

@dataclasses.dataclass
class StopOptions(PickOptions):
    marker: str = option("", "a file: while it does not exist, distill creates it and raises KeyboardInterrupt (Ctrl-C)")


class StopOnce(PickMethod):
    name = "stoponce"
    description = "pick, but the first distill is interrupted as if the user pressed Ctrl-C (test plugin)"
    Options = StopOptions

    def distill(self, ctx, source, options):
        if options.marker and not Path(options.marker).exists():
            Path(options.marker).write_text("interrupted once")
            raise KeyboardInterrupt
        return super().distill(ctx, source, options)


@dataclasses.dataclass
class SlowOptions(PickOptions):
    steps: int = option(6, "checkpointed steps before the set is returned")
    step_s: float = option(0.4, "seconds per step")


class SlowPick(PickMethod):
    """``pick`` after ``steps`` checkpointed steps; each step announces its process in
    ``$DDBENCH_TEST_PIDS/<seed>-<step>`` so the test can kill it mid-run."""

    name = "slowpick"
    description = "pick after slow, checkpointed steps (test plugin)"
    Options = SlowOptions

    def distill(self, ctx, source, options):
        import time

        done = sorted(int(p.name[4:]) for p in ctx.checkpoint_dir.glob("step*"))
        start = done[-1] + 1 if done else 0
        ctx.extras["resumed_from"] = start
        ctx.extras["pid"] = os.getpid()
        pids = Path(os.environ["DDBENCH_TEST_PIDS"])
        for i in range(start, options.steps):
            (pids / f"{ctx.seed}-{i}").write_text(str(os.getpid()))
            time.sleep(options.step_s)
            (ctx.checkpoint_dir / f"step{i}").write_text("done")
        return super().distill(ctx, source, options)


@hookimpl
def ddbench_register_methods(register):
    register(SlowPick())


@hookimpl
def ddbench_register_methods(register):
    register(StopOnce())
    register(SlowPick())


@pytest.fixture
def grid_plugins(fake_plugin):
    from ddbench import plugins

    this = sys.modules[__name__]
    plugins.register_plugin(this, name=__name__, origin="tests")
    yield
    plugins.unregister_plugin(this)


def slow_blocks():
    from ddbench.grid import spec

    return [spec.Block(where="test", methods=["slowpick"], tasks=["meanpix"], preset="smoke", seeds=[0, 1]),
            spec.Block(where="test", methods=["pick"], tasks=["meanpix"], preset="smoke", seeds=[0])]


def kill_mid_run(tmp_path, monkeypatch) -> dict:
    """SIGKILL the process distilling seed 0 of slowpick once it has checkpointed steps 0 and 1."""
    import signal
    import threading
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("DDBENCH_TEST_PIDS", str(pids))
    killed: dict = {}

    def killer():
        deadline = time.time() + 240
        while time.time() < deadline:
            mark = pids / "0-2"
            if mark.exists() and mark.read_text():
                killed["pid"] = int(mark.read_text())
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    threading.Thread(target=killer, daemon=True).start()
    return killed


def check_resumed(recs, killed):
    assert killed, "the test never saw seed 0 of slowpick running"
    slow = next(r for r in recs if r.method == "slowpick")
    seed0 = slow.per_seed["0"].extras
    assert seed0["resumed_from"] >= 2 and seed0["pid"] != killed["pid"]  # retried elsewhere, from the checkpoint
    return slow


def cli(*args, ok=(0,)):
    res = CliRunner().invoke(main, ["grid", *map(str, args)])
    assert res.exit_code in ok, (res.exit_code, res.stdout, res.stderr, res.exception)
    assert "Traceback" not in res.stderr
    return res


def records():
    from ddbench.store import RunStore

    return list(RunStore().all())


TWO_TASK_OPTIONS = """
seeds = "0,1"
preset = "smoke"

[[run]]
methods = ["pick"]
tasks = ["meanpix"]

[[run]]
methods = ["pick"]
tasks = ["meanpix"]
options = { scale = 2.0 }
"""


def test_grid_runs_once_shares_distilled_sets_and_skips_done_runs(grid_plugins, tmp_path, _isolate):
    f = tmp_path / "g.toml"
    f.write_text(TWO_TASK_OPTIONS)
    out = json.loads(cli(f, "--jobs", "1", "--json").stdout)
    assert out["counts"] == {"finished": 2} and not out["interrupted"]
    recs = records()
    assert sorted(r.status for r in recs) == ["finished", "finished"]  # the per-seed units leave no records
    assert {r.run_id for r in recs} == {r["run_id"] for r in out["runs"]}
    a, b = sorted(recs, key=lambda r: r.config.overrides.get("scale", ""))
    assert a.seeds == b.seeds == [0, 1]
    assert a.artifacts["distilled/seed0"] == b.artifacts["distilled/seed0"]  # one set, read by both runs
    made = [p for p in (_isolate / "cache" / "distilled").iterdir() if p.is_dir() and "." not in p.name]
    assert len(made) == 2  # one distilled set per seed, not per run
    assert abs(b.metric("acc").mean - 2 * a.metric("acc").mean) < 1e-6

    again = json.loads(cli(f, "--jobs", "1", "--json").stdout)
    assert again["counts"] == {"done": 2}
    assert [r["run_id"] for r in again["runs"]] == [r["run_id"] for r in out["runs"]]
    assert len(records()) == 2
    ids = cli(f, "--ids", "--dry-run").stdout.split()
    assert sorted(ids) == sorted(r.run_id for r in recs)


def test_grid_from_flags_in_a_process_pool(grid_plugins):
    out = json.loads(cli("-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "0,1", "--ipc", "1,2",
                         "--jobs", "2", "--threads", "1", "--json").stdout)
    assert out["counts"] == {"finished": 2} and out["executor"].startswith("local (2 processes")
    recs = records()
    assert len(recs) == 2 and all(r.status == "finished" and r.seeds == [0, 1] for r in recs)
    assert sorted(r.budget["ipc"] for r in recs) == [1, 2]


def test_a_killed_local_worker_is_retried_and_resumes(grid_plugins, tmp_path, monkeypatch):
    from ddbench import grid as g
    from ddbench.grid import executors
    from ddbench.store import RunStore

    killed = kill_mid_run(tmp_path, monkeypatch)
    grid = g.expand(slow_blocks(), origin="test")
    store = RunStore()
    outcome = g.execute(grid, executors.local(tmp_path / "home" / "cache", jobs=2, threads=1), store, retries=2)
    assert outcome.counts() == {"finished": 2}
    recs = list(store.all())
    assert sorted((r.method, r.status, tuple(r.seeds)) for r in recs) == [
        ("pick", "finished", (0,)), ("slowpick", "finished", (0, 1))]
    check_resumed(recs, killed)  # (a dead worker breaks the whole pool: seed 1 was restarted too, and resumed)


def test_dry_run_lists_done_and_todo(grid_plugins):
    cli("-m", "pick", "-t", "meanpix", "-p", "smoke", "--jobs", "1")
    out = json.loads(cli("-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "0", "-o", "scale=3",
                         "--dry-run", "--json").stdout)
    assert [r["status"] for r in out["runs"]] == ["todo"]
    out = json.loads(cli("-m", "pick", "-t", "meanpix", "-p", "smoke", "--dry-run", "--json").stdout)
    assert [r["status"] for r in out["runs"]] == ["done"] and out["runs"][0]["run_id"]
    assert len(records()) == 1


def test_the_progress_line_names_the_seed_units_at_work(grid_plugins):
    """Two workers on two seeds of one run must not read as one: the line counts seed units
    and names the ones running."""
    from ddbench import grid as g
    from ddbench.grid.driver import Display, plan
    from ddbench.grid.executors import LocalExecutor

    grid = g.expand(slow_blocks(), origin="test")
    units = plan(grid)
    work = [u for u in units if u.kind == "seed" or len(u.run.seeds) == 1]
    assert len(work) == 3  # slowpick seeds 0 and 1, pick seed 0
    slow = [u for u in work if u.run.spec.method == "slowpick"]
    grid.runs[slow[0].run.index].status = "running"
    display = Display(grid, LocalExecutor(Path("unused"), jobs=2, threads=1), units)
    pending = [u for u in units if u not in slow]
    line = display.status({i: u for i, u in enumerate(slow)}, pending, [])
    assert "1 running" in line
    assert "seed units 0/3 (now: slowpick → meanpix seed 0, slowpick → meanpix seed 1)" in line


def test_a_failed_run_is_recorded_and_the_grid_goes_on(grid_plugins, tmp_path):
    f = tmp_path / "g.toml"
    f.write_text('preset = "smoke"\n[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n'
                 'method_options = { pick = { fail = true } }\n'
                 '[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n')
    res = cli(f, "--jobs", "1", "--json", ok=(1,))
    out = json.loads(res.stdout)
    assert [r["status"] for r in out["runs"]] == ["failed", "finished"]
    assert "asked to fail" in out["runs"][0]["error"]
    assert sorted(r.status for r in records()) == ["failed", "finished"]


def test_ctrl_c_leaves_resumable_state_and_a_summary(grid_plugins, tmp_path):
    marker = tmp_path / "interrupted-once"
    f = tmp_path / "g.toml"
    f.write_text(f'preset = "smoke"\nseeds = "0,1"\n[[run]]\nmethods = ["stoponce"]\ntasks = ["meanpix"]\n'
                 f'options = {{ marker = "{marker}" }}\n'
                 '[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n')
    res = cli(f, "--jobs", "1", "--json", ok=(130,))
    out = json.loads(res.stdout)
    assert out["interrupted"] and [r["status"] for r in out["runs"]] == ["interrupted", "cancelled"]
    assert [r.status for r in records()] == ["interrupted"]
    out = json.loads(cli(f, "--jobs", "1", "--json").stdout)  # the same command resumes
    assert out["counts"] == {"finished": 2}
    assert sorted(r.status for r in records()) == ["finished", "finished", "interrupted"]


GRID_BAD_INPUTS = [
    ('[[run]]\nmethods = ["nosuch"]\ntasks = ["meanpix"]\n', [], "[[run]] #1, method nosuch, task meanpix: unknown method 'nosuch'"),
    ('[[run]]\nmethods = ["pick", "pick"]\ntasks = ["meanpix"]\n', [], "methods lists 'pick' twice"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\nseeds = "1,1"\n', [], "repeat"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\ncolour = "red"\n', [], "unknown key 'colour'"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\noptions = { nope = 1 }\n', [], "unknown option 'nope'"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\nipc = 1\nimages = 3\n', [], "not both"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n', [],
     "the same run as"),
    ('[[run]]\nmethods = ["pick"\n', [], "is not valid TOML"),
    ('preset = "smoke"\n', [], "no runs"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n', ["--variant", "val"], "no variant 'val'"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n', ["-m", "pick"], "not both"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n', ["--address", "x:1"], "--address needs --executor ray"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n', ["--executor", "ray", "--address", "127.0.0.1:9"],
     "needs --storage PATH"),
    ('[[run]]\nmethods = ["pick"]\ntasks = ["meanpix"]\n',
     ["--executor", "ray", "--address", "127.0.0.1:9", "--storage", "{tmp}/shared"], "cannot reach the Ray cluster"),
]


@pytest.mark.parametrize("text, args, needle", GRID_BAD_INPUTS, ids=[n for _t, _a, n in GRID_BAD_INPUTS])
def test_bad_grid_is_one_clear_line_before_any_work(grid_plugins, tmp_path, text, args, needle):
    f = tmp_path / "g.toml"
    f.write_text('preset = "smoke"\n' + text if not text.startswith("preset") else text)
    res = CliRunner().invoke(main, ["grid", str(f), *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2, (res.output, res.exception)
    assert needle in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    assert records() == []
    assert not (tmp_path / "home" / "cache").exists()


@pytest.mark.parametrize("args, needle", [
    (["-m", "pick,dm,pick", "-t", "meanpix"], "--methods lists 'pick' twice"),
    (["-m", "pick", "-t", "meanpix", "--ipc", "1,x"], "cannot parse --ipc"),
    (["-t", "meanpix"], "give a GRID_FILE, or --methods and --tasks"),
    ([str(ROOT / "no-such-grid.toml")], "no grid file"),
])
def test_bad_grid_flags(grid_plugins, args, needle):
    res = CliRunner().invoke(main, ["grid", "-p", "smoke", *args])
    assert res.exit_code == 2 and needle in res.stderr, res.stderr


def test_ray_executor_without_ray_says_how_to_install(grid_plugins, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    res = CliRunner().invoke(main, ["grid", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--executor", "ray"])
    assert res.exit_code == 2 and "pip install 'ddbench[ray]'" in res.stderr


# ---------------------------------------------------------------------------- the quick tier's grid

def _quick_sh_runs(split: str) -> list[tuple[str, str, dict, str, dict]]:
    """The runs of leaderboard/quick.sh (SEEDS=0,1,2): (method, task, overrides, seeds, extra)."""
    s = {"eval_split": "val"} if split == "val" else {}
    rows = [("none", {}), ("random", {}), ("krrst", {}), ("random", {"recipe": "representation_mse"}),
            ("kmeans", {}), ("dsa", {}), ("dm", {})]
    runs = [(m, "transfer", {**s, **o}, "0,1,2", {}) for m, o in rows]
    if split == "val":
        runs += [("krrst", "transfer", {**s, "outer_lr": "0.001"}, "0,1,2", {}),
                 ("krrst", "transfer", {**s, "outer_lr": "0.001", "steps": "4000"}, "0", {})]
        runs += [(m, "transfer", {**s, "target_objective": "supervised", **o}, "0,1,2", {}) for m, o in [
            ("random", {"recipe": "representation_mse"}), ("krrst", {}), ("krrst", {"outer_lr": "0.001"}),
            ("krrst", {"learn": "images"}), ("krrst", {"learn": "targets"}), ("krrst", {"pool_steps": "1000"})]]
    runs += [(m, "arch_generalization", dict(s), "0,1,2", {}) for m in ("none", "random", "kmeans", "krrst", "dsa", "dm")]
    # not in quick.sh: the kd table, one row per method, on both splits
    runs += [(m, "kd", dict(s), "0,1,2", {}) for m in ("gaussian", "random", "kmeans", "krrst", "dsa", "dm")]
    if split == "test":
        runs += [(m, "scratch", {}, "0,1,2", {"source": "cifar10_32", "ipc": 10}) for m in ("random", "dm", "dsa")]
    return runs


@pytest.mark.parametrize("variant", ["test", "val"])
def test_quick_toml_makes_the_runs_of_quick_sh(variant):
    from ddbench.runner import RunSpec, parse_seeds, resolve

    res = CliRunner().invoke(main, ["grid", str(ROOT / "leaderboard" / "quick.toml"), "--variant", variant,
                                    "--dry-run", "--json"])
    assert res.exit_code == 0, res.stderr
    runs = json.loads(res.stdout)["runs"]
    expected = []
    for method, task, overrides, seeds, extra in _quick_sh_runs(variant):
        r = resolve(RunSpec(method=method, task=task, preset="quick", seeds=parse_seeds(seeds), overrides=overrides,
                            **extra))
        expected.append((r.config.hash(), tuple(r.seeds)))
    got = [(r["config_hash"], tuple(r["seeds"])) for r in runs]
    assert sorted(got) == sorted(expected)
    assert all(r["status"] == "todo" for r in runs)


def test_quick_toml_seeds_flag_replaces_the_default_seeds():
    res = CliRunner().invoke(main, ["grid", str(ROOT / "leaderboard" / "quick.toml"), "--variant", "val",
                                    "--seeds", "0", "--dry-run", "--json"])
    runs = json.loads(res.stdout)["runs"]
    assert {tuple(r["seeds"]) for r in runs} == {(0,)}
