"""The ``scratch`` task's presets: one entry per tier and source."""

from __future__ import annotations

from typing import Any

from ddbench.interfaces import Preset

#: the DC/DSA/DM evaluation (VICO-UoE/DatasetCondensation, utils.py `evaluate_synset`,
#: main_DM.py defaults): ConvNet width 128, instance norm, 1000 epochs
_PAPER: dict[str, Any] = {
    "arch": "convnet", "arch_widths": [128, 128, 128], "norm": "in", "width": 1.0,
    "epochs": 1000, "steps": 10_000, "warmup": 500, "batch": 0, "eval_split": "test",
}
#: the papers' ConvNet depth by source: depth 3 at 32 px, depth 4 (ConvNetD4) for Tiny-ImageNet at 64 px
PAPER_WIDTHS: dict[str, list[int]] = {
    "cifar10": [128, 128, 128],
    "cifar100": [128, 128, 128],
    "tinyimagenet": [128, 128, 128, 128],
}
#: the quick tier: the paper's network and recipe, 300 epochs, on 2 CPU cores (see SCALING["quick"])
_QUICK: dict[str, Any] = {**_PAPER, "epochs": 300, "steps": 1_000, "warmup": 50}
#: the quick tier's sources: the CIFAR-10 sample, and the source every built-in method's quick preset uses
QUICK_SOURCES = ("cifar10_32", "tinyimagenet200_32_subset")
_SMOKE: dict[str, Any] = {**_PAPER, "arch_widths": [8, 8], "epochs": 2, "steps": 4, "warmup": 1}

SCALING: dict[str, str] = {
    "paper": "unscaled: the DC/DSA/DM evaluation (ConvNet-128 with instance norm, depth 3; depth 4 for "
             "Tiny-ImageNet at 64 px; 1000 epochs of the set's recipe; one network per seed, where the reference "
             "code averages 20 per set)",
    "quick": "scaled for 2 CPU cores: the paper's network (ConvNet 128-128-128, instance norm) and recipe, 300 "
             "epochs instead of 1000 (learned labels: 1k iterations, 50 warm-up, instead of 10k/500), on the 32-px "
             "samples; one network per seed; measured on 2 CPU cores while other jobs shared them: one evaluation "
             "of a 100-image set (cifar10_32, IPC 10) takes 4.8-5.6 min (300 epochs at 0.86-1.0 s each, then ~30 s "
             "of eval-mode accuracy on 10,000 test + 2,000 val images); a 200-image set (tinyimagenet200_32_subset, "
             "IPC 1) about twice the training time (estimated)",
    "smoke": "smoke test: 2 epochs of a ConvNet 8-8; not a result",
}

PRESETS: tuple[Preset, ...] = (
    Preset("smoke", _SMOKE, scaling=SCALING["smoke"]),
    *(Preset("quick", _QUICK, source=source, scaling=SCALING["quick"]) for source in QUICK_SOURCES),
    *(Preset("paper", {**_PAPER, "arch_widths": widths}, source=source, scaling=SCALING["paper"])
      for source, widths in PAPER_WIDTHS.items()),
)
