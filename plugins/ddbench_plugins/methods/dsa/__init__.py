"""DSA: dataset condensation by gradient matching with Differentiable Siamese Augmentation
(Zhao & Bilen, ICML 2021; protocol.md §2). See README.md.

This module must not import torch (``ddbench ls`` imports it); the run is in :mod:`.driver`
and the math of one outer iteration in :mod:`.step`, imported when a run starts (:class:`~ddbench_plugins.matching.MatchingMethod`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ddbench import hookimpl
from ddbench.errors import OptionError
from ddbench.interfaces import Preset
from ddbench.options import option
from ddbench_plugins.matching import MatchingMethod, MatchingOptions, matching_presets

DISTANCES = ("ours", "mse", "cos")


@dataclasses.dataclass
class DSAOptions(MatchingOptions):
    """DSA's options (defaults: the paper's CIFAR-10 setting, reference ``main.py``)."""

    lr_net: float = option(0.01, "SGD learning rate of the network's inner update on the synthetic set")
    outer_loop: int = option(0, "image updates per fresh network (0: the reference's table by IPC: 1->1, 10->10, "
                                "20->20, 30->30, 40->40, 50->50)")
    inner_loop: int = option(0, "network epochs on the synthetic set between image updates (0: the table: "
                                "1->1, 10->50, 20->25, 30->20, 40->15, 50->10)")
    batch_train: int = option(256, "batch size of the network's inner update")
    distance: str = option("ours", "gradient distance: ours (the paper's layer-wise distance), mse or cos")

    def validate(self) -> None:
        super().validate()
        if not self.lr_net > 0:
            raise OptionError(f"lr_net must be > 0, got {self.lr_net!r}")
        for name in ("outer_loop", "inner_loop"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if bool(self.outer_loop) != bool(self.inner_loop):
            raise OptionError("give outer_loop and inner_loop together (or neither, for the reference's table)")
        if self.batch_train < 1:
            raise OptionError(f"batch_train must be >= 1, got {self.batch_train!r}")
        if self.distance not in DISTANCES:
            raise OptionError(f"distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}")


#: the paper's hyperparameters (Zhao & Bilen 2021, §4 and the reference main.py defaults)
_PAPER: dict[str, Any] = {"iterations": 1000, "lr_img": 0.1, "momentum": 0.5, "lr_net": 0.01, "batch_real": 256,
                          "batch_train": 256, "init": "real", "arch_norm": "in", "distance": "ours",
                          "dsa_strategy": "color_crop_cutout_flip_scale_rotate", "dsa_mode": "S",
                          "checkpoint_every": 20, "log_every": 1}
QUICK_SCALING = (
    "scaled from the paper (1000 iterations, ConvNet-128x3 IN, real batch 256 per class): 100 iterations, "
    "ConvNet 32-64-128 (IN), real batch 16 per class; m 200 (IPC 1: outer/inner loops 1/1) on "
    "tinyimagenet200_32_subset at 32 px; measured 3.7 s per iteration on 2 idle CPU cores"
)
QUICK_CIFAR10_SCALING = (
    "the paper's CIFAR-10 IPC 10 shapes (ConvNet-128x3 IN, loops 10/50: 10 image updates and 450 network epochs "
    "per iteration) for 2 iterations (paper 1000), real batch 64 per class (paper 256), on the cifar10_32 sample: "
    "a check that the method runs and does not hurt at the paper's shapes, not a measure of its strength "
    "(one iteration takes ~4-5 min on one CPU core)"
)
_QUICK: dict[str, Any] = {**_PAPER, "iterations": 100, "batch_real": 16, "arch_widths": (32, 64, 128),
                          "resolution": 32, "checkpoint_every": 10, "log_every": 5}
_QUICK_C10: dict[str, Any] = {**_PAPER, "iterations": 2, "batch_real": 64, "arch_widths": (128, 128, 128),
                              "resolution": 32, "checkpoint_every": 1, "log_every": 1}
_SMOKE: dict[str, Any] = {"iterations": 2, "batch_real": 4, "arch_widths": (8, 8), "outer_loop": 2, "inner_loop": 1,
                          "checkpoint_every": 1, "log_every": 1}

PRESETS: tuple[Preset, ...] = matching_presets(
    "DSA", paper=_PAPER, quick=_QUICK, quick_scaling=QUICK_SCALING, quick_cifar10=_QUICK_C10,
    quick_cifar10_scaling=QUICK_CIFAR10_SCALING, smoke=_SMOKE,
    smoke_scaling="smoke test: 2 iterations of a tiny network; not a result")


class DSAMethod(MatchingMethod):
    """Gradient matching with Differentiable Siamese Augmentation (protocol.md §2)."""

    name = "dsa"
    description = "DSA (Zhao & Bilen, ICML 2021): per-class gradient matching under a shared differentiable augmentation"
    Options = DSAOptions
    version = "1"
    presets: ClassVar[tuple[Preset, ...]] = PRESETS


@hookimpl
def ddbench_register_methods(register):
    register(DSAMethod())
