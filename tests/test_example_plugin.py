"""Install the worked third-party plugin from examples/ and run it through `ddbench run`."""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ddbench.testing import write_tiny_npz

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ddbench-example-plugin"


@pytest.fixture(scope="module")
def installed_example():
    try:
        metadata.distribution("ddbench-example-plugin")
        was_installed = True
    except metadata.PackageNotFoundError:
        was_installed = False
    if not was_installed:
        out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
    yield
    if not was_installed:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "ddbench-example-plugin"], capture_output=True, timeout=300)


def test_example_plugin_listed_and_runs(installed_example, tmp_path):
    write_tiny_npz(tmp_path / "data", name="tinyset")
    env = dict(os.environ, DDBENCH_DATA=str(tmp_path / "data"), DDBENCH_HOME=str(tmp_path / "home"))
    env.pop("DDBENCH_DISABLE_PLUGINS", None)
    ls = subprocess.run([sys.executable, "-m", "ddbench.cli", "ls", "methods", "--json"], env=env,
                        capture_output=True, text=True, timeout=300)
    assert ls.returncode == 0, ls.stderr
    rows = {r["name"]: r for r in json.loads(ls.stdout)}
    assert rows["class_mean"]["origin"] == "ddbench-example-plugin 0.1.0"
    run = subprocess.run([sys.executable, "-m", "ddbench.cli", "run", "--method", "class_mean", "--task", "transfer",
                          "--preset", "smoke", "--source", "tinyset", "-o", "targets=tinyset", "--json"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rec = json.loads(run.stdout)
    assert rec["status"] == "finished" and rec["method"] == "class_mean"
    assert rec["config"]["origins"]["method"] == "ddbench-example-plugin 0.1.0"
    assert rec["metrics"] and all(m["n"] == 1 for m in rec["metrics"])
    # disabling third-party plugins hides it again
    env["DDBENCH_DISABLE_PLUGINS"] = "1"
    ls = subprocess.run([sys.executable, "-m", "ddbench.cli", "ls", "methods", "--json"], env=env,
                        capture_output=True, text=True, timeout=300)
    assert "class_mean" not in {r["name"] for r in json.loads(ls.stdout)}
