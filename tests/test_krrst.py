"""KRR-ST (plugins/ddbench_plugins/methods/krrst): shapes, determinism, the solver, the pool's
counter semantics (paper vs reference), divergence, and bit-identical resume after SIGKILL.

Everything runs on a tiny fabricated dataset with the ``smoke`` preset. Most tests swap the
Barlow Twins target for a tiny fixed-seed network (training one is covered by the target's
own tests and by the conformance suite), so the whole file stays well under a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddbench import plugins
from ddbench.context import RunContext
from ddbench.data import PreparedData, normalize
from ddbench.errors import DivergenceError, OptionError
from ddbench.types import Budget

HERE = Path(__file__).resolve().parent
RES = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP barrier stalls on a loaded machine (a 2-thread
    conv backward of 8 images took ~80 ms with other processes busy, 0.2 ms with one). The
    resumed child runs with the same thread count, which bit-identical resume requires."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def fake_source(n: int = 60, r: int = RES, k: int = 3, seed: int = 0) -> PreparedData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    x = (torch.rand(n, 3, r, r, generator=g) * 0.6 + y.view(-1, 1, 1, 1).float() / (2.5 * k)).clamp(0, 1)
    return PreparedData(name="fake3", resolution=r, num_classes=k, class_names=[f"c{i}" for i in range(k)],
                        x_train=x, y_train=y, x_val=x[:6], y_val=y[:6], x_test=x[:6], y_test=y[:6],
                        mean=tuple(x.mean((0, 2, 3)).tolist()), std=tuple(x.std((0, 2, 3)).tolist()),
                        content_hash="fake3-0")


def fake_target():
    """A tiny fixed-seed network in the target model's wrapper (same weights in every process)."""
    from torch import nn

    from ddbench.toolkit.nn import Network
    from ddbench_plugins.targets import TargetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        trunk = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        net = Network(trunk, feature_dim=32)
    return TargetModel(net, sha256="fake-target")


def use_fake_target(monkeypatch=None) -> None:
    from ddbench_plugins import targets

    target = fake_target()

    def get(ctx, source, options):
        ctx.extras["target_model"] = {"sha256": target.sha256, "fake": True}
        target.net.to(ctx.device)
        return target

    if monkeypatch is not None:
        monkeypatch.setattr(targets, "get_target_model", get)
    else:
        targets.get_target_model = get


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA")])]


#: the smoke budget
M = 8


def run(seed: int = 0, tmp: Path | None = None, ckpt: Path | None = None, device: str = "cpu", images: int = M,
        **overrides):
    method = plugins.get_method("krrst")
    opts = method.options("smoke", overrides)
    ctx = RunContext(seed=seed, device=device, preset="smoke", checkpoint_dir=ckpt, output_dir=tmp,
                     budget=Budget(images=images))
    return method.distill(ctx, fake_source(), opts)


def _subprocess_main(ckpt: str, kill_at: int, device: str = "cpu") -> None:
    """Entry point of the killed child in ``test_resume_after_sigkill_is_bit_identical``."""
    from ddbench_plugins.methods.krrst import driver

    def kill(step: int) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    driver.after_step = kill
    torch.set_num_threads(1)
    use_fake_target()
    run(seed=3, ckpt=Path(ckpt), device=device, steps=9, checkpoint_every=2)


# --------------------------------------------------------------------------- registration, options


def test_registered_with_options_and_presets():
    method = plugins.get_method("krrst")
    assert method.label_kind == "representation"
    opts_cls = method.Options
    assert all(h.strip() for h in opts_cls.help().values()), "every option needs help text"
    for preset, source in (("smoke", None), ("quick", None), ("paper", "cifar100")):
        assert method.options(preset, source=source).target_arch == "resnet18"
    assert method.default_source("quick") == "tinyimagenet200_32_subset"
    assert method.default_source("smoke") is None
    assert method.preset("smoke").budget == Budget(images=M)
    quick = method.options("quick")
    assert method.preset("quick").budget.images == 200
    assert (quick.batch_size, quick.pool_steps) == (256, 50)
    assert tuple(quick.arch_widths) == (32, 64, 128) and quick.resolution == 32
    cifar = method.options("paper", source="cifar100")
    assert method.preset("paper", "cifar100").budget.images == 1000
    assert (cifar.arch_widths, cifar.resolution, cifar.outer_lr) == ((128, 256, 512), 32, 1e-4)
    assert (cifar.steps, cifar.batch_size, cifar.pool_steps, cifar.pool_size) == (160_000, 1024, 1000, 10)
    tin = method.options("paper", source="tinyimagenet")
    assert method.preset("paper", "tinyimagenet").budget.images == 2000
    assert (tin.arch_widths, tin.resolution, tin.outer_lr) == ((64, 128, 256, 512), 64, 1e-5)
    inet = method.options("paper", source="imagenet64")
    assert method.preset("paper", "imagenet64").budget.images == 1000
    assert (inet.arch_widths, inet.resolution) == ((64, 128, 256, 512), 64)
    assert cifar.reset_counter and not cifar.raw_pixel_init
    with pytest.raises(OptionError, match="did you mean"):
        method.options("smoke", {"batch_sise": 3})
    with pytest.raises(OptionError, match="solver"):
        method.options("smoke", {"solver": "qr"})


def test_plugin_module_does_not_import_torch():
    code = ("import sys; import ddbench_plugins.methods.krrst as k; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(k.KRRST.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "krrst"


# --------------------------------------------------------------------------- the artifact


def test_shapes_label_kind_outputs(monkeypatch, tmp_path):
    use_fake_target(monkeypatch)
    d = run(tmp=tmp_path / "out")
    m = M
    assert d.images.shape == (m, 3, RES, RES) and d.images.dtype == torch.float32
    assert d.targets.shape == (m, 32) and d.targets.dtype == torch.float32
    assert d.label_kind == "representation" and d.recipe == "representation_mse"
    assert d.pixel_space == "normalized" and d.method == "krrst"
    assert d.value_range is None  # learned pixels may leave [0, 1]
    p = d.provenance
    assert p.arch.name == "convnet" and p.arch.kwargs == {"widths": [8, 16], "norm": "bn"}
    assert p.arch.feature_dim and p.arch.param_count  # what the pool's network is, for the record
    assert p.details["steps"] == 6 and p.details["loss"]["n"] == 6 and p.seconds is not None
    assert p.depends_on["target_model"].info["fake"]
    assert "smoke" in p.scaling
    for name in ("grid.png", "loss.png", "loss.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_under_seed_and_seed_dependent(monkeypatch, device):
    use_fake_target(monkeypatch)
    a, b, c = run(seed=0, device=device), run(seed=0, device=device), run(seed=1, device=device)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, c.images)


def test_zero_steps_is_random_images_with_target_representations(monkeypatch):
    use_fake_target(monkeypatch)
    src, target = fake_source(), fake_target()
    d = run(steps=0)
    idx = [int((src.x_train - (d.images[i] * torch.tensor(src.std).view(3, 1, 1)
                               + torch.tensor(src.mean).view(3, 1, 1))).flatten(1).abs().amax(1).argmin())
           for i in range(d.num_images)]
    assert len(set(idx)) == d.num_images  # distinct real images
    expected = normalize(src.x_train[idx], src.mean, src.std)
    assert torch.allclose(d.images, expected, atol=1e-6)
    assert torch.allclose(d.targets, target.represent(expected), atol=1e-6)
    raw = run(steps=0, raw_pixel_init=True)
    assert raw.pixel_space == "raw01"
    assert torch.allclose(raw.images, src.x_train[idx]) and torch.allclose(raw.targets, d.targets)


@pytest.mark.parametrize("learn", ["images", "targets"])
def test_learn_ablations_freeze_the_other_half(monkeypatch, learn):
    """``learn=images`` keeps Y_s = g(X_s of the initial draw); ``learn=targets`` keeps the
    initial real images; the paper (``both``) moves both."""
    use_fake_target(monkeypatch)
    init, both, abl = run(steps=0), run(), run(learn=learn)
    assert not torch.equal(both.images, init.images) and not torch.equal(both.targets, init.targets)
    if learn == "images":
        assert torch.equal(abl.targets, init.targets) and not torch.equal(abl.images, init.images)
    else:
        assert torch.equal(abl.images, init.images) and not torch.equal(abl.targets, init.targets)
    assert abl.provenance.options["learn"] == learn
    ctx = RunContext(seed=0, preset="smoke", budget=Budget(images=M))
    plugins.get_method("krrst").distill(ctx, fake_source(), plugins.get_method("krrst").options("smoke", {"learn": learn}))
    assert ctx.extras["diagnostic"] == [f"ablation: learn={learn} (the paper learns images and targets)"]
    with pytest.raises(OptionError, match="learn must be one of both, images, targets"):
        plugins.get_method("krrst").options("smoke", {"learn": "labels"})


# --------------------------------------------------------------------------- pieces of the step


def test_cholesky_solve_matches_plain_solve_with_gradients():
    from ddbench.toolkit.krr import krr_predict, krr_solve

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 40, generator=g, dtype=torch.float64).float()
    ys0 = torch.randn(12, 5, generator=g)
    ridge = plugins.get_method("krrst").options("smoke").ridge
    results = {}
    for solver in ("cholesky", "solve"):
        f, ys = feats.clone().requires_grad_(True), ys0.clone().requires_grad_(True)
        alpha, fell_back = krr_solve(f @ f.T, ys, ridge, solver, torch.eye(12))
        gf, gy = torch.autograd.grad((alpha ** 2).sum(), [f, ys])
        results[solver] = (alpha.detach(), gf, gy)
        assert not fell_back
    for a, b in zip(results["cholesky"], results["solve"]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), (a - b).abs().max()
    # an indefinite matrix: the factorisation fails and the LU solve takes over
    K = torch.diag(torch.tensor([1.0, -2.0, 3.0]))
    y = torch.ones(3, 1)
    alpha, fell_back = krr_solve(K, y, ridge)
    assert fell_back and torch.allclose(alpha, torch.linalg.solve(K + ridge * 2.0 * torch.eye(3), y))
    q = torch.randn(4, 3, generator=g)
    pred, _ = krr_predict(q, K, y, ridge)
    assert torch.allclose(pred, q @ alpha)


def test_fused_eval_features_match_embed():
    from torch import nn

    from ddbench.toolkit.nn import fused_embed

    torch.manual_seed(0)
    net = plugins.get_architecture("convnet").build((3, RES, RES), 5, widths=(8, 16), norm="bn")
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_()
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.normal_()
            mod.bias.data.normal_()
    net.eval()
    x = torch.randn(7, 3, RES, RES)
    with torch.no_grad():
        ref = net.embed(x)
        x_before = x.clone()
        got = fused_embed(net)(x)
    assert torch.equal(x, x_before)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5)


def _tiny_pool(reset_counter: bool, T: int = 3):
    from torch import nn

    from ddbench.toolkit.pool import ModelPool

    def build():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 2))

    return ModelPool(build, 1, T, lr=0.1, momentum=0.9, wd=0.0, reset_counter=reset_counter,
                     generator=torch.Generator().manual_seed(0), device="cpu")


def test_pool_counter_paper_resets_to_zero_and_keeps_training():
    pool = _tiny_pool(reset_counter=True, T=3)
    xs, ys = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    pool.init(xs, ys)
    assert 1 <= pool.counters[0] <= 2
    seen = []
    for _ in range(8):
        before = [p.detach().clone() for p in pool.models[0].parameters()]
        model = pool.models[0]
        pool.update(0, xs, ys)
        seen.append(pool.counters[0])
        if pool.models[0] is model:  # trained in place
            assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # counters cycle 0..T-1: a re-initialised model starts at 0 and trains again
    assert max(seen) == 2 and seen.count(0) >= 2 and pool.reinits >= 2
    i = seen.index(0)
    assert seen[i + 1:i + 3] == [1, 2]


def test_pool_counter_reference_recreates_random_model_on_every_pick():
    pool = _tiny_pool(reset_counter=False, T=3)
    xs, ys = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    pool.init(xs, ys)
    for _ in range(3 - pool.counters[0]):
        model = pool.models[0]
        pool.update(0, xs, ys)
        assert pool.models[0] is model  # trains while below T
    assert pool.counters[0] == 3 and pool.reinits == 0
    for k in range(1, 5):
        model = pool.models[0]
        pool.update(0, xs, ys)
        assert pool.models[0] is not model  # re-created, untrained, every time
        assert pool.counters[0] == 3 and pool.reinits == k
        assert all(len(s) == 0 for s in pool.opts[0].state.values())


# --------------------------------------------------------------------------- failure and resume


def test_divergence_raises_and_keeps_checkpoint(monkeypatch, tmp_path):
    use_fake_target(monkeypatch)
    from ddbench.cache import load_checkpoint
    from ddbench_plugins.methods.krrst import driver, step

    real_predict = step.krr_predict
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        pred, fell_back = real_predict(*args)
        return (pred * float("nan") if calls["n"] >= 3 else pred), fell_back

    monkeypatch.setattr(step, "krr_predict", poisoned)
    with pytest.raises(DivergenceError, match=r"loss became nan at step 3.*checkpoint \(step 2\)"):
        run(ckpt=tmp_path, checkpoint_every=2, log_every=1)
    state = load_checkpoint(tmp_path / driver.CHECKPOINT_FILE)
    assert state["step"] == 2 and torch.isfinite(state["xs"]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_resume_after_sigkill_is_bit_identical(monkeypatch, tmp_path, device):
    from ddbench.cache import load_checkpoint
    from ddbench_plugins.methods.krrst.driver import CHECKPOINT_FILE

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_krrst as t; "
            f"t._subprocess_main({str(ckpt)!r}, 5, {device!r})")
    env = {**os.environ, "DDBENCH_QUIET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(ckpt / CHECKPOINT_FILE)["step"] == 4

    use_fake_target(monkeypatch)
    resumed = run(seed=3, ckpt=ckpt, device=device, steps=9, checkpoint_every=2)
    assert resumed.provenance.details["resumed_from_step"] == 4
    straight = run(seed=3, ckpt=tmp_path / "fresh", device=device, steps=9, checkpoint_every=2)
    assert straight.provenance.details["resumed_from_step"] is None
    assert torch.equal(resumed.images, straight.images)
    assert torch.equal(resumed.targets, straight.targets)
    assert resumed.provenance.details["loss"] == straight.provenance.details["loss"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_syncs_with_the_host_once():
    """On CUDA an outer step reads one scalar back (Cholesky's ``info``) and copies nothing
    between host and device: counted with torch's sync debug mode over 6 steps, between pool
    re-initialisations (T is large, so no slot is rebuilt inside the window)."""
    import warnings

    from ddbench_plugins.methods.krrst.driver import make_builder
    from ddbench_plugins.methods.krrst.step import Distiller

    opts = plugins.get_method("krrst").options("smoke", {"steps": 20, "pool_steps": 200})
    target = fake_target()
    target.net.to("cuda")
    d = Distiller(opts, num_images=M, x_real01=fake_source().x_train, mean=(0.5,) * 3, std=(0.25,) * 3, target=target,
                  build=make_builder(opts, (3, RES, RES), target.feature_dim),
                  seed_generator=lambda off, dev: torch.Generator(device=dev or "cpu").manual_seed(off),
                  device="cuda")
    d.init_synthetic()
    d.init_pool()
    d.pool.counters = [1] * len(d.pool.counters)  # far from T: no re-initialisation in the window
    d.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(6):
                d.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) <= 6, syncs
    assert torch.isfinite(d.losses[:d.step_count]).all()
