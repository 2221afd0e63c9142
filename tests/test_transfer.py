"""The ``transfer`` task and its pre-training recipes, on tiny fabricated ``.npz`` datasets
(see tests/test_baselines.py for the data)."""

from __future__ import annotations

import math

import pytest
import torch

from ddbench import plugins
from ddbench.distilled import DistilledSet
from ddbench.types import ArchSpec
from ddbench.errors import DataError, OptionError, UnknownNameError

from .test_baselines import SOURCE, TARGET_A, TARGET_B, ctx_for, distill, source_data, tiny_data, tiny_root  # noqa: F401

TARGETS = f"{TARGET_A},{TARGET_B}"


def evaluate(ds, source, cache, seed: int = 0, **overrides):
    task = plugins.get_task("transfer")
    options = task.options("smoke", {"targets": TARGETS, **overrides}, source=SOURCE)
    ctx = ctx_for(cache, seed)
    return task.evaluate(ctx, ds, source, options), ctx


def test_smoke_reports_percent_per_target(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    metrics, ctx = evaluate(ds, source, tiny_data)
    assert set(metrics) == {TARGET_A, TARGET_B}
    specs = {s.name: s for s in plugins.get_task("transfer").metrics(
        plugins.get_task("transfer").options("smoke", {"targets": TARGETS}, source=SOURCE))}
    for name, mv in metrics.items():
        assert 0.0 <= mv.value <= 100.0 and specs[name].higher_is_better and specs[name].unit == "top-1 %"
        assert mv.n_examples == mv.extra["target"]["n_test"]
        assert mv.predictor == "finetuned-network top-1 on test"
        ex = mv.extra
        assert ex["accuracy_unit"] == "percent (0-100)" and ex["split"] == "test"
        assert ex["recipe"] == "hard_ce_dsa" and ex["label_kind"] == "hard"
        assert ex["budget"]["images"] == 8 and ex["budget"]["bytes"] > 0
        assert ex["trunk_params"] > 0 and ex["norm"] == "bn" and ex["arch"]["arch"] == "convnet"
        assert ex["arch_origin"].startswith("task default")
        assert ex["val_accuracy"] is not None and ex["finetune_steps"] == 4 and ex["pretrain_epochs"] == 2
        assert ex["target"]["resolution"] == source.resolution
        assert isinstance(ex["scaling"], str) and ex["scaling"]
    assert ctx.extras["pretrain"]["steps"] == 2 and ctx.extras["transfer"]["scaling"]
    assert "imitation_mse" not in metrics


def test_no_pretraining_reference(tiny_data):
    ds, source = distill("none", tiny_data)
    metrics, ctx = evaluate(ds, source, tiny_data)
    assert set(metrics) == {TARGET_A, TARGET_B}
    assert ctx.extras["pretrain"]["skipped"] is True
    assert all(m.extra["pretrain_steps"] == 0 for m in metrics.values())


def test_deterministic_under_seed(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    a, _ = evaluate(ds, source, tiny_data, seed=3)
    b, _ = evaluate(ds, source, tiny_data, seed=3)
    assert {k: v.value for k, v in a.items()} == {k: v.value for k, v in b.items()}
    assert {k: v.extra["finetune"]["loss_last"] for k, v in a.items()} == \
           {k: v.extra["finetune"]["loss_last"] for k, v in b.items()}
    c, _ = evaluate(ds, source, tiny_data, seed=4)
    assert {k: v.extra["finetune"]["loss_last"] for k, v in a.items()} != \
           {k: v.extra["finetune"]["loss_last"] for k, v in c.items()}


def test_eval_split_val_never_reports_test(tiny_data):
    ds, source = distill("none", tiny_data)
    metrics, _ = evaluate(ds, source, tiny_data, eval_split="val")
    assert set(metrics) == {f"val/{TARGET_A}", f"val/{TARGET_B}"}
    for mv in metrics.values():
        assert mv.predictor == "finetuned-network top-1 on val" and mv.extra["split"] == "val"
        assert mv.value == mv.extra["val_accuracy"]
    with pytest.raises(OptionError, match="val_fraction"):
        plugins.get_task("transfer").options("smoke", {"eval_split": "val", "val_fraction": 0})


def test_imitation_mse_for_representation_sets(tiny_data):
    ds, source = distill("random", tiny_data, recipe="representation_mse", ipc=2)
    metrics, ctx = evaluate(ds, source, tiny_data)
    imit = metrics["imitation_mse"]
    spec = next(s for s in plugins.get_task("transfer").metrics(plugins.get_task("transfer").options("smoke", {}))
                if s.name == "imitation_mse")
    assert spec.higher_is_better is False and spec.diagnostic and spec.split == "val"
    assert math.isfinite(imit.value) and imit.value >= 0 and imit.n_examples == len(source.y_val)
    assert imit.extra["target_sha256"] == ds.provenance.depends_on["target_model"].sha256
    assert "source val" in imit.predictor
    assert metrics[TARGET_A].extra["recipe"] == "representation_mse"
    assert ctx.extras["pretrain"]["recipe"]["name"] == "representation_mse"


def test_unknown_target_fails_before_training(tiny_data):
    ds, source = distill("none", tiny_data)
    with pytest.raises(UnknownNameError, match="no_such_set"):
        evaluate(ds, source, tiny_data, targets="no_such_set")


def test_eval_mode_predictions_do_not_depend_on_the_batch(tiny_data):
    from ddbench.data import normalize

    from ddbench.toolkit import finetune as ft
    from ddbench.toolkit import recipes

    ds, source = distill("random", tiny_data, ipc=2)
    task = plugins.get_task("transfer")
    options = task.options("smoke", {}, source=SOURCE)
    ctx = ctx_for(tiny_data)
    net = recipes.pretrain(ctx, ds, "convnet", {"widths": [8, 16]}, 1.0, options)
    x = normalize(source.x_test, source.mean, source.std)
    ft.finetune(ctx, net, normalize(source.x_train, source.mean, source.std), source.y_train, source.num_classes,
                steps=3, batch_size=16, lr=0.01, offset=50)
    full = ft.predict(net, x, batch_size=len(x))
    assert torch.allclose(ft.predict(net, x, batch_size=1), full, atol=1e-5)
    assert torch.allclose(ft.predict(net, x, batch_size=7), full, atol=1e-5)
    shuffled = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ft.predict(net, x[shuffled], batch_size=5), full[shuffled], atol=1e-5)
    assert not net.training


@pytest.mark.parametrize("recipe,kind", [("learned_mse_adamw", "soft"), ("representation_mse", "representation"),
                                         ("hard_ce_dsa", "hard")])
def test_every_recipe_trains(tiny_data, recipe, kind):
    from ddbench.toolkit import recipes

    source = source_data(tiny_data)
    g = torch.Generator().manual_seed(0)
    images = source.x_train[:6]
    targets = {"hard": source.y_train[:6], "soft": torch.randn(6, 4, generator=g),
               "representation": torch.randn(6, 10, generator=g)}[kind]
    ds = DistilledSet.from_source(source, images, targets, label_kind=kind, recipe=recipe, method="test")
    options = plugins.get_task("transfer").options("smoke", {}, source=SOURCE)
    log: dict = {}
    net = recipes.pretrain(ctx_for(tiny_data), ds, "convnet", {"widths": [8, 16]}, 1.0, options, log=log)
    expected_out = {"hard": source.num_classes, "soft": 4, "representation": 10}[kind]
    assert net.head.out_features == expected_out
    assert log["steps"] == (options.pretrain_steps if recipe == "learned_mse_adamw" else options.pretrain_epochs)
    assert math.isfinite(log["loss_last"])


def test_recipe_checks_target_types(tiny_data):
    from ddbench.toolkit import recipes

    source = source_data(tiny_data)
    ds = DistilledSet.from_source(source, source.x_train[:4], source.y_train[:4], label_kind="hard",
                                  recipe="representation_mse", method="test")
    options = plugins.get_task("transfer").options("smoke", {}, source=SOURCE)
    with pytest.raises(DataError, match="float targets"):
        recipes.pretrain(ctx_for(tiny_data), ds, "convnet", {"widths": [8, 16]}, 1.0, options)


def test_backbone_comes_from_the_set_then_the_task_default(tiny_data):
    from ddbench_plugins.tasks.transfer import resolve_backbone

    source = source_data(tiny_data)
    options = plugins.get_task("transfer").options("quick", {}, source="tinyimagenet200_32_subset")
    empty = DistilledSet.empty(source)
    assert resolve_backbone(empty, options)["kwargs"] == {"widths": [32, 64, 128], "norm": "bn"}
    empty.provenance.arch = ArchSpec.parse({"name": "convnet", "kwargs": {"widths": [16, 32], "norm": "in"},
                                            "width": 1.0, "param_count": 123})
    got = resolve_backbone(empty, options)
    assert got["name"] == "convnet" and got["kwargs"] == {"widths": [16, 32], "norm": "in"}
    assert got["origin"].startswith("distilled set")
    empty.provenance.arch = ArchSpec.parse("resnet10")
    assert resolve_backbone(empty, options)["kwargs"] == {}
    over = plugins.get_task("transfer").options("quick", {"arch": "vgg11", "norm": "none"})
    assert resolve_backbone(empty, over) == {"name": "vgg11", "kwargs": {"norm": "none"}, "width": 1.0,
                                             "origin": "task option arch"}


@pytest.mark.parametrize("preset,source", [("smoke", None), ("quick", "tinyimagenet200_32_subset"),
                                           ("paper", "cifar100"), ("paper", "tinyimagenet"),
                                           ("paper", "imagenet64")])
def test_task_default_backbone_is_krrst_backbone(preset, source):
    """Random, Kmeans and no-pre-training are evaluated on the network KRR-ST distils with."""
    from ddbench_plugins.tasks.transfer import default_backbone

    krrst = plugins.get_method("krrst").options(preset, {}, source=source)
    ours = default_backbone(preset, source)
    assert ours["name"] == "convnet"
    assert ours["widths"] == list(krrst.arch_widths) and ours["norm"] == krrst.arch_norm
    assert ours["width"] == krrst.arch_width


def test_empty_set_with_labels_is_rejected(tiny_data):
    source = source_data(tiny_data)
    ds = DistilledSet.empty(source)
    ds.label_kind, ds.recipe = "hard", "hard_ce_dsa"
    with pytest.raises(DataError, match="empty"):
        evaluate(ds, source, tiny_data)


def test_runner_end_to_end(tiny_data, tmp_path):
    """``ddbench run --method none --task transfer --preset smoke`` on the fabricated data."""
    from ddbench.runner import RunSpec, run
    from ddbench.store import RunStore

    spec = RunSpec(method="none", task="transfer", source=SOURCE, preset="smoke", seeds=[0, 1],
                   overrides={"targets": TARGET_A})
    record = run(spec, store=RunStore(tmp_path / "runs.sqlite"), cache=tiny_data)
    assert record.status == "finished"
    (metric,) = [m for m in record.metrics if m.name == TARGET_A]
    assert len(metric.per_seed) == 2 and all(0 <= v <= 100 for v in metric.per_seed)


def test_krrst_set_uses_its_backbone_and_target_model(tiny_data):
    """A KRR-ST set declares its backbone (provenance.arch) and target model; the task
    pre-trains that backbone and finds the target model for imitation_mse."""
    ds, source = distill("krrst", tiny_data)
    metrics, ctx = evaluate(ds, source, tiny_data, targets=TARGET_A)
    assert set(metrics) == {"imitation_mse", TARGET_A}
    assert metrics["imitation_mse"].extra["target_sha256"] == ds.provenance.depends_on["target_model"].sha256
    arch = ctx.extras["pretrain"]["arch"]
    assert arch["origin"].startswith("distilled set")
    assert arch["kwargs"]["widths"] == list(ds.provenance.arch.kwargs["widths"])
    assert metrics[TARGET_A].extra["arch"]["widths"] == list(ds.provenance.arch.kwargs["widths"])


def test_dependencies_name_each_target_file(tiny_data, tiny_root):
    task = plugins.get_task("transfer")
    deps = task.dependencies(task.options("smoke", {"targets": TARGETS}))
    assert set(deps) == {TARGET_A, TARGET_B}
    assert deps[TARGET_A]["identity"]["path"] == str((tiny_root / "data" / f"{TARGET_A}.npz").resolve())
    with pytest.raises(UnknownNameError):
        task.dependencies(task.options("smoke", {"targets": "no_such_set"}))
