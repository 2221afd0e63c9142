"""The ``transfer`` task's presets: one entry per tier and source (protocol §1.4, §4)."""

from __future__ import annotations

from typing import Any

from ddbench.interfaces import Preset
from ddbench_plugins.paper import (PAPER_CONVNET_WIDTHS, PAPER_LEARNED_LABEL_STEPS, PAPER_SOURCES,
                                   QUICK_CONVNET_WIDTHS, QUICK_SOURCE)

#: protocol §1.4 / the reference test.py, by source (targets, backbone, learned-label iterations)
_TARGETS: dict[str, list[str]] = {
    "cifar100": ["cifar100", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
    "tinyimagenet": ["tinyimagenet", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
    "imagenet64": ["cifar10", "cifar100", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
}
PAPER_BY_SOURCE: dict[str, dict[str, Any]] = {
    source: {"targets": targets, "default_arch_widths": PAPER_CONVNET_WIDTHS[source],
             "pretrain_steps": PAPER_LEARNED_LABEL_STEPS[source]}
    for source, targets in _TARGETS.items()
}
_PAPER_COMMON: dict[str, Any] = {
    "default_arch": "convnet", "default_norm": "bn", "pretrain_epochs": 1000, "pretrain_warmup": 500,
    "pretrain_batch": 0, "finetune_steps": 10_000, "finetune_steps_fine_grained": 5_000, "finetune_batch": 256,
    "finetune_lr": 0.01, "val_fraction": 0.0, "eval_split": "test",
}
#: the quick tier (protocol §4): sized on 2 CPU cores, see SCALING["quick"] and README.md
_QUICK: dict[str, Any] = {
    "targets": ["cifar10_32", "cub100_32", "flowers12_32"],
    "default_arch": "convnet", "default_arch_widths": QUICK_CONVNET_WIDTHS, "default_norm": "bn",
    "pretrain_epochs": 300, "pretrain_steps": 1_000, "pretrain_warmup": 50, "pretrain_batch": 0,
    "finetune_steps": 300, "finetune_steps_fine_grained": 300, "finetune_batch": 128, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}
_SMOKE: dict[str, Any] = {
    "targets": ["flowers12_32"],
    "default_arch": "convnet", "default_arch_widths": [8, 16], "default_norm": "bn",
    "pretrain_epochs": 2, "pretrain_steps": 4, "pretrain_warmup": 1, "pretrain_batch": 0,
    "finetune_steps": 4, "finetune_steps_fine_grained": 4, "finetune_batch": 32, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}

#: how each preset departs from the paper; written into every record
SCALING: dict[str, str] = {
    "paper": "unscaled: protocol §1.4 (pre-train 1000 epochs / 10k-40k iterations; fine-tune 10k iterations "
             "general, 5k fine-grained, batch 256; full target training splits)",
    "quick": "scaled for 2 CPU cores (protocol §4): source tinyimagenet200_32_subset at 32 px, targets "
             "cifar10_32/cub100_32/flowers12_32, ConvNet 32-64-128 (BN; KRR-ST's quick pool), pre-train 300 "
             "epochs (paper 1000; learned labels 1k iterations, 50 warm-up), fine-tune 300 iterations at batch "
             "128 for every target (paper 10k/5k at 256), 10% of each target's training split held out as "
             "validation; measured on 2 CPU cores: ~30 s pre-training + ~15-20 s per target per seed (3-7x more while "
             "other jobs share the cores)",
    "smoke": "smoke test: a handful of steps on tiny networks; not a result",
}


PRESETS: tuple[Preset, ...] = (
    Preset("smoke", _SMOKE, scaling=SCALING["smoke"]),
    Preset("quick", _QUICK, source=QUICK_SOURCE, scaling=SCALING["quick"]),
    *(Preset("paper", {**_PAPER_COMMON, **PAPER_BY_SOURCE[source]}, source=source, scaling=SCALING["paper"])
      for source in PAPER_SOURCES),
)
