import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ddbench.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_every_command_has_help():
    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, path + [name])

    for path, cmd in walk(main, []):
        assert cmd.help and len(cmd.help.split()) >= 4, f"`ddbench {' '.join(path)}` needs help text"
        res = invoke(*path, "--help")
        assert res.exit_code == 0


def test_help_and_ls_do_not_import_torch():
    code = ("import sys; from ddbench.cli import main\n"
            "for args in (['--help'], ['ls', 'methods'], ['ls', 'architectures', '--json'], ['ls', 'datasets', '--json'], ['plugins']):\n"
            "    try: main(args, standalone_mode=False)\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_ls_json_fields(fake_plugin):
    res = invoke("ls", "methods", "--json")
    rows = json.loads(res.stdout)
    names = {r["name"]: r for r in rows}
    assert names["pick"]["origin"] == "tests" and names["pick"]["kind"] == "method"
    assert names["krrst"]["origin"].startswith("ddbench (built-in")
    res = invoke("ls", "architectures", "--json")
    arch = {r["name"]: r for r in json.loads(res.stdout)}
    assert arch["convnet3"]["param_count"] == 1_480_704
    res = invoke("ls", "datasets", "--json")
    ds = {r["name"]: r for r in json.loads(res.stdout)}
    assert ds["tiny_colours"]["present"] is True


def test_plugins_lists_origins(fake_plugin):
    res = invoke("plugins", "--json")
    rows = {r["origin"]: r for r in json.loads(res.stdout)}
    assert rows["tests"]["methods"] == ["pick"]


def test_run_records_and_show(fake_plugin):
    res = invoke("run", "--method", "pick", "--task", "meanpix", "--preset", "smoke", "--seeds", "0,1", "--json")
    assert res.exit_code == 0, res.stderr
    rec = json.loads(res.stdout)
    for key in ("run_id", "method", "task", "source", "preset", "config", "config_hash", "seeds", "metrics", "env",
                "commit", "timings", "peak_memory_mb", "artifacts", "error"):
        assert key in rec, key
    assert rec["status"] == "finished" and rec["seeds"] == [0, 1] and rec["error"] is None
    acc = next(m for m in rec["metrics"] if m["name"] == "acc")
    assert acc["n"] == 2 and len(acc["per_seed"]) == 2 and acc["higher_is_better"] is True
    assert 0 <= acc["mean"] <= 100 and acc["std"] is not None
    assert rec["env"]["torch"] and rec["env"]["python"] and rec["env"]["device"] == "cpu"
    assert all(len(a["sha256"]) == 64 for a in rec["artifacts"].values())
    assert isinstance(rec["timings"]["total_s"], float)
    listed = json.loads(invoke("runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == [rec["run_id"]]
    shown = json.loads(invoke("show", rec["run_id"][:18], "--json").stdout)
    assert shown["metrics"] == rec["metrics"]


def test_run_is_deterministic_and_resumes_from_cache(fake_plugin):
    a = json.loads(invoke("run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json").stdout)
    b = json.loads(invoke("run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json").stdout)
    assert a["metrics"] == b["metrics"]
    assert b["per_seed"]["0"]["distilled_cached"] is True and b["per_seed"]["0"]["evaluation_cached"] is True
    c = json.loads(invoke("run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "5", "--json").stdout)
    assert c["artifacts"]["distilled/seed5"]["sha256"] != a["artifacts"]["distilled/seed0"]["sha256"]


def test_failed_run_is_recorded(fake_plugin):
    res = CliRunner().invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "-o", "fail=true"])
    assert res.exit_code == 2 and "failed in method 'pick' (distill)" in res.stderr
    recs = json.loads(invoke("runs", "--json").stdout)
    assert recs[-1]["status"] == "failed" and "asked to fail" in recs[-1]["error"]


BAD_INPUTS = [
    (["run", "-m", "nosuch", "-t", "meanpix"], "unknown method 'nosuch'"),
    (["run", "-m", "pick", "-t", "nosuch"], "unknown task 'nosuch'"),
    (["run", "-m", "pick", "-t", "meanpix", "-s", "nodata"], "unknown dataset 'nodata'"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "-o", "nope=1"], "unknown option 'nope'"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "-o", "fail=maybe"], "expected true/false"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "-o", "fail"], "not key=value"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--ipc", "1", "--images", "3"], "not both"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--ipc", "0"], "positive integer"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "quick", "--ipc", "5"], "has the budgets ipc 2"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "huge"], "unknown preset 'huge'"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "a,b"], "cannot parse seeds"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "1,1"], "repeat"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "none"], "no default source"),
    (["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--device", "tpu"], "unknown device"),
    (["show", "doesnotexist"], "no run 'doesnotexist'"),
]


@pytest.mark.parametrize("args, needle", BAD_INPUTS, ids=[" ".join(a[1:4]) + " " + n for a, n in BAD_INPUTS])
def test_bad_input_is_one_clear_line(fake_plugin, args, needle):
    before = invoke("runs", "--json").stdout
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert needle in res.stderr
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    assert invoke("runs", "--json").stdout == before  # nothing recorded, nothing lost


def test_bad_input_subprocess_no_traceback():
    out = subprocess.run([sys.executable, "-m", "ddbench.cli", "run", "-m", "krst", "-t", "transfer"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "did you mean krrst" in out.stderr and "Traceback" not in out.stderr


def test_unknown_dataset_says_where_it_looked(fake_plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("DDBENCH_DATA", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "-s", "mydata"])
    assert res.exit_code == 2
    assert "unknown dataset 'mydata'" in res.stderr and "A file NAME.npz in the sample format" in res.stderr
    assert "looked in" in res.stderr and str(tmp_path / "nowhere") in res.stderr and "DDBENCH_DATA" in res.stderr


def test_a_set_with_an_undeclared_recipe_is_refused(fake_plugin, monkeypatch):
    monkeypatch.setattr(fake_plugin.PickMethod, "recipes", ("something_else",))
    res = CliRunner().invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke"])
    assert res.exit_code == 2 and "recipe 'hard_ce_dsa' but declares something_else" in res.stderr
