"""DM: dataset condensation with distribution matching (Zhao & Bilen, WACV 2023;
protocol.md §2). See README.md.

This module must not import torch (``ddbench ls`` imports it); the run is in :mod:`.driver`
and the math of one iteration in :mod:`.step`, imported when a run starts (:class:`~ddbench_plugins.matching.MatchingMethod`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ddbench import hookimpl
from ddbench.interfaces import Preset
from ddbench.options import option
from ddbench_plugins.matching import MatchingMethod, MatchingOptions, matching_presets


@dataclasses.dataclass
class DMOptions(MatchingOptions):
    """DM's options (defaults: the paper's setting, reference ``main_DM.py``)."""

    iterations: int = option(20_000, "iterations (a fresh random network each)")
    lr_img: float = option(1.0, "SGD learning rate of the synthetic images")
    batched: bool = option(True, "embed all classes in one forward pass (the reference loops over classes for "
                                 "instance-norm networks; equal to float rounding)")


#: the paper's hyperparameters (Zhao & Bilen 2023, §4 and the reference main_DM.py defaults)
_PAPER: dict[str, Any] = {"iterations": 20_000, "lr_img": 1.0, "momentum": 0.5, "batch_real": 256, "init": "real",
                          "arch_norm": "in", "dsa_strategy": "color_crop_cutout_flip_scale_rotate", "dsa_mode": "S",
                          "checkpoint_every": 500, "log_every": 50}
QUICK_SCALING = (
    "scaled from the paper (20,000 iterations, ConvNet-128x3 IN, real batch 256 per class): 300 iterations, "
    "ConvNet 32-64-128 (IN), real batch 16 per class; m 200 (IPC 1) on tinyimagenet200_32_subset at 32 px; "
    "classes embedded one at a time (batched=false: on this CPU the one-pass batch is 2.4x slower at these shapes, "
    "benchmarks/test_bench_matching.py); ~1.0-1.5 s per iteration on one idle CPU core"
)
QUICK_CIFAR10_SCALING = (
    "the paper's CIFAR-10 IPC 10 row in miniature: ConvNet-128x3 (IN), real batch 256 per class, 100 iterations "
    "(paper 20,000), on the cifar10_32 sample (2,000 training images per class)"
)
_QUICK: dict[str, Any] = {**_PAPER, "iterations": 300, "batch_real": 16, "arch_widths": (32, 64, 128), "batched": False,
                          "resolution": 32, "checkpoint_every": 100, "log_every": 20}
_QUICK_C10: dict[str, Any] = {**_PAPER, "iterations": 100, "arch_widths": (128, 128, 128), "resolution": 32,
                              "checkpoint_every": 50, "log_every": 10}
_SMOKE: dict[str, Any] = {"iterations": 3, "batch_real": 4, "arch_widths": (8, 8), "checkpoint_every": 1,
                          "log_every": 1}

PRESETS: tuple[Preset, ...] = matching_presets(
    "DM", paper=_PAPER, quick=_QUICK, quick_scaling=QUICK_SCALING, quick_cifar10=_QUICK_C10,
    quick_cifar10_scaling=QUICK_CIFAR10_SCALING, smoke=_SMOKE,
    smoke_scaling="smoke test: 3 iterations of a tiny network; not a result")


class DMMethod(MatchingMethod):
    """Distribution matching of mean embeddings under DSA (protocol.md §2)."""

    name = "dm"
    description = "DM (Zhao & Bilen, WACV 2023): per-class mean-embedding matching through fresh random networks"
    Options = DMOptions
    version = "1"
    presets: ClassVar[tuple[Preset, ...]] = PRESETS


@hookimpl
def ddbench_register_methods(register):
    register(DMMethod())
