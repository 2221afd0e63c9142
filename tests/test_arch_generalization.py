"""The ``arch_generalization`` task on tiny fabricated datasets (tests/test_baselines.py's)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ddbench import leaderboard, plugins
from ddbench.errors import OptionError
from ddbench.types import ArchSpec

from .test_baselines import SOURCE, TARGET_A, TARGET_B, ctx_for, distill, tiny_data, tiny_root  # noqa: F401

TASK = "arch_generalization"
TARGETS = [TARGET_A, TARGET_B]
ARCHS = ["source_net", "alexnet", "resnet10"]


def options(**overrides):
    task = plugins.get_task(TASK)
    return task.options("smoke", {"targets": ",".join(TARGETS), "archs": ",".join(ARCHS), **overrides}, source=SOURCE)


def evaluate(ds, source, cache, seed: int = 0, **overrides):
    ctx = ctx_for(cache, seed)
    return plugins.get_task(TASK).evaluate(ctx, ds, source, options(**overrides)), ctx


def test_matrix_of_architectures_and_targets_with_their_identity(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    metrics, ctx = evaluate(ds, source, tiny_data)
    declared = {s.name: s for s in plugins.get_task(TASK).metrics(options())}
    assert set(metrics) == set(declared) == {*ARCHS, *(f"{a}/{t}" for a in ARCHS for t in TARGETS)}
    for arch in ARCHS:
        assert not declared[arch].detail and all(declared[f"{arch}/{t}"].detail for t in TARGETS)
        parts = [metrics[f"{arch}/{t}"].value for t in TARGETS]
        assert metrics[arch].value == pytest.approx(sum(parts) / len(parts))
        ex = metrics[arch].extra
        # the architecture's identity travels with every number (protocol §3.5): nothing swapped silently
        assert ex["norm"] == "bn" and ex["trunk_params"] > 0 and ex["params"] > ex["trunk_params"]
        assert ex["recipe"] == "hard_ce_dsa" and ex["pretrain_epochs"] == 2
    assert metrics["source_net"].extra["arch"]["arch"] == "convnet"
    assert metrics["source_net"].extra["arch_origin"].startswith("task default")
    for arch in ("alexnet", "resnet10"):
        ex = metrics[arch].extra
        assert ex["arch"]["arch"] == arch and ex["arch"]["width_mult"] == 0.125
        assert ex["trunk_params"] == plugins.registry("architecture").get(arch).build(
            (3, source.resolution, source.resolution), width=0.125).trunk_parameters()
    assert set(ctx.extras[TASK]["archs"]) == set(ARCHS)


def test_one_data_preparation_per_run_and_the_set_is_not_reloaded(tiny_data, monkeypatch):
    import ddbench.data

    ds, source = distill("random", tiny_data, ipc=2)
    calls = []
    real = ddbench.data.prepare
    monkeypatch.setattr(ddbench.data, "prepare", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    evaluate(ds, source, tiny_data)
    assert sorted(calls) == sorted(TARGETS)  # each target once, for all three architectures


def test_source_net_is_the_sets_declared_backbone(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    ds.provenance.arch = ArchSpec.parse({"name": "convnet", "kwargs": {"widths": [12, 24], "norm": "in"}})
    metrics, _ = evaluate(ds, source, tiny_data, archs="source_net")
    ex = metrics["source_net"].extra
    assert ex["arch"]["widths"] == [12, 24] and ex["norm"] == "in"
    assert ex["arch_origin"] == "distilled set (provenance.arch)"


def test_no_pretraining_reference_is_a_random_init_per_architecture(tiny_data):
    ds, source = distill("none", tiny_data)
    metrics, ctx = evaluate(ds, source, tiny_data)
    assert all(m.extra["pretrain_steps"] == 0 for m in metrics.values())
    assert all(a["pretrain"]["skipped"] for a in ctx.extras[TASK]["archs"].values())


def test_eval_split_val_never_reports_test(tiny_data):
    ds, source = distill("none", tiny_data)
    metrics, _ = evaluate(ds, source, tiny_data, eval_split="val", archs="alexnet")
    assert set(metrics) == {"val/alexnet", *(f"val/alexnet/{t}" for t in TARGETS)}
    assert all(m.extra["split"] == "val" for m in metrics.values())


def test_bad_options_are_refused():
    with pytest.raises(OptionError, match="repeat"):
        options(archs="alexnet,alexnet")
    with pytest.raises(OptionError, match="archs is empty"):
        options(archs="")
    with pytest.raises(OptionError, match="arch_width"):
        options(arch_width=0)


@pytest.mark.parametrize("archs, says", [("source_net,vgg12", "vgg12"), ("alexnet", "tiny_src_missing")])
def test_cli_unknown_names_fail_before_distilling_in_one_line(tiny_data, archs, says):
    from ddbench.cli import main
    from ddbench.store import RunStore

    targets = TARGET_A if says == "vgg12" else says
    res = CliRunner().invoke(main, ["run", "-m", "random", "-t", TASK, "-p", "smoke", "-s", SOURCE,
                                    "-o", f"archs={archs}", "-o", f"targets={targets}"])
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1 and says in err, err
    (rec,) = RunStore().all()
    assert rec.status == "failed" and not any(k.endswith("distill_s") for k in rec.timings)


def test_cli_run_and_leaderboard_table_one_column_per_architecture(tiny_data, tmp_path):
    from ddbench.cli import main
    from ddbench.store import RunStore

    res = CliRunner().invoke(main, ["run", "-m", "random", "-t", TASK, "-p", "smoke", "-s", SOURCE,
                                    "-o", f"targets={TARGET_A},{TARGET_B}", "--seeds", "0,1"])
    assert res.exit_code == 0, res.output
    assert "breakdown" in res.output
    (rec,) = RunStore().all()
    (table,) = leaderboard.build_tables([rec])
    md = leaderboard.to_markdown(table)
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert "source_net ↑" in header and "alexnet ↑" in header and "/" not in header.split("n |")[0]
    assert "breakdown columns" in md
    csv_head = leaderboard.to_csv(table).splitlines()[0]
    for t in (TARGET_A, TARGET_B):
        assert f"alexnet/{t}" in csv_head and f"source_net/{t}" in csv_head
    assert rec.metric("alexnet").n == 2
