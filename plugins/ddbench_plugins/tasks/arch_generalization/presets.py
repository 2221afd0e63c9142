"""The ``arch_generalization`` task's presets: one entry per tier and source (protocol §1.3-1.4, §4)."""

from __future__ import annotations

from typing import Any

from ddbench.interfaces import Preset
from ddbench_plugins.paper import (PAPER_CONVNET_WIDTHS, PAPER_LEARNED_LABEL_STEPS, PAPER_SOURCES,
                                   QUICK_CONVNET_WIDTHS, QUICK_SOURCE)

from .options import FIG3_TARGETS, PAPER_ARCHS, SOURCE_NET

#: the reference code's test.py with --test_model vgg|alexnet|mobilenet|resnet10 (Fig. 3): the
#: transfer protocol's recipes, on the five fine-grained targets
_PAPER_COMMON: dict[str, Any] = {
    "targets": FIG3_TARGETS, "archs": PAPER_ARCHS, "arch_width": 1.0,
    "default_arch": "convnet", "default_norm": "bn", "pretrain_epochs": 1000, "pretrain_warmup": 500,
    "pretrain_batch": 0, "finetune_steps": 10_000, "finetune_steps_fine_grained": 5_000, "finetune_batch": 256,
    "finetune_lr": 0.01, "val_fraction": 0.0, "eval_split": "test",
}
#: the quick tier: the transfer quick tier's source net and recipe, the fine-grained sample targets,
#: the other architectures at a quarter of their width, shorter pre-training and fine-tuning
_QUICK: dict[str, Any] = {
    "targets": ["cub100_32", "flowers12_32"], "archs": PAPER_ARCHS, "arch_width": 0.25,
    "default_arch": "convnet", "default_arch_widths": QUICK_CONVNET_WIDTHS, "default_norm": "bn",
    "pretrain_epochs": 150, "pretrain_steps": 500, "pretrain_warmup": 25, "pretrain_batch": 0,
    "finetune_steps": 150, "finetune_steps_fine_grained": 150, "finetune_batch": 128, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}
_SMOKE: dict[str, Any] = {
    "targets": ["flowers12_32"], "archs": [SOURCE_NET, "alexnet"], "arch_width": 0.125,
    "default_arch": "convnet", "default_arch_widths": [8, 16], "default_norm": "bn",
    "pretrain_epochs": 2, "pretrain_steps": 4, "pretrain_warmup": 1, "pretrain_batch": 0,
    "finetune_steps": 3, "finetune_steps_fine_grained": 3, "finetune_batch": 32, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}

#: how each preset departs from the paper; written into every record
SCALING: dict[str, str] = {
    "paper": "unscaled: the reference code's architecture-generalization runs (Fig. 3): every architecture "
             "at full width pre-trained on the set with its recipe (1000 epochs / 10k-40k iterations) and "
             "fine-tuned 5k iterations at batch 256 on each fine-grained target",
    "quick": "scaled for 2 CPU cores (protocol §4): source tinyimagenet200_32_subset at 32 px, the fine-grained "
             "sample targets cub100_32 and flowers12_32, the source net ConvNet 32-64-128 (BN, as the transfer "
             "quick tier), VGG11/AlexNet/MobileNet/ResNet10 at width x0.25, pre-train 150 epochs (paper 1000; "
             "learned labels 500 iterations), fine-tune 150 iterations at batch 128 (paper 5k at 256), 10% of each "
             "target's training split held out as validation; measured: one seed 8.9 min on one loaded core (all five "
             "architectures, both targets)",
    "smoke": "smoke test: a handful of steps on tiny networks; not a result",
}

PRESETS: tuple[Preset, ...] = (
    Preset("smoke", _SMOKE, scaling=SCALING["smoke"]),
    Preset("quick", _QUICK, source=QUICK_SOURCE, scaling=SCALING["quick"]),
    *(Preset("paper", {**_PAPER_COMMON, "default_arch_widths": PAPER_CONVNET_WIDTHS[source],
                       "pretrain_steps": PAPER_LEARNED_LABEL_STEPS[source]}, source=source, scaling=SCALING["paper"])
      for source in PAPER_SOURCES),
)
