"""Benchmarks of KRR-ST's outer (meta) step.

    python -m pytest benchmarks/test_bench_krrst.py --benchmark-only -q -s

``test_bench_krrst_meta_step[paper-cifar100]``: m 1000, b 1024, pool ConvNet 128-256-512 (BN)
at 32 px, ResNet18 x1 target; ``[quick]``: the quick preset (m 200, b 256, ConvNet 32-64-128,
ResNet18 x1/4). Weights and images are random: a step's cost does not depend on them, and
the pool holds one model, built without pre-training.

Each run records in ``extra_info``: the step's phases (seconds), the machine's fp32
matmul throughput (GFLOP/s, 2048x2048 products), the step's estimated FLOPs and their
share of that peak, and the time of a *reference-style* step (a line-by-line port of the
reference code's ``algorithms/distill.py`` + ``model_pool.py``: ``torch.linalg.solve``,
identity and ones columns allocated per step, unfused BN, NCHW) on the same state, with
the ratio reference / ddbench. ``DDBENCH_BENCH_DEVICE=cuda`` runs it on a GPU.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddbench import plugins

DEVICE = os.environ.get("DDBENCH_BENCH_DEVICE", "cpu")

_GPU = DEVICE.startswith("cuda")
CONFIGS = {
    "paper-cifar100": {"preset": "paper", "source": "cifar100", "res": 32,
                       "rounds": 10 if _GPU else 1, "warmup": 3 if _GPU else 0},
    "quick": {"preset": "quick", "source": None, "res": 32, "rounds": 20 if _GPU else 5, "warmup": 3 if _GPU else 1},
}


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` fp32 throughput of an n x n x n matrix product, GFLOP/s (the
    benchmark reports the better of n = 2048 and 4096 as the machine's peak)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(DEVICE)
    b = torch.randn(n, n, generator=g).to(DEVICE)
    a @ b
    _sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


class PhaseTimer:
    """``with timer("name"):`` accumulates wall time per phase (synchronising a GPU)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str):
        _sync()
        t = time.perf_counter()
        yield
        _sync()
        self.seconds[name] += time.perf_counter() - t


def conv_flops(module: nn.Module, x: torch.Tensor) -> float:
    """Forward FLOPs (2 x multiply-adds of every Conv2d and Linear) for one batch ``x``."""
    total = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2.0 * out.numel() * k
        elif isinstance(mod, nn.Linear):
            total[0] += 2.0 * out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def make_distiller(name: str, **overrides):
    """A Distiller on random images with a random-weight ResNet18 target and a one-model pool."""
    from ddbench_plugins.methods.krrst.driver import make_builder
    from ddbench_plugins.methods.krrst.step import Distiller
    from ddbench_plugins.targets import TargetModel
    from ddbench_plugins.targets.model import build_backbone

    cfg = CONFIGS[name]
    method = plugins.get_method("krrst")
    opts = method.options(cfg["preset"], overrides, source=cfg["source"])
    num_images = method.preset(cfg["preset"], cfg["source"]).budget.images
    r = cfg["res"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_backbone(opts.target_arch, (3, r, r), opts.target_width, opts.target_stem_padding)
    target = TargetModel(net.to(DEVICE))
    g = torch.Generator().manual_seed(0)
    x_real = torch.rand(2 * opts.batch_size, 3, r, r, generator=g)
    seeds = lambda off, dev: torch.Generator(device=dev or "cpu").manual_seed(off)  # noqa: E731
    d = Distiller(opts, num_images=num_images, x_real01=x_real, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                  target=target, build=make_builder(opts, (3, r, r), target.feature_dim), seed_generator=seeds,
                  device=DEVICE)
    d.init_synthetic()
    model, opt = d.pool.new_model()
    d.pool.models, d.pool.opts, d.pool.counters, d.pool.size = [model], [opt], [1], 1
    return d


def reference_step(d, phase) -> torch.Tensor:
    """The reference code's outer step (selfsup_dd@4beb4b1 ``algorithms/distill.py::run`` then
    ``model_pool.py::ModelPool.update``), on ``d``'s state and random streams."""
    device = d.device
    x_syn, y_syn = d.xs, d.ys
    d.opt.zero_grad()
    idx = d.pool.pick()
    model = d.pool.models[idx]
    model.eval()
    model.zero_grad()
    with phase("data"):
        x_real = d.real_batch().contiguous()
    with phase("target_forward"):
        with torch.no_grad():
            y_real = d.target.net.embed(x_real)
    with phase("syn_features"):
        f_syn = model.embed(x_syn)
        f_syn = torch.cat([f_syn, torch.ones(f_syn.shape[0], 1).to(device)], dim=1)
    with phase("real_features"):
        with torch.no_grad():
            f_real = model.embed(x_real)
            f_real = torch.cat([f_real, torch.ones(f_real.shape[0], 1).to(device)], dim=1)
    with phase("kernel_solve_backward"):
        K_real_syn = f_real @ f_syn.permute(1, 0).contiguous()
        K_syn_syn = f_syn @ f_syn.permute(1, 0).contiguous()
        lambda_ = 1e-6 * torch.trace(K_syn_syn.detach())
        eye = torch.eye(K_syn_syn.shape[0]).to(device)
        outer_loss = F.mse_loss(K_real_syn @ torch.linalg.solve(K_syn_syn + lambda_ * eye, y_syn), y_real)
        outer_grad = torch.autograd.grad(outer_loss, [x_syn, y_syn])
    with phase("optimizer"):
        x_syn.grad, y_syn.grad = outer_grad
        d.opt.step()
        d.sched.step()
    with phase("pool_update"):
        opt = d.pool.opts[idx]
        d.pool.counters[idx] += 1
        model.train()
        opt.zero_grad()
        loss = F.mse_loss(model(x_syn.detach()), y_syn.detach())
        loss.backward()
        opt.step()
    return outer_loss


def step_flops(d) -> dict[str, float]:
    """Estimated FLOPs of one outer step, by phase (backward ~ 1x forward for input
    gradients, 2x for input + weight gradients)."""
    r = d.xs.shape[-1]
    m, b = d.xs.shape[0], d.batch_size
    x1 = torch.zeros(1, 3, r, r, device=d.device)
    f_t = conv_flops(d.target.net, x1)
    model = d.pool.models[0]
    f_p = conv_flops(model.trunk, x1)
    f_head = conv_flops(model.head, torch.zeros(1, model.feature_dim, device=d.device))
    D = model.feature_dim + 1
    k = int(d.ys.shape[1])
    return {
        "target_forward": b * f_t,
        "syn_features": m * f_p,
        "real_features": b * f_p,
        # kernels (2 m^2 D + 2 b m D), their backward (~2x), Cholesky + solves, pred, syn backward
        "kernel_solve_backward": 3 * (2 * m * m * D + 2 * b * m * D) + m ** 3 / 3 + 4 * m * m * k
        + 2 * b * m * k + m * f_p,
        "pool_update": 3 * m * (f_p + f_head),
    }


@pytest.mark.parametrize("name", list(CONFIGS), ids=list(CONFIGS))
def test_bench_krrst_meta_step(benchmark, name):
    torch.manual_seed(0)
    cfg = CONFIGS[name]
    peak = max(matmul_gflops(2048), matmul_gflops(4096, reps=2))
    d = make_distiller(name)
    # the reference-style step runs on its own copy of the same state, in the reference's layout
    dref = make_distiller(name, channels_last=False, fuse_bn=False, solver="solve")

    timer, ref_timer = PhaseTimer(), PhaseTimer()
    ours_times: list[float] = []
    ref_times: list[float] = []

    def ours():
        d.step(timer)
        _sync()

    def reference():
        # runs before each timed round (pedantic's setup), so both are measured under the
        # same machine load, interleaved
        _sync()
        t = time.perf_counter()
        reference_step(dref, ref_timer)
        _sync()
        ref_times.append(time.perf_counter() - t)

    for _ in range(cfg["warmup"]):
        ours()
        reference_step(dref, PhaseTimer())
        _sync()
    timer.seconds.clear()
    ref_timer.seconds.clear()
    ref_times.clear()

    def timed_ours():
        t = time.perf_counter()
        ours()
        ours_times.append(time.perf_counter() - t)

    benchmark.pedantic(timed_ours, setup=reference, rounds=cfg["rounds"], iterations=1, warmup_rounds=0)
    ours_s = statistics.median(ours_times)
    ref_s = statistics.median(ref_times)

    flops = step_flops(d)
    total = sum(flops.values())
    o = d.o
    benchmark.extra_info.update({
        "device": DEVICE if DEVICE == "cpu" else torch.cuda.get_device_name(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "config": {"m": d.num_images, "b": d.batch_size, "pool_widths": list(o.arch_widths),
                   "res": CONFIGS[name]["res"], "target": f"{o.target_arch} x{o.target_width:g}",
                   "target_dim": int(d.ys.shape[1]), "channels_last": o.channels_last, "fuse_bn": o.fuse_bn,
                   "solver": o.solver},
        "phases_s": {k: round(v / cfg["rounds"], 4) for k, v in timer.seconds.items()},
        "reference_phases_s": {k: round(v / cfg["rounds"], 4) for k, v in ref_timer.seconds.items()},
        "step_s": round(ours_s, 4),
        "reference_step_s": round(ref_s, 4),
        "step_s_rounds": [round(v, 4) for v in ours_times],
        "reference_step_s_rounds": [round(v, 4) for v in ref_times],
        "speedup_vs_reference": round(ref_s / ours_s, 3),
        "matmul_gflops": round(peak, 1),
        "step_gflop": round(total / 1e9, 1),
        "step_gflop_by_phase": {k: round(v / 1e9, 2) for k, v in flops.items()},
        "achieved_gflops": round(total / ours_s / 1e9, 1),
        # direct-convolution FLOPs: oneDNN (Winograd) and cuDNN (TF32 by default for convs) can
        # do the work with fewer or cheaper operations, so this fraction can exceed 1
        "fraction_of_matmul_peak": round(total / ours_s / 1e9 / peak, 3),
        "tf32_convs": bool(torch.backends.cudnn.allow_tf32) if _GPU else None,
    })
    info = benchmark.extra_info
    print(f"\n[{name}] {info['device']} torch {info['torch']} threads {info['threads']}: "
          f"step {info['step_s']} s, reference-style {info['reference_step_s']} s (medians of "
          f"{cfg['rounds']}, interleaved) "
          f"(x{info['speedup_vs_reference']}); {info['step_gflop']} GFLOP/step = {info['achieved_gflops']} GFLOP/s "
          f"= {info['fraction_of_matmul_peak']:.0%} of the {info['matmul_gflops']} GFLOP/s matmul peak")
    print(f"  phases (ours):      {info['phases_s']}")
    print(f"  phases (reference): {info['reference_phases_s']}")
    assert torch.isfinite(d.xs).all() and torch.isfinite(dref.xs).all()
