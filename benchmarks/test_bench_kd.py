"""Benchmark of one KD epoch of the ``kd`` task (student + teacher over the whole set), on CPU.

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_bench_kd.py --benchmark-only -q -s

Shapes (``SHAPES``): ``quick`` = 200 images at 32 px, ConvNet 32-64-128 (BN) student,
ResNet18 x0.25 teacher (the quick preset); ``paper-tinyimagenet`` = 2000 images at 64 px,
ConvNet 64-128-256-512 (BN) student, full ResNet18 teacher (Table 4), one round. One epoch =
one shuffled pass in batches of 512: per batch DSA, the teacher's forward in train mode
without gradients, the student's forward and backward, an AdamW step -- the task's own
``kd_forward`` and the toolkit's ``train_step``. Images are random tensors and the networks
keep their random initialisation: the cost depends on neither.

``extra_info`` is test_bench_matching.py's: FLOPs counted by ``FlopCounterMode`` on one
full batch (the warm-up) and scaled to the epoch, achieved GFLOP/s from the median round, its fraction of the machine's fp32
matmul throughput, CPU times, load, peak RSS. ``DDBENCH_BENCH_THREADS`` sets torch's threads.
"""

from __future__ import annotations

import dataclasses
import os
import statistics

import pytest
import torch

from ddbench import plugins
from ddbench.toolkit.augment import DSA
from ddbench.toolkit.train import train_step
from ddbench_plugins.tasks.kd.distill import kd_forward
from test_bench_krrst import DEVICE
from test_bench_matching import Timed, count_flops, matmul_peak, threads  # noqa: F401 (fixtures)


@dataclasses.dataclass(frozen=True)
class Shape:
    images: int
    res: int
    student_widths: tuple[int, ...]
    teacher_width: float
    rounds: int
    batch: int = 512


SHAPES = {
    "quick": Shape(images=200, res=32, student_widths=(32, 64, 128), teacher_width=0.25, rounds=3),
    "paper-tinyimagenet": Shape(images=2000, res=64, student_widths=(64, 128, 256, 512), teacher_width=1.0,
                                rounds=1),
}

pytestmark = pytest.mark.skipif(DEVICE != "cpu", reason="the KD benchmark runs on CPU only")


def make_epoch(s: Shape):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        student = plugins.registry("architecture").get("convnet").build(
            (3, s.res, s.res), 10, widths=list(s.student_widths), norm="bn").train()
        teacher = plugins.registry("architecture").get("resnet18").build(
            (3, s.res, s.res), 10, width=s.teacher_width).train().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(s.images, 3, s.res, s.res, generator=g)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.0)
    dsa, aug_g, order_g = DSA(), torch.Generator().manual_seed(2), torch.Generator().manual_seed(3)
    forward = kd_forward(student, teacher, [1.0] * 3, [0.0] * 3, 1.0, lambda xb: dsa(xb, aug_g))

    def epoch() -> None:
        for idx in torch.randperm(s.images, generator=order_g).split(s.batch):
            train_step(opt, forward(x[idx]))

    def one_batch() -> None:
        train_step(opt, forward(x[: min(s.batch, s.images)]))

    return epoch, one_batch, student, teacher


@pytest.mark.parametrize("name", list(SHAPES))
def test_bench_kd_epoch(benchmark, matmul_peak, name):  # noqa: F811 (fixture)
    s = SHAPES[name]
    epoch, one_batch, student, teacher = make_epoch(s)
    # counted on one full batch (also the warm-up) and scaled to the epoch: convolutions and
    # matmuls are linear in the batch, and a counted paper-shape epoch would take minutes on CPU
    flops, by_op, memory = count_flops(one_batch)
    per = s.images / min(s.batch, s.images)
    flops, by_op = flops * per, {k: v * per for k, v in by_op.items()}
    timed = Timed(epoch)
    load = os.getloadavg()[0]
    benchmark.pedantic(timed, rounds=s.rounds, iterations=1, warmup_rounds=0)
    median = statistics.median(timed.seconds)
    achieved = flops / median / 1e9
    benchmark.extra_info.update({
        "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "loadavg_1m_before": round(load, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "shape": {"name": name, **dataclasses.asdict(s),
                  "student_params": sum(p.numel() for p in student.parameters()),
                  "teacher_params": sum(p.numel() for p in teacher.parameters())},
        "epoch_s_median": round(median, 4), "epoch_s_rounds": [round(v, 4) for v in timed.seconds], **timed.cpu(),
        "epoch_gflop": round(flops / 1e9, 2), "epoch_gflop_by_op": {k: round(v / 1e9, 2) for k, v in by_op.items()},
        "achieved_gflops": round(achieved, 1), "matmul_gflops": round(matmul_peak, 1),
        "fraction_of_matmul_peak": round(achieved / matmul_peak, 3), **memory,
    })
    i = benchmark.extra_info
    print(f"\n[kd epoch {name}] threads {i['threads']}, load {i['loadavg_1m_before']}->{i['loadavg_1m_after']}: "
          f"{i['epoch_s_median']} s/epoch (rounds {i['epoch_s_rounds']}), {i['epoch_gflop']} GFLOP = "
          f"{i['achieved_gflops']} GFLOP/s = {i['fraction_of_matmul_peak']:.1%} of {i['matmul_gflops']} GFLOP/s; "
          f"peak RSS {i['peak_rss_mib']} MiB")
