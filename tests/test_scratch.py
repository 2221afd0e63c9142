"""The ``scratch`` task (train a network from scratch on the set, top-1 on the source), on the
tiny fabricated ``.npz`` source of tests/test_baselines.py and the in-memory ``tiny_colours``
of tests/fakes.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

from ddbench import plugins
from ddbench.context import RunContext
from ddbench.distilled import DistilledSet
from ddbench.errors import DataError, OptionError

from .test_baselines import SOURCE, ctx_for, distill, source_data, tiny_data, tiny_root  # noqa: F401


def task():
    return plugins.get_task("scratch")


def evaluate(ds, source, cache, seed: int = 0, **overrides):
    options = task().options("smoke", overrides, source=source.name)
    ctx = ctx_for(cache, seed)
    return task().evaluate(ctx, ds, source, options), ctx, options


class SplitRead(AssertionError):
    pass


class Forbidden:
    """Stands in for the test split: any use of it fails the test."""

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def _fail(self, *_):
        raise SplitRead(f"the test split was read ({object.__getattribute__(self, '_name')})")

    __len__ = __getitem__ = __iter__ = __array__ = _fail

    def __getattr__(self, attr):
        self._fail()


def without_test(source):
    return dataclasses.replace(source, x_test=Forbidden("x_test"), y_test=Forbidden("y_test"))


def test_smoke_end_to_end_through_the_runner(fake_plugin, tmp_path):
    """``ddbench run -m pick -t scratch -p smoke``: two seeds, the declared metric, the network recorded."""
    from ddbench.cache import ArtifactCache
    from ddbench.runner import RunSpec, run
    from ddbench.store import RunStore

    spec = RunSpec(method="pick", task="scratch", preset="smoke", seeds=[0, 1])
    record = run(spec, store=RunStore(tmp_path / "runs.sqlite"), cache=ArtifactCache(tmp_path / "cache"))
    assert record.status == "finished" and record.config.source == "tiny_colours"
    assert [m.name for m in record.config.metrics] == ["accuracy"]
    (metric,) = record.metrics
    assert metric.name == "accuracy" and metric.higher_is_better and len(metric.per_seed) == 2
    assert all(0.0 <= v <= 100.0 for v in metric.per_seed)
    extra = record.per_seed["0"].metrics_extra["accuracy"]
    assert extra["arch"]["arch"] == "convnet" and extra["arch"]["widths"] == [8, 8] and extra["norm"] == "in"
    assert extra["params"] > extra["trunk_params"] > 0
    assert extra["recipe"] == "hard_ce_dsa" and extra["label_kind"] == "hard" and extra["epochs"] == 2
    assert extra["split"] == "test" and extra["n_test"] == record.per_seed["0"].n_examples["accuracy"]
    assert extra["scaling"] == task().preset("smoke").scaling


@pytest.mark.parametrize("split", ["test", "val"])
def test_returns_exactly_the_declared_metric(tiny_data, split):
    ds, source = distill("random", tiny_data, ipc=2)
    metrics, ctx, options = evaluate(ds, source, tiny_data, eval_split=split)
    (spec,) = task().metrics(options)
    assert set(metrics) == {spec.name} == {"accuracy" if split == "test" else "val/accuracy"}
    assert spec.higher_is_better and spec.unit == "top-1 %" and spec.split == split and not spec.diagnostic
    mv = metrics[spec.name]
    assert 0.0 <= mv.value <= 100.0
    assert mv.predictor == f"network trained from scratch on the set, top-1 on {split}"
    assert mv.n_examples == len(source.y_test if split == "test" else source.y_val)
    assert ctx.extras["scratch"]["arch"]["params"] == mv.extra["params"]


def test_eval_split_val_never_reads_test(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    guarded = without_test(source)
    metrics, _, _ = evaluate(ds, guarded, tiny_data, eval_split="val")
    mv = metrics["val/accuracy"]
    assert mv.value == mv.extra["val_accuracy"] and mv.extra["split"] == "val" and "n_test" not in mv.extra
    with pytest.raises(SplitRead):  # the guard works: the test split is read when it is asked for
        evaluate(ds, guarded, tiny_data, eval_split="test")


def test_a_better_set_scores_higher(fake_plugin):
    """Real images with their labels against the same images with every label wrong."""
    from ddbench.data import prepare

    source = prepare("tiny_colours", cache=False)
    idx = torch.cat([(source.y_train == c).nonzero()[:4, 0] for c in range(source.num_classes)])
    scores = {}
    for name, labels in (("right", source.y_train[idx]), ("wrong", (source.y_train[idx] + 1) % source.num_classes)):
        ds = DistilledSet.from_source(source, source.x_train[idx], labels, label_kind="hard", recipe="hard_ce_dsa",
                                      method=name)
        options = task().options("smoke", {"epochs": 10}, source=source.name)
        metrics = task().evaluate(RunContext(seed=0, preset="smoke", cache=None), ds, source, options)
        scores[name] = metrics["accuracy"].value
    chance = 100.0 / source.num_classes
    assert scores["right"] > chance + 30 and scores["wrong"] < chance, scores


def test_deterministic_under_seed(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    a, ctx_a, _ = evaluate(ds, source, tiny_data, seed=3)
    b, ctx_b, _ = evaluate(ds, source, tiny_data, seed=3)
    assert a["accuracy"].value == b["accuracy"].value
    assert ctx_a.extras["scratch"]["train"]["loss_last"] == ctx_b.extras["scratch"]["train"]["loss_last"]


def _representation_set(source):
    g = torch.Generator().manual_seed(0)
    return DistilledSet.from_source(source, source.x_train[:8], torch.randn(8, 16, generator=g),
                                    label_kind="representation", recipe="representation_mse", method="krrst")


def test_representation_and_none_sets_are_refused(tiny_data):
    source = source_data(tiny_data)
    with pytest.raises(DataError) as refused:
        evaluate(_representation_set(source), source, tiny_data)
    msg = str(refused.value)
    assert "\n" not in msg and "label kind 'representation'" in msg and "--task transfer" in msg
    assert "method krrst" in msg
    with pytest.raises(DataError, match="label kind 'none'.*--task transfer"):
        evaluate(DistilledSet.empty(source), source, tiny_data)


@pytest.mark.parametrize("args, kind", [(["-m", "random", "-o", "recipe=representation_mse"], "representation"),
                                        (["-m", "none"], "none")])
def test_cli_refuses_before_distilling_in_one_line(tiny_data, args, kind):
    from ddbench.cli import main
    from ddbench.store import RunStore

    res = CliRunner().invoke(main, ["run", *args, "-t", "scratch", "-p", "smoke", "-s", SOURCE])
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    assert f"label kind {kind!r}" in err and "--task transfer" in err
    assert list(RunStore().all()) == []  # refused while the run is resolved: nothing ran, nothing was recorded


def test_soft_labels_train_and_must_match_the_source_classes(tiny_data):
    source = source_data(tiny_data)
    g = torch.Generator().manual_seed(0)
    soft = DistilledSet.from_source(source, source.x_train[:8], torch.randn(8, source.num_classes, generator=g),
                                    label_kind="soft", recipe="learned_mse_adamw", method="kip")
    metrics, ctx, _ = evaluate(soft, source, tiny_data)
    assert metrics["accuracy"].extra["recipe"] == "learned_mse_adamw" and ctx.extras["scratch"]["train"]["steps"] == 4
    wrong = DistilledSet.from_source(source, source.x_train[:8], torch.randn(8, source.num_classes + 1, generator=g),
                                     label_kind="soft", recipe="learned_mse_adamw", method="kip")
    with pytest.raises(DataError, match=f"one {source.num_classes}-d label vector"):
        evaluate(wrong, source, tiny_data)


def test_a_set_from_another_source_is_refused(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    ds.source = "cifar10_32"
    with pytest.raises(DataError, match="pass --source cifar10_32"):
        evaluate(ds, source, tiny_data)


def test_architecture_options_fail_before_training_with_a_hint(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    with pytest.raises(OptionError, match="-o arch_widths= -o norm="):
        evaluate(ds, source, tiny_data, arch="resnet10")
    with pytest.raises(OptionError, match="eval_split"):
        task().options("smoke", {"eval_split": "train"})


def test_presets_follow_the_dc_evaluation():
    quick = task().options("quick", {}, source="cifar10_32")
    assert (quick.arch, quick.arch_widths, quick.norm, quick.epochs) == ("convnet", [128, 128, 128], "in", 300)
    paper = task().options("paper", {}, source="cifar10")
    assert (paper.arch_widths, paper.norm, paper.epochs, paper.eval_split) == ([128, 128, 128], "in", 1000, "test")
    assert task().options("paper", {}, source="tinyimagenet").arch_widths == [128] * 4
    assert {t: task().default_source(t) for t in ("smoke", "quick", "paper")} == \
           {"smoke": "cifar10_32", "quick": "cifar10_32", "paper": "cifar10"}
    assert task().measurement_options == ("eval_split",)
