"""The ``kd`` task's presets: one entry per tier and source (protocol §1.4, §4)."""

from __future__ import annotations

from typing import Any

from ddbench.interfaces import Preset
from ddbench_plugins.paper import PAPER_CONVNET_WIDTHS, PAPER_LEARNED_LABEL_STEPS, QUICK_CONVNET_WIDTHS, QUICK_SOURCE

from .options import PAPER_STUDENTS

#: protocol §1.4: teacher ResNet18 on CIFAR-10 at the source's resolution; 1000 KD epochs, batch
#: 512, AdamW 1e-4 (Gaussian 1e-3); pre-training as the transfer task's paper preset
_PAPER_COMMON: dict[str, Any] = {
    "students": PAPER_STUDENTS, "student_width": 1.0, "default_arch": "convnet", "default_norm": "bn",
    "pretrain_epochs": 1000, "pretrain_warmup": 500, "pretrain_batch": 0,
    "teacher_data": "cifar10", "teacher_arch": "resnet18", "teacher_width": 1.0, "teacher_epochs": 200,
    "teacher_batch": 128, "teacher_lr": 0.1, "teacher_wd": 5e-4, "teacher_val_fraction": 0.0,
    "kd_epochs": 1000, "kd_batch": 512, "kd_lr": 1e-4, "kd_lr_noise": 1e-3, "kd_wd": 0.0, "temperature": 1.0,
    "eval_mode": "eval", "eval_split": "test", "eval_batch": 512,
}
#: Table 4 is TinyImageNet (64 px); CIFAR-100 (32 px) is the Table 1 source, offered too
PAPER_KD_SOURCES = ("tinyimagenet", "cifar100")
PAPER_BY_SOURCE: dict[str, dict[str, Any]] = {
    source: {**_PAPER_COMMON, "default_arch_widths": PAPER_CONVNET_WIDTHS[source],
             "pretrain_steps": PAPER_LEARNED_LABEL_STEPS[source]}
    for source in PAPER_KD_SOURCES
}
#: the quick tier: sized on one CPU core, see SCALING["quick"] and README.md
QUICK_TEACHER_EPOCHS = 12
_QUICK: dict[str, Any] = {
    **_PAPER_COMMON, "student_width": 0.25, "default_arch_widths": QUICK_CONVNET_WIDTHS,
    "pretrain_epochs": 60, "pretrain_steps": 300, "pretrain_warmup": 30,
    "teacher_data": "cifar10_32", "teacher_width": 0.25, "teacher_epochs": QUICK_TEACHER_EPOCHS,
    "teacher_val_fraction": 0.1, "kd_epochs": 60,
}
_SMOKE: dict[str, Any] = {
    **_QUICK, "students": ["source", "resnet10"], "student_width": 0.125, "default_arch_widths": [8, 16],
    "pretrain_epochs": 2, "pretrain_steps": 4, "pretrain_warmup": 1,
    "teacher_width": 0.125, "teacher_epochs": 1, "kd_epochs": 2,
}

SCALING: dict[str, str] = {
    "paper": "unscaled: protocol §1.4 (teacher ResNet18 on CIFAR-10 at the source's resolution, trained by "
             "ddbench for 200 epochs; pre-training 1000 epochs / 10k-40k iterations; KD 1000 epochs, batch 512, "
             "AdamW 1e-4, Gaussian 1e-3; eval-mode top-1 on the CIFAR-10 test split)",
    "quick": "scaled for one CPU core: source tinyimagenet200_32_subset, teacher ResNet18 x0.25 trained 12 epochs "
             "on cifar10_32 (18,000 images; measured on one busy CPU core: 44-73 s/epoch, 628 s of training, 647 s "
             "with its accuracy, once, then cached), students x0.25 (source ConvNet 32-64-128 BN), pre-training "
             "60 epochs (learned labels 300 iterations), KD 60 epochs (paper 1000); one seed of random (5 "
             "students, teacher cached) measured at 369 s on one busy core: per student 17-29 s pre-training, "
             "33-46 s KD (0.55-0.8 s/epoch), ~10 s eval-mode accuracy on 10,000 test + 2,000 val images",
    "smoke": "smoke test: a teacher of 1 epoch, 2 pre-training and 2 KD epochs of tiny networks; not a result",
}

PRESETS: tuple[Preset, ...] = (
    Preset("smoke", _SMOKE, scaling=SCALING["smoke"]),
    Preset("quick", _QUICK, source=QUICK_SOURCE, scaling=SCALING["quick"]),
    *(Preset("paper", values, source=source, scaling=SCALING["paper"]) for source, values in PAPER_BY_SOURCE.items()),
)
