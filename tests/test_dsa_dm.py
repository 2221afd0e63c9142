"""DSA and DM (plugins/ddbench_plugins/methods/{dsa,dm}) and the toolkit they share
(ddbench/toolkit/matching.py, imageloop.py, DSA's 'M' mode): shapes, determinism, the
matching distances, bad input (exit 2, one line), divergence and bit-identical resume after
SIGKILL. Equality with the official code is tests/test_golden_dsa_dm.py.

Everything runs on a tiny fabricated dataset with the ``smoke`` preset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ddbench import plugins
from ddbench.context import RunContext
from ddbench.data import PreparedData
from ddbench.errors import DataError, DivergenceError, OptionError
from ddbench.testing import ddbench_tiny_source  # noqa: F401 (fixture)
from ddbench.types import Budget

HERE = Path(__file__).resolve().parent
METHODS = ("dsa", "dm")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def fake_source(n: int = 48, r: int = 16, k: int = 3, seed: int = 0) -> PreparedData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    x = (torch.rand(n, 3, r, r, generator=g) * 0.6 + y.view(-1, 1, 1, 1).float() / (2.5 * k)).clamp(0, 1)
    return PreparedData(name="fake3", resolution=r, num_classes=k, class_names=[f"c{i}" for i in range(k)],
                        x_train=x, y_train=y, x_val=x[:6], y_val=y[:6], x_test=x[:6], y_test=y[:6],
                        mean=tuple(x.mean((0, 2, 3)).tolist()), std=tuple(x.std((0, 2, 3)).tolist()),
                        content_hash="fake3-0")


def run(name: str, seed: int = 0, ckpt: Path | None = None, out: Path | None = None, ipc: int = 2,
        source: PreparedData | None = None, **overrides):
    method = plugins.get_method(name)
    opts = method.options("smoke", overrides)
    src = source or fake_source()
    ctx = RunContext(seed=seed, preset="smoke", checkpoint_dir=ckpt, output_dir=out,
                     budget=Budget(ipc=ipc).resolve(src.num_classes))
    return method.distill(ctx, src, opts)


def _subprocess_main(name: str, ckpt: str, kill_at: int) -> None:
    """The killed child of ``test_resume_after_sigkill_is_bit_identical``."""
    from ddbench.toolkit import imageloop

    def kill(step: int) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    imageloop.after_step = kill
    torch.set_num_threads(1)
    run(name, seed=3, ckpt=Path(ckpt), iterations=6, checkpoint_every=2)


# --------------------------------------------------------------------------- the sets


@pytest.mark.parametrize("name", METHODS)
def test_learned_hard_label_set_with_provenance_and_outputs(name, tmp_path):
    d = run(name, out=tmp_path)
    src = fake_source()
    assert d.images.shape == (6, 3, 16, 16) and d.label_kind == "hard" and d.recipe == "hard_ce_dsa"
    assert d.targets.tolist() == [0, 0, 1, 1, 2, 2]
    details = d.provenance.details
    init = src.x_train[torch.tensor(details["init_indices"])]
    mean = torch.tensor(src.mean).view(1, -1, 1, 1)
    std = torch.tensor(src.std).view(1, -1, 1, 1)
    assert src.y_train[torch.tensor(details["init_indices"])].tolist() == [0, 0, 1, 1, 2, 2]
    moved = (d.images - (init - mean) / std).abs().amax()
    assert moved > 1e-4, "the images were never updated"
    assert d.provenance.arch is None  # evaluated on the task's backbone, like every hard-label set
    assert details["distill_network"]["kwargs"]["norm"] == "in" and details["distill_network"]["param_count"] > 0
    assert details["loss"]["n"] == details["iterations"] and ("peak_rss_mib" in details)
    assert {p.name for p in tmp_path.iterdir()} >= {"grid.png", "loss.png", "loss.json"}


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_under_seed_and_seed_dependent(name):
    a, b, c = run(name, seed=1), run(name, seed=1), run(name, seed=2)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_dsa_inner_loop_trains_the_network_between_image_updates(monkeypatch):
    from ddbench_plugins.methods.dsa import driver

    calls = []
    real = driver.train_network
    monkeypatch.setattr(driver, "train_network", lambda *a, **k: (calls.append(1), real(*a, **k)))
    run("dsa", iterations=2, outer_loop=3, inner_loop=2)
    assert len(calls) == 2 * (3 - 1) * 2  # iterations x (outer_loop - 1) x inner_loop


def test_dsa_loop_table_is_the_reference_one():
    from ddbench_plugins.methods.dsa.driver import LOOPS, loops

    opts = plugins.get_method("dsa").options(None, {})
    assert [loops(opts, k) for k in (1, 10, 50)] == [(1, 1), (10, 50), (50, 10)]
    assert set(LOOPS) == {1, 10, 20, 30, 40, 50}
    with pytest.raises(OptionError, match=r"covers IPC 1, 10, 20, 30, 40, 50, not 7; give -o outer_loop"):
        loops(opts, 7)


def test_paper_presets_carry_the_papers_hyperparameters():
    dsa, dm = plugins.get_method("dsa"), plugins.get_method("dm")
    o = dsa.options("paper", {}, source="cifar10", budget=Budget(ipc=10))
    assert (o.iterations, o.lr_img, o.momentum, o.lr_net, o.batch_real, o.init, o.arch_widths, o.arch_norm) == \
        (1000, 0.1, 0.5, 0.01, 256, "real", (128, 128, 128), "in")
    o = dm.options("paper", {}, source="cifar10", budget=Budget(ipc=50))
    assert (o.iterations, o.lr_img, o.momentum, o.batch_real, o.init) == (20_000, 1.0, 0.5, 256, "real")
    for m in (dsa, dm):
        assert m.preset("paper", "cifar100").budget == Budget(images=1000, ipc=10)
        assert m.preset("paper", "tinyimagenet").budget == Budget(images=2000, ipc=10)
        assert m.options("paper", {}, source="tinyimagenet").arch_widths == (128, 128, 128, 128)
        assert m.preset("paper", "imagenet64").budget == Budget(images=1000, ipc=1)
        for k in (1, 10, 50):
            assert m.find_preset("paper", "cifar10", Budget(ipc=k)) is not None


# --------------------------------------------------------------------------- the shared toolkit


def test_layerwise_distance_is_the_reference_distance_wb():
    from ddbench.toolkit.matching import gradient_match_distance, layerwise_distance

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    ra, rb = a.reshape(4, -1), b.reshape(4, -1)
    expected = (1 - (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1) + 1e-6)).sum()
    assert torch.allclose(layerwise_distance(a, b), expected)
    assert layerwise_distance(a, a) < 1e-5
    assert float(layerwise_distance(torch.ones(5), -torch.ones(5))) == 0.0  # 1-D parameters count 0
    assert torch.allclose(gradient_match_distance([a, torch.ones(3)], [b, torch.zeros(3)]), expected)
    with pytest.raises(ValueError, match="unknown gradient distance"):
        gradient_match_distance([a], [b], "l1")


def test_mean_embedding_distance_groups_rows_by_class():
    from ddbench.toolkit.matching import mean_embedding_distance

    er = torch.tensor([[1.0, 0], [3, 0], [0, 2], [0, 4]])
    es = torch.tensor([[2.0, 1], [0, 0]])
    total, per = mean_embedding_distance(er, es, [2, 2], [1, 1])
    assert per.tolist() == [1.0, 9.0] and float(total) == 10.0
    total, per = mean_embedding_distance(er, es, [3, 1], [1, 1])  # unequal class sizes
    assert torch.allclose(per, torch.tensor([(4 / 3 - 2) ** 2 + (2 / 3 - 1) ** 2, 16.0]))


def test_dsa_all_families_mode_applies_every_family_in_order():
    from ddbench.toolkit.augment import DSA

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    m = DSA(mode="M")
    p = m.sample(3, torch.Generator().manual_seed(1))
    assert p.family == "M" and [s.family for s in p.chain] == list(m.families)
    by_hand = x
    for step in p.chain:
        by_hand = m.apply(by_hand, step)
    assert torch.equal(m.apply(x, p), by_hand)
    shared = m.sample(1, torch.Generator().manual_seed(1), shared=True)
    assert m.apply(x, shared).shape == x.shape and m.apply(x[:1], shared).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="mode must be 'S'"):
        DSA(mode="X")


def test_declared_families_agree_with_the_toolkit():
    from ddbench.toolkit.augment import DSA
    from ddbench_plugins.matching import FAMILIES

    assert FAMILIES == DSA.families_available


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", METHODS)
def test_ipc_larger_than_a_class_is_a_clear_error(name):
    with pytest.raises(DataError, match=r"10 images per class asked for, but class 0 has only 6 training images.*"
                                        r"lower --ipc"):
        run(name, ipc=10, source=fake_source(n=18))


@pytest.mark.parametrize("name", METHODS)
def test_budget_that_does_not_split_over_classes_is_a_clear_error(name):
    method = plugins.get_method(name)
    src = fake_source()
    ctx = RunContext(seed=0, preset="smoke", budget=Budget(images=7).resolve(3))
    with pytest.raises(DataError, match=r"not a multiple of the source's 3 classes; give --ipc K"):
        method.distill(ctx, src, method.options("smoke", {}))


@pytest.mark.parametrize("name", METHODS)
def test_unknown_strategy_family_is_an_option_error(name):
    with pytest.raises(OptionError, match=r"unknown augmentation family 'blur'; join families from color, crop"):
        plugins.get_method(name).options("smoke", {"dsa_strategy": "color_blur"})


@pytest.mark.parametrize("args,needle", [
    (["-m", "dsa", "-o", "dsa_strategy=color_zoom"], "unknown augmentation family 'zoom'"),
    (["-m", "dm", "--ipc", "99"], "99 images per class asked for"),
    (["-m", "dm", "--images", "9"], "not a multiple of the source's 4 classes"),
])
def test_cli_bad_input_exits_2_in_one_line(ddbench_tiny_source, fake_plugin, args, needle):
    from ddbench.cli import main

    res = CliRunner().invoke(main, ["run", *args, "-t", "meanpix", "-p", "smoke", "-s", ddbench_tiny_source])
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    assert needle in err, err


# --------------------------------------------------------------------------- divergence, resume


@pytest.mark.parametrize("name", METHODS)
def test_divergence_raises_and_keeps_the_last_checkpoint(name, tmp_path, monkeypatch):
    import importlib

    from ddbench.cache import load_checkpoint

    driver = importlib.import_module(f"ddbench_plugins.methods.{name}.driver")
    fn = "match_images" if name == "dsa" else "match_embeddings"
    real, calls = getattr(driver, fn), {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, per_class = real(*args, **kwargs)
        return (loss * float("nan") if calls["n"] >= 3 * kwargs_outer(name) else loss), per_class

    monkeypatch.setattr(driver, fn, poisoned)
    with pytest.raises(DivergenceError, match=rf"{name}: the loss became nan at step 3; the last good checkpoint "
                                              r"\(step 2\).*lower lr_img"):
        run(name, ckpt=tmp_path, iterations=6, checkpoint_every=1)
    state = load_checkpoint(tmp_path / f"{name}.pt")
    assert state["step"] == 2 and torch.isfinite(state["method"]["syn"]).all()


def kwargs_outer(name: str) -> int:
    """Image updates per iteration in the smoke preset (DSA: outer_loop 2; DM: 1)."""
    return 2 if name == "dsa" else 1


@pytest.mark.parametrize("name", METHODS)
def test_resume_after_sigkill_is_bit_identical(name, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_dsa_dm as t; "
            f"t._subprocess_main({name!r}, {str(ckpt)!r}, 5)")
    env = {**os.environ, "DDBENCH_QUIET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    resumed = run(name, seed=3, ckpt=ckpt, iterations=6, checkpoint_every=2)
    assert resumed.provenance.details["resumed_from_step"] == 4
    straight = run(name, seed=3, ckpt=tmp_path / "fresh", iterations=6, checkpoint_every=2)
    assert straight.provenance.details["resumed_from_step"] is None
    assert torch.equal(resumed.images, straight.images)
    assert resumed.provenance.details["loss"] == straight.provenance.details["loss"]


def test_dsa_with_batchnorm_freezes_statistics_from_real_images(monkeypatch):
    """arch_norm=bn: the reference's treatment (running statistics from 16 real images per
    class, then eval-mode BatchNorm for the matching)."""
    from ddbench_plugins.methods.dsa import driver

    seen = []
    real = driver.freeze_batchnorm
    monkeypatch.setattr(driver, "freeze_batchnorm", lambda net, x: (seen.append(len(x)), real(net, x))[1])
    d = run("dsa", arch_norm="BN", source=fake_source(n=60))
    assert seen and all(n == 3 * 16 for n in seen)  # 3 classes x BNSizePC, before every image update
    assert torch.isfinite(d.images).all()
