import csv
import io
import json

from click.testing import CliRunner

from ddbench.cli import main
from ddbench.leaderboard import build, build_tables, to_csv, to_markdown
from ddbench.records import Metric, RunRecord


def rec(method, vals, recipe="hard_ce_dsa", started="2026-01-01T00:00:00", status="finished", n_test=240):
    per_seed = {str(i): {"recipe": recipe, "budget": {"images": 200, "bytes": 1000},
                         "metrics_extra": {"flowers": {"n_test": n_test}},
                         "extras": {"target_model": {"linear_probe_val": 12.5}}} for i in range(3)}
    return RunRecord(run_id=f"{method}-{recipe}-{started}", method=method, task="transfer", source="tin", preset="quick",
                     config={"scaled": True}, config_hash="h", seeds=[0, 1, 2], status=status, started_at=started,
                     metrics=[Metric("cifar", vals), Metric("flowers", [v + 1 for v in vals]),
                              Metric("imitation_mse", [0.5, 0.6, 0.7], higher_is_better=False)],
                     per_seed=per_seed)


def test_table_layout_best_and_rows():
    recs = [rec("krrst", [60, 61, 62]), rec("none", [70, 70, 70]), rec("random", [50, 52, 54]),
            rec("random", [58, 58, 58], recipe="representation_mse"), rec("kmeans", [1, 1, 1], status="failed")]
    (t,) = build_tables(recs)
    assert list(t.rows) == ["none", "random", "random + representation_mse", "krrst"]
    assert t.best("cifar") == "krrst"  # the `none` reference is not a contender
    assert t.best("imitation_mse") == "krrst" or t.best("imitation_mse") in t.rows
    md = to_markdown(t)
    assert "**61.00 ± 1.00**" in md and "| 3 |" in md and "one image = 0.42 points" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert rows[-1]["method"] == "krrst" and float(rows[-1]["cifar"]) == 61.0 and float(rows[-1]["cifar_std"]) == 1.0


def test_newest_record_wins():
    recs = [rec("krrst", [1, 1, 1], started="2026-01-01T00:00:00"), rec("krrst", [2, 2, 2], started="2026-01-02T00:00:00")]
    (t,) = build_tables(recs)
    assert t.rows["krrst"].metric("cifar").mean == 2


def test_build_writes_files_from_records_only(tmp_path):
    (tmp_path / "records").mkdir()
    for r in (rec("krrst", [60, 61, 62]), rec("random", [50, 52, 54])):
        (tmp_path / "records" / f"{r.run_id}.json").write_text(json.dumps(r.to_dict()))
    files = build(tmp_path / "records", tmp_path)
    names = {p.name for p in files}
    assert "README.md" in names and "transfer__tin__quick.csv" in names and "transfer__tin__quick.png" in names
    first = (tmp_path / "README.md").read_text()
    build(tmp_path / "records", tmp_path)
    assert (tmp_path / "README.md").read_text() == first  # rebuilding is deterministic


def test_cli_add_build_show(fake_plugin, tmp_path):
    r = CliRunner()
    out = json.loads(r.invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json"]).stdout)
    lb = tmp_path / "lb"
    res = r.invoke(main, ["leaderboard", "add", out["run_id"], "--dir", str(lb)])
    assert res.exit_code == 0, res.output
    import os

    exported = (lb / "records" / f"{out['run_id']}.json").read_text()
    assert os.environ["DDBENCH_HOME"] not in exported and "$DDBENCH_HOME/cache/distilled/" in exported
    res = r.invoke(main, ["leaderboard", "build", "--dir", str(lb), "--no-png"])
    assert res.exit_code == 0 and (lb / "README.md").exists()
    assert "pick" in (lb / "README.md").read_text()
    res = r.invoke(main, ["leaderboard", "show", "--dir", str(lb)])
    assert res.exit_code == 0 and "pick" in res.stderr


def test_row_labels_from_overrides_and_val_tables_apart():
    a = rec("krrst", [60, 61, 62])
    a.config["overrides"] = {"steps": "4000", "eval_split": "val"}
    a.metrics = [Metric("val/cifar", [1.0, 2.0, 3.0])]
    b = rec("random", [50, 52, 54])
    b.config["overrides"] = {"recipe": "representation_mse"}
    c = rec("krrst", [60, 61, 62])
    c.config["overrides"] = {}
    tables = build_tables([a, b, c])
    assert [t.split for t in tables] == ["test", "val"]
    assert list(tables[0].rows) == ["random + representation_mse", "krrst"]
    assert list(tables[1].rows) == ["krrst (steps=4000)"]
    assert "validation splits" in to_markdown(tables[1])


def test_rows_with_a_non_paper_target_are_diagnostics_never_best():
    plain = rec("krrst", [60, 61, 62])
    oracle = rec("krrst", [80, 81, 82])
    oracle.config["overrides"] = {"target_objective": "supervised"}
    for v in oracle.per_seed.values():
        v["extras"]["target_model"] = {"linear_probe_val": 40.0, "objective": "supervised"}
    (t,) = build_tables([plain, oracle])
    assert list(t.rows) == ["krrst", "krrst (target_objective=supervised)"]
    assert t.best("cifar") == "krrst"  # the oracle's 81 is higher but not a contender
    md = to_markdown(t)
    assert "40.0 (supervised target)" in md and "| 12.5 |" in md
    assert "Diagnostic rows, not contenders (never bold): `krrst (target_objective=supervised)`" in md
    assert "**81.00" not in md and "**61.00 ± 1.00**" in md


def test_rows_a_plugin_marks_diagnostic_are_apart():
    from ddbench.context import RunContext

    ctx = RunContext(seed=0)
    ctx.mark_diagnostic("ablation: learn=images")
    ctx.mark_diagnostic("ablation: learn=images")  # reasons are kept once
    assert ctx.extras["diagnostic"] == ["ablation: learn=images"]
    abl = rec("krrst", [90, 90, 90])
    abl.config["overrides"] = {"learn": "images"}
    for v in abl.per_seed.values():
        v["extras"]["diagnostic"] = list(ctx.extras["diagnostic"])
    (t,) = build_tables([abl, rec("random", [50, 50, 50]), rec("krrst", [60, 61, 62])])
    assert list(t.rows) == ["random", "krrst", "krrst (learn=images)"]  # diagnostics last
    assert t.best("cifar") == "krrst"
    assert "`krrst (learn=images)` (ablation: learn=images)" in to_markdown(t)
    assert "supervised target is trained" not in to_markdown(t)  # that sentence is for oracle rows only
