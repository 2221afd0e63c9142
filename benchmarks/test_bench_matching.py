"""Benchmarks of DSA's and DM's outer step (one update of the synthetic images), on CPU.

    python -m pytest benchmarks/test_bench_matching.py --benchmark-only -q -s

Shapes (``SHAPES``): ``paper-cifar10-ipc10`` = 10 classes, IPC 10, ConvNet-128x3 (IN) at 32 px,
real batch 256 per class (the DSA/DM papers' CIFAR-10 IPC 10 row); ``quick`` = 200 classes,
IPC 1, ConvNet 32-64-128 (IN), real batch 16 per class (the quick preset on
tinyimagenet200_32_subset). Images are random tensors and the networks keep their random
initialisation: a step's cost does not depend on either.

* ``test_bench_dsa_outer_step``: one ``match_images`` over all classes (the unit a DSA
  iteration repeats ``outer_loop`` times); ``test_bench_dsa_inner_epoch``: one
  ``train_network`` epoch on the synthetic set (repeated ``inner_loop`` times between image
  updates; the quick shape, IPC 1, runs none).
* ``test_bench_dm_outer_step``: one ``match_embeddings`` (a DM iteration), ``batched`` (all
  classes in one forward pass) or ``per-class`` (the reference's loop). The batched case
  also times a per-class step before each of its rounds and records both medians and their
  ratio, so the comparison sees the same machine load.

Each run records in ``extra_info``: the step's FLOPs as counted by
``torch.utils.flop_counter.FlopCounterMode`` on one step (matmuls and convolutions of the
forward, backward and double backward; elementwise work is not counted), the achieved
GFLOP/s (from the median round) and its share of the machine's fp32 matmul throughput
(``matmul_gflops`` of test_bench_krrst.py), each round's wall, user and system CPU time,
torch's thread count, the 1-minute load average, the shapes, and the peak resident memory of
the warm-up step: the kernel's high-water mark, reset through ``/proc/self/clear_refs``
after ``malloc_trim``. That is close to, not the same as, a process of its own;
``benchmarks/matching_peak_memory.py`` measures one method and shape per process. The
FLOP-counted step doubles as the warm-up. ``DDBENCH_BENCH_ROUNDS`` sets the rounds
(default 3), ``DDBENCH_BENCH_THREADS`` torch's threads (default: torch's own choice).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
import statistics
import time
from typing import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ddbench import plugins
from ddbench.toolkit.augment import DSA
from test_bench_krrst import DEVICE, matmul_gflops

ROUNDS = int(os.environ.get("DDBENCH_BENCH_ROUNDS", "3"))


@dataclasses.dataclass(frozen=True)
class Shape:
    classes: int
    ipc: int
    widths: tuple[int, ...]
    real_per_class: int
    res: int = 32
    norm: str = "in"
    batch_train: int = 256

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths), "synthetic": self.classes * self.ipc,
                "real_images": self.classes * self.real_per_class}


SHAPES = {
    "paper-cifar10-ipc10": Shape(classes=10, ipc=10, widths=(128, 128, 128), real_per_class=256),
    "quick": Shape(classes=200, ipc=1, widths=(32, 64, 128), real_per_class=16),
}

pytestmark = pytest.mark.skipif(DEVICE != "cpu", reason="the matching benchmarks run on CPU only")


@dataclasses.dataclass
class State:
    """What one method's step reads and updates, built from fixed seeds."""

    shape: Shape
    net: nn.Module
    syn: Tensor
    labels: Tensor
    real: list[Tensor]
    dsa: DSA
    opt_img: torch.optim.Optimizer
    g_aug: torch.Generator
    opt_net: torch.optim.Optimizer | None = None
    g_order: torch.Generator | None = None


def make_state(name: str, method: str, *, net: nn.Module | None = None, real: list[Tensor] | None = None) -> State:
    """``method`` "dsa" (trainable network, lr_img 0.1) or "dm" (frozen network, lr_img 1, as
    the DM driver); ``net``/``real`` share another state's network and real batches."""
    s = SHAPES[name]
    if net is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            arch = plugins.registry("architecture").get("convnet")
            net = arch.build((3, s.res, s.res), s.classes, width=1.0, widths=s.widths, norm=s.norm).train()
        if method == "dm":
            net.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    if real is None:
        real = [torch.randn(s.real_per_class, 3, s.res, s.res, generator=g) for _ in range(s.classes)]
    syn = torch.randn(s.classes * s.ipc, 3, s.res, s.res, generator=g).requires_grad_(True)
    labels = torch.arange(s.classes).repeat_interleave(s.ipc)
    opt_img = torch.optim.SGD([syn], lr=0.1 if method == "dsa" else 1.0, momentum=0.5)
    state = State(s, net, syn, labels, real, DSA(), opt_img, torch.Generator().manual_seed(2))
    if method == "dsa":
        state.opt_net = torch.optim.SGD(net.parameters(), lr=0.01)
        state.g_order = torch.Generator().manual_seed(3)
    return state


def dsa_outer_step(st: State) -> None:
    from ddbench_plugins.methods.dsa.step import match_images

    params = [st.dsa.sample(1, st.g_aug, shared=True) for _ in range(st.shape.classes)]
    match_images(st.net, st.syn, st.shape.ipc, st.real, params, st.dsa, st.opt_img)


def dsa_inner_epoch(st: State) -> None:
    from ddbench_plugins.methods.dsa.step import train_network

    n, bt = len(st.labels), st.shape.batch_train
    order = torch.randperm(n, generator=st.g_order)
    params = [st.dsa.sample(len(order[i:i + bt]), st.g_aug) for i in range(0, n, bt)]
    train_network(st.net, st.opt_net, st.syn.detach(), st.labels, order, params, st.dsa, bt)


def dm_step(st: State, batched: bool) -> None:
    from ddbench_plugins.methods.dm.step import match_embeddings

    params = [st.dsa.sample(1, st.g_aug, shared=True) for _ in range(st.shape.classes)]
    match_embeddings(st.net, st.syn, st.shape.ipc, st.real, params, st.dsa, st.opt_img, batched=batched)


# --------------------------------------------------------------------------- memory


def _clear_refs_works() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_PER_STEP_RSS = _clear_refs_works()


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _malloc_trim() -> Callable[[], None]:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


#: hands the C allocator's free pages back to the kernel, so a step's RSS starts from what is live
malloc_trim = _malloc_trim()


def rss_reset() -> float:
    """Reset the process's RSS high-water mark (where the kernel allows it); the RSS now, MiB."""
    if _PER_STEP_RSS:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mib("VmRSS")
    return float("nan")


def rss_peak() -> float:
    """RSS high-water mark since the last :func:`rss_reset` (the process's lifetime peak where
    it cannot be reset), MiB."""
    if _PER_STEP_RSS:
        return _status_mib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_memory(step: Callable[[], None]) -> dict:
    """Run ``step`` once from a trimmed heap; its RSS before and at its peak, MiB. Only used on
    the warm-up: a trimmed heap makes the next step fault its pages in again, which the timed
    rounds should not pay for."""
    malloc_trim()
    before = rss_reset()
    step()
    return {"peak_rss_mib": round(rss_peak(), 1), "rss_before_step_mib": round(before, 1),
            "peak_rss_scope": "one step (VmHWM reset before it)" if _PER_STEP_RSS else "process lifetime"}


# --------------------------------------------------------------------------- measuring


class Timed:
    """Wraps a step: per call its wall time and the process's user and system CPU time (with
    2 threads, user + system near 2 x wall means both cores were busy, spinning included)."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.step = step
        self.seconds: list[float] = []
        self.cpu_user: list[float] = []
        self.cpu_sys: list[float] = []

    def __call__(self) -> None:
        c = os.times()
        t = time.perf_counter()
        self.step()
        self.seconds.append(time.perf_counter() - t)
        c2 = os.times()
        self.cpu_user.append(c2.user - c.user)
        self.cpu_sys.append(c2.system - c.system)

    def cpu(self) -> dict:
        return {"cpu_user_s_rounds": [round(v, 2) for v in self.cpu_user],
                "cpu_sys_s_rounds": [round(v, 2) for v in self.cpu_sys]}


def count_flops(step: Callable[[], None]) -> tuple[float, dict[str, float], dict]:
    """(total, by aten op) FLOPs of one call of ``step``, and that call's memory."""
    with FlopCounterMode(display=False) as fc:
        memory = step_memory(step)
    by_op = {str(op).removeprefix("aten."): n for op, n in fc.get_flop_counts().get("Global", {}).items()}
    return float(fc.get_total_flops()), by_op, memory


def run(benchmark, matmul_peak: float, name: str, step: Callable[[], None], *,
        before_each: Timed | None = None, label: str = "") -> tuple[Timed, dict | None]:
    """FLOP-count and measure the memory of one step (the warm-up), then ``ROUNDS`` timed
    rounds, ``before_each`` (timed apart) before each; records extra_info. Returns the timed
    step and ``before_each``'s memory."""
    flops, by_op, memory = count_flops(step)
    other_memory = step_memory(before_each) if before_each is not None else None  # its warm-up
    timed = Timed(step)
    load = os.getloadavg()[0]
    benchmark.pedantic(timed, setup=before_each, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    mean, median = statistics.fmean(timed.seconds), statistics.median(timed.seconds)
    # from the median: one round that lost its cores to other processes would dominate a mean
    achieved = flops / median / 1e9
    benchmark.extra_info.update({
        "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "loadavg_1m_before": round(load, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "shape": {"name": name, **SHAPES[name].to_dict()},
        "step_s_mean": round(mean, 4), "step_s_median": round(median, 4),
        "step_s_rounds": [round(v, 4) for v in timed.seconds], **timed.cpu(),
        "step_gflop": round(flops / 1e9, 2), "step_gflop_by_op": {k: round(v / 1e9, 2) for k, v in by_op.items()},
        "achieved_gflops": round(achieved, 1), "matmul_gflops": round(matmul_peak, 1),
        # direct-convolution FLOPs: oneDNN may do the work with fewer operations (Winograd)
        "fraction_of_matmul_peak": round(achieved / matmul_peak, 3),
        **memory,
    })
    i = benchmark.extra_info
    print(f"\n[{label or name}] threads {i['threads']}, load {i['loadavg_1m_before']}->{i['loadavg_1m_after']}: "
          f"{i['step_s_median']} s/step (median of {ROUNDS}: {i['step_s_rounds']}; CPU user "
          f"{i['cpu_user_s_rounds']} sys {i['cpu_sys_s_rounds']}), {i['step_gflop']} GFLOP = "
          f"{i['achieved_gflops']} GFLOP/s = {i['fraction_of_matmul_peak']:.1%} of {i['matmul_gflops']} GFLOP/s; "
          f"peak RSS {i['peak_rss_mib']} MiB (before {i['rss_before_step_mib']})")
    return timed, other_memory


@pytest.fixture(scope="module")
def threads():
    """torch's intra-op threads for this module: ``DDBENCH_BENCH_THREADS`` when set. On a
    machine other processes keep busy, 1 thread avoids OpenMP workers that spin at every
    parallel region while their partner waits for a core (slowdowns of 5-50x were seen on 2
    loaded cores, mostly in the per-class loops' many small ops)."""
    before = torch.get_num_threads()
    if os.environ.get("DDBENCH_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["DDBENCH_BENCH_THREADS"]))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def matmul_peak(threads) -> float:
    """The machine's fp32 matmul throughput as test_bench_krrst.py measures it (once per
    module, at the benchmarks' thread count)."""
    return max(matmul_gflops(2048), matmul_gflops(4096, reps=2))


@pytest.mark.parametrize("name", list(SHAPES))
def test_bench_dsa_outer_step(benchmark, matmul_peak, name):
    st = make_state(name, "dsa")
    run(benchmark, matmul_peak, name, lambda: dsa_outer_step(st), label=f"dsa outer step {name}")
    assert torch.isfinite(st.syn).all()


@pytest.mark.parametrize("name", ["paper-cifar10-ipc10"])
def test_bench_dsa_inner_epoch(benchmark, matmul_peak, name):
    st = make_state(name, "dsa")
    run(benchmark, matmul_peak, name, lambda: dsa_inner_epoch(st), label=f"dsa inner epoch {name}")
    assert all(torch.isfinite(p).all() for p in st.net.parameters())


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-class"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_bench_dm_outer_step(benchmark, matmul_peak, name, batched):
    st = make_state(name, "dm")
    before_each, other = None, None
    if batched:
        # the reference's loop on its own copy of the state (same network, real batches and
        # augmentation draws), timed before each batched round
        per_class = make_state(name, "dm", net=st.net, real=st.real)
        other = before_each = Timed(lambda: dm_step(per_class, False))
    timed, other_memory = run(benchmark, matmul_peak, name, lambda: dm_step(st, batched),
                              before_each=before_each, label=f"dm {'batched' if batched else 'per-class'} {name}")
    benchmark.extra_info["batched"] = batched
    if other is not None:
        rounds = other.seconds[1:]  # the first was the warm-up
        b, p = statistics.median(timed.seconds), statistics.median(rounds)
        benchmark.extra_info.update({
            "interleaved_batched_s_median": round(b, 4), "interleaved_per_class_s_median": round(p, 4),
            "interleaved_per_class_s_rounds": [round(v, 4) for v in rounds],
            "batched_over_per_class": round(b / p, 3),
            "per_class_peak_rss_mib": other_memory["peak_rss_mib"],
        })
        print(f"  interleaved medians: batched {b:.3f} s, per-class {p:.3f} s, batched/per-class {b / p:.2f}; "
              f"per-class peak RSS {other_memory['peak_rss_mib']} MiB")
    assert torch.isfinite(st.syn).all()
