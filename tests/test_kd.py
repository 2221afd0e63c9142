"""The ``kd`` task (target-data-free knowledge distillation) and the ``gaussian`` method, on
the tiny fabricated ``.npz`` sets of tests/test_baselines.py: source ``tiny_src``, teacher
data ``tiny_tgt`` (another dataset), both 16 px."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ddbench import plugins
from ddbench.cache import ArtifactCache
from ddbench.data import normalize, prepare
from ddbench.distilled import DistilledSet
from ddbench.errors import DataError, OptionError, UnknownNameError
from ddbench_plugins.tasks.kd import checks, distill as kdd, teacher as kdt

from .test_baselines import SOURCE, TARGET_A, ctx_for, distill, make_npz, source_data, tiny_data, tiny_root  # noqa: F401

TEACHER_DATA = TARGET_A


def task():
    return plugins.get_task("kd")


def options(**overrides):
    return task().options("smoke", {"teacher_data": TEACHER_DATA, **overrides}, source=SOURCE)


def evaluate(ds, source, cache, seed: int = 0, **overrides):
    opts = options(**overrides)
    ctx = ctx_for(cache, seed)
    return task().evaluate(ctx, ds, source, opts), ctx, opts


def cli(*args):
    from ddbench.cli import main

    return CliRunner().invoke(main, ["run", *args])


def one_line_error(res) -> str:
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("method", ["random", "gaussian"])
def test_cli_smoke_end_to_end(tiny_data, method):
    from ddbench.store import RunStore

    res = cli("-m", method, "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={TEACHER_DATA}",
              "--seeds", "0")
    assert res.exit_code == 0, (res.output, res.exception)
    (record,) = list(RunStore().all())
    assert record.status == "finished"
    assert [m.name for m in record.config.metrics] == ["source_net", "resnet10"]
    assert {m.name for m in record.metrics} == {"source_net", "resnet10"}
    assert all(0.0 <= v <= 100.0 for m in record.metrics for v in m.per_seed)
    seed = record.per_seed["0"]
    assert seed.label_kind == ("noise" if method == "gaussian" else "hard")
    reported = seed.extras["reported"]["teacher test %"]
    teacher = seed.extras["kd_teacher"]
    assert reported["value"] == round(teacher["test_accuracy"], 2)
    assert len(teacher["sha256"]) == 64 and teacher["config_hash"] and teacher["train_seconds"] is not None
    assert teacher["path"]  # the evaluation ctx.artifacts do not reach the record: the extras carry it
    extra = seed.metrics_extra["source_net"]
    assert extra["arch"]["arch"] == "convnet" and extra["arch"]["widths"] == [8, 16] and extra["norm"] == "bn"
    assert extra["params"] > extra["trunk_params"] > 0
    assert extra["kd"]["epochs"] == 2 and extra["kd"]["lr"] == (1e-3 if method == "gaussian" else 1e-4)
    assert extra["pretrain"].get("skipped") == (True if method == "gaussian" else None)
    assert seed.metrics_extra["resnet10"]["student_spec"] == {"name": "resnet10", "kwargs": {}, "width": 0.125}
    assert "diagnostic" not in seed.extras


def test_plugin_modules_do_not_import_torch():
    code = ("import sys\nimport ddbench_plugins.tasks.kd, ddbench_plugins.methods.gaussian\n"
            "assert 'torch' not in sys.modules, 'a plugin __init__ imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- measurement


def test_eval_mode_is_the_default_and_independent_of_the_test_batch(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    a, ctx, opts = evaluate(ds, source, tiny_data, eval_batch=7)
    b, _, _ = evaluate(ds, source, tiny_data, eval_batch=500)
    assert opts.eval_mode == "eval" and set(a) == {"source_net", "resnet10"}
    assert {k: v.value for k, v in a.items()} == {k: v.value for k, v in b.items()}
    assert "diagnostic" not in ctx.extras
    assert not any(spec.diagnostic for spec in task().metrics(opts))


def test_train_mode_is_a_labelled_diagnostic(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    metrics, ctx, opts = evaluate(ds, source, tiny_data, eval_mode="train", eval_batch=7)
    assert set(metrics) == {"train_mode/source_net", "train_mode/resnet10"}
    assert all(spec.diagnostic for spec in task().metrics(opts))
    assert any("eval_mode=train" in r for r in ctx.extras["diagnostic"])
    val, _, _ = evaluate(ds, source, tiny_data, eval_split="val")
    assert set(val) == {"val/source_net", "val/resnet10"}
    with pytest.raises(OptionError, match="eval_mode"):
        options(eval_mode="batch")


def test_train_mode_accuracy_restores_running_statistics():
    net = plugins.get_architecture("convnet").build((3, 16, 16), 3, widths=[4], norm="bn")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    kdd.train_mode_accuracy(net, torch.randn(10, 3, 16, 16), torch.zeros(10, dtype=torch.long), 4)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and not net.training


def test_soft_cross_entropy_is_the_hand_computation():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    for temp in (1.0, 2.0):
        p = torch.exp(t / temp) / torch.exp(t / temp).sum(1, keepdim=True)
        log_q = s / temp - torch.log(torch.exp(s / temp).sum(1, keepdim=True))
        hand = -(p * log_q).sum(1).mean()
        assert torch.allclose(kdd.soft_cross_entropy(s, t, temp), hand, atol=1e-6)


def test_teacher_space_conversion_maps_pixels_exactly(tiny_data):
    source = source_data(tiny_data)
    pixels = source.x_train[:6]
    ds = DistilledSet.from_source(source, pixels, source.y_train[:6], label_kind="hard", recipe="hard_ce_dsa",
                                  method="random")
    t_mean, t_std = (0.3, 0.5, 0.7), (0.2, 0.25, 0.3)
    scale, shift = kdd.space_map(ds, t_mean, t_std)
    mapped = kdd.to_teacher_space(ds.images, scale, shift)
    assert torch.allclose(mapped, normalize(pixels, t_mean, t_std), atol=1e-5)
    back = mapped * torch.tensor(t_std).view(1, 3, 1, 1) + torch.tensor(t_mean).view(1, 3, 1, 1)
    assert torch.allclose(back, pixels, atol=1e-5)  # pixels round-trip
    raw = dataclasses.replace(ds, images=pixels.clone(), pixel_space="raw01")
    assert torch.allclose(kdd.to_teacher_space(raw.images, *kdd.space_map(raw, t_mean, t_std)),
                          normalize(pixels, t_mean, t_std), atol=1e-5)


# ---------------------------------------------------------------------------- the teacher


def test_teacher_is_cached_and_shared(tiny_data, tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path / "cache")
    ds, source = distill("random", tiny_data, ipc=2)
    calls = []
    real = kdt.train_teacher
    monkeypatch.setattr(kdt, "train_teacher", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, first, _ = evaluate(ds, source, cache)
    _, second, _ = evaluate(ds, source, cache, seed=1)
    assert len(calls) == 1
    assert first.extras["kd_teacher"]["cached"] is False and second.extras["kd_teacher"]["cached"] is True
    assert first.extras["kd_teacher"]["sha256"] == second.extras["kd_teacher"]["sha256"]
    folder = tmp_path / "cache" / kdt.CACHE_KIND
    (entry,) = [p for p in folder.iterdir() if not p.name.endswith(".partial")]
    meta = json.loads((entry / kdt.META_FILE).read_text())
    assert {"test_accuracy", "val_accuracy", "train_seconds", "epochs", "sha256", "mean", "std"} <= set(meta)
    assert "device" not in json.dumps(meta["config"])


class Killed(Exception):
    pass


def test_teacher_training_resumes_after_a_kill(tiny_data, tmp_path):
    data = prepare(TEACHER_DATA, 16, cache=tiny_data)
    opts = options(teacher_epochs=3)

    def kill(epoch, loss):
        if epoch == 1:
            raise Killed

    killed = ArtifactCache(tmp_path / "killed")
    with pytest.raises(Killed):
        kdt.obtain_teacher(ctx_for(killed), data, opts, on_epoch_end=kill)
    partial = killed.path(kdt.CACHE_KIND, kdt.teacher_config(opts, data)).with_name(
        killed.path(kdt.CACHE_KIND, kdt.teacher_config(opts, data)).name + ".partial")
    assert (partial / kdt.CHECKPOINT_FILE).exists()
    ctx = ctx_for(killed)
    resumed = kdt.obtain_teacher(ctx, data, opts)
    assert resumed.meta["train"]["resumed_from"] == 1 and not partial.exists()
    clean = kdt.obtain_teacher(ctx_for(ArtifactCache(tmp_path / "clean")), data, opts)
    assert clean.meta["train"]["resumed_from"] == 0
    assert resumed.sha256 == clean.sha256  # the same weights, bit for bit


def _save(path, state):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def test_user_teacher_checkpoint_right_wrong_and_truncated(tiny_data, tmp_path):
    ds, source = distill("random", tiny_data, ipc=2)
    opts = options()
    data = prepare(TEACHER_DATA, 16, cache=tiny_data)
    good = tmp_path / "good.safetensors"
    _save(good, kdt.build_teacher(opts, 16, data.num_classes).state_dict())
    metrics, ctx, _ = evaluate(ds, source, tiny_data, teacher_checkpoint=str(good))
    assert ctx.extras["kd_teacher"]["user_checkpoint"] and ctx.artifacts["kd_teacher"]["path"] == str(good)
    wrong = tmp_path / "wrong.safetensors"
    _save(wrong, kdt.build_teacher(opts, 16, data.num_classes + 2).state_dict())
    with pytest.raises(DataError, match="wrong.safetensors does not fit .*wrong shape"):
        evaluate(ds, source, tiny_data, teacher_checkpoint=str(wrong))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.safetensors is not a readable safetensors file"):
        evaluate(ds, source, tiny_data, teacher_checkpoint=str(truncated))
    res = cli("-m", "random", "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={TEACHER_DATA}",
              "-o", f"task.teacher_checkpoint={truncated}", "--seeds", "0")
    assert "truncated or corrupt" in one_line_error(res)
    res = cli("-m", "random", "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={TEACHER_DATA}",
              "-o", f"task.teacher_checkpoint={wrong}", "--seeds", "0")
    assert "wrong shape" in one_line_error(res)


# ---------------------------------------------------------------------------- no leakage


def test_sealed_training_split_raises_on_any_use(tiny_data):
    sealed = checks.seal(prepare(TEACHER_DATA, 16, cache=tiny_data))
    for use in (lambda: len(sealed.x_train), lambda: sealed.x_train[0], lambda: sealed.x_train.shape,
                lambda: sealed.y_train.float(), lambda: list(sealed.x_train), lambda: torch.cat([sealed.x_train]),
                lambda: np.asarray(sealed.y_train), lambda: sealed.x_train + 1):
        with pytest.raises((checks.TrainingSplitLeak, TypeError), match="leak|sealed|SealedSplit"):
            use()
    with pytest.raises(checks.TrainingSplitLeak, match="x_train after the teacher was made"):
        sealed.x_train.to("cpu")
    assert len(sealed.x_test) > 0  # the other splits stay readable
    assert prepare(TEACHER_DATA, 16, cache=tiny_data).x_train.shape[0] > 0  # the shared object is untouched


def test_kd_path_never_reads_the_teacher_training_split_after_the_teacher(tiny_data, monkeypatch):
    """The whole evaluation passes with the seal in place, and the seal is applied right after
    the teacher is obtained (a cached teacher: the training split is read only by the audit)."""
    ds, source = distill("random", tiny_data, ipc=2)
    sealed_objects = []
    real_seal = checks.seal
    monkeypatch.setattr(checks, "seal", lambda data: sealed_objects.append(real_seal(data)) or sealed_objects[-1])
    metrics, ctx, _ = evaluate(ds, source, tiny_data, eval_split="val")
    assert len(sealed_objects) == 1 and isinstance(sealed_objects[0].x_train, checks.SealedSplit)
    assert ctx.extras["kd"]["overlap_audit"]["overlap"] == 0 and set(metrics) == {"val/source_net", "val/resnet10"}


def test_source_equal_to_teacher_data_is_refused(tiny_data):
    ds, source = distill("random", tiny_data, ipc=2)
    with pytest.raises(DataError, match="is the teacher's data"):
        evaluate(ds, source, tiny_data, teacher_data=SOURCE)
    assert checks.same_data_message("cifar10_32", "cifar10") and checks.same_data_message("cifar10", "cifar10_32")
    assert checks.same_data_message("cifar100", "cifar10") is None
    res = cli("-m", "random", "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={SOURCE}_64")
    assert "at another resolution" in one_line_error(res)


def test_overlapping_images_are_refused(tiny_data, tmp_path, monkeypatch):
    ds, source = distill("random", tiny_data, ipc=2)
    folder = tmp_path / "more"
    folder.mkdir()
    make_npz(folder / "tiny_other.npz", k=3, n_train=10, n_test=4, seed=5)
    with np.load(folder / "tiny_other.npz") as z:
        parts = {k: z[k] for k in z.files}
    with np.load(tiny_data.root.parent / "data" / f"{SOURCE}.npz") as z:
        parts["x_test"] = np.concatenate([parts["x_test"], z["x_train"][:3]])
        parts["y_test"] = np.concatenate([parts["y_test"], [0, 1, 2]])
    np.savez_compressed(folder / "tiny_other.npz", **parts)
    import os

    monkeypatch.setenv("DDBENCH_DATA", os.environ["DDBENCH_DATA"] + os.pathsep + str(folder))
    plugins.reset()
    with pytest.raises(DataError, match="also images of the teacher data tiny_other"):
        evaluate(ds, source, tiny_data, teacher_data="tiny_other")


# ---------------------------------------------------------------------------- bad input, refusals


def test_unknown_student_fails_before_any_training(tiny_data, monkeypatch):
    ds, source = distill("random", tiny_data, ipc=2)
    monkeypatch.setattr(kdt, "obtain_teacher", lambda *a, **k: pytest.fail("the teacher was made"))
    with pytest.raises(UnknownNameError, match="student 'vgg12'"):
        evaluate(ds, source, tiny_data, students=["source", "vgg12"])
    res = cli("-m", "random", "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={TEACHER_DATA}",
              "-o", "task.students=source,vgg12")
    assert "vgg12" in one_line_error(res) and "students" in res.stderr


def test_none_is_refused_and_points_at_gaussian(tiny_data):
    res = cli("-m", "none", "-t", "kd", "-p", "smoke", "-s", SOURCE, "-o", f"task.teacher_data={TEACHER_DATA}")
    err = one_line_error(res)
    assert "label kind 'none'" in err and "-m gaussian -t kd" in err


def test_gaussian_is_refused_by_other_tasks(tiny_data):
    res = cli("-m", "gaussian", "-t", "transfer", "-p", "smoke", "-s", SOURCE)
    assert "label kind 'noise'" in one_line_error(res)


def test_gaussian_set_is_seeded_noise_without_targets(tiny_data):
    a, source = distill("gaussian", tiny_data)
    b, _ = distill("gaussian", tiny_data)
    c, _ = distill("gaussian", tiny_data, seed=1)
    assert a.images.shape == (8, 3, 16, 16) and a.targets.shape == (8, 0) and a.targets.dtype == torch.float32
    assert a.label_kind == "noise" and a.value_range is None and a.pixel_space == "normalized"
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert abs(float(a.images.mean())) < 0.2 and abs(float(a.images.std()) - 1) < 0.2
    method = plugins.get_method("gaussian")
    assert not method.reference and method.takes_budget and method.label_kind == "noise"
    random = plugins.get_method("random")
    budgets = lambda m: {(p.name, p.source, p.budget) for p in m.preset_entries()}  # noqa: E731
    assert budgets(method) <= budgets(random)


def test_presets():
    quick = task().options("quick", {}, source="tinyimagenet200_32_subset")
    assert (quick.teacher_data, quick.teacher_width, quick.student_width) == ("cifar10_32", 0.25, 0.25)
    assert quick.default_arch_widths == [32, 64, 128] and quick.default_norm == "bn"
    paper = task().options("paper", {}, source="tinyimagenet")
    assert (paper.kd_epochs, paper.kd_batch, paper.kd_lr, paper.kd_lr_noise, paper.kd_wd) == (1000, 512, 1e-4, 1e-3, 0)
    assert paper.default_arch_widths == [64, 128, 256, 512] and paper.teacher_data == "cifar10"
    assert paper.students == ["source", "vgg11", "alexnet", "mobilenet", "resnet10"]
    assert task().options("paper", {}, source="cifar100").default_arch_widths == [128, 256, 512]
    assert task().label_kinds == ("hard", "soft", "representation", "noise")
