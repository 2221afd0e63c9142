"""Shared facts of the KRR-ST paper's setup (protocol.md §1.2): its source rows, each with
the resolution and the image budget of the paper's tables. Used by the built-in plugins'
``paper`` presets; a source not listed here has no ``paper`` preset (a clear error, never
a fallback to another row)."""

from __future__ import annotations

from ddbench.types import Budget

#: source (registry name) -> (resolution in pixels, budget of the paper's table)
PAPER_SOURCES: dict[str, tuple[int, Budget]] = {
    "cifar100": (32, Budget(images=1000, ipc=10)),
    "tinyimagenet": (64, Budget(images=2000, ipc=10)),
    "imagenet64": (64, Budget(images=1000, ipc=1)),
}

#: the quick tier's source (protocol §4) and its budget (m 200 = 1 image per class)
QUICK_SOURCE = "tinyimagenet200_32_subset"
QUICK_BUDGET = Budget(images=200, ipc=1)

#: source -> the paper's ConvNet widths at that source's resolution (the distillation pool's
#: backbone = the pre-training backbone, protocol §1.2); batch norm
PAPER_CONVNET_WIDTHS: dict[str, list[int]] = {
    "cifar100": [128, 256, 512],
    "tinyimagenet": [64, 128, 256, 512],
    "imagenet64": [64, 128, 256, 512],
}
#: source -> pre-training iterations of the learned-label recipe (reference test.py: 10k, 40k for TinyImageNet)
PAPER_LEARNED_LABEL_STEPS: dict[str, int] = {"cifar100": 10_000, "tinyimagenet": 40_000, "imagenet64": 10_000}
#: the quick tier's ConvNet (KRR-ST's quick pool, protocol §4)
QUICK_CONVNET_WIDTHS = [32, 64, 128]
