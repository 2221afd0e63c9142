"""Options of a pre-train-then-fine-tune evaluation, shared by the tasks built on
:mod:`ddbench.toolkit.transfer` (no torch here: a task's ``__init__`` imports it)."""

from __future__ import annotations

import dataclasses

from ddbench.errors import OptionError
from ddbench.options import Options, option

EVAL_SPLITS = ("test", "val")
FINE_GRAINED = ["aircraft", "cars", "cub", "dogs", "flowers"]


@dataclasses.dataclass
class PretrainOptions(Options):
    """The network pre-trained on a set (the set's backbone, or a default) and the lengths of
    its recipe: the options every task that pre-trains with :mod:`ddbench.toolkit.recipes`
    shares (``transfer``, ``arch_generalization``, ``kd``)."""

    arch: str = option("", "architecture to pre-train and fine-tune; empty = the distilled set's backbone "
                           "(provenance['arch']), else default_arch")
    arch_widths: list[int] = option([], "channels per block for ConvNet-family architectures; empty = the set's / "
                                        "the default's")
    norm: str = option("", "norm layer (bn, in, none) for architectures that take one; empty = the set's / default")
    width: float = option(0.0, "width multiplier; 0 = the set's (or 1.0)")
    default_arch: str = option("convnet", "backbone when the set names none and `arch` is empty (Random, Kmeans, "
                                          "no pre-training); equals KRR-ST's backbone for the same preset")
    default_arch_widths: list[int] = option([128, 256, 512], "ConvNet widths of default_arch")
    default_norm: str = option("bn", "norm layer of default_arch")
    pretrain_epochs: int = option(1000, "epochs of the epoch-based recipes (representation_mse, hard_ce_dsa)")
    pretrain_steps: int = option(10_000, "iterations of the iteration-based recipe (learned_mse_adamw; paper: 10k, "
                                         "40k for TinyImageNet)")
    pretrain_warmup: int = option(500, "warm-up iterations of learned_mse_adamw")
    pretrain_batch: int = option(0, "pre-training batch size; 0 = the recipe's (256, or 500 for learned_mse_adamw)")

    def validate(self) -> None:
        super().validate()
        for name in ("pretrain_epochs", "pretrain_steps"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_warmup", "pretrain_batch", "width"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)}")

    def recipe_lengths(self):
        """The lengths in the names :func:`ddbench.toolkit.recipes.pretrain` reads."""
        import types

        return types.SimpleNamespace(pretrain_epochs=self.pretrain_epochs, pretrain_steps=self.pretrain_steps,
                                     pretrain_warmup=self.pretrain_warmup, pretrain_batch=self.pretrain_batch)


@dataclasses.dataclass
class FinetuneOptions(PretrainOptions):
    """Options of a pre-train-then-fine-tune evaluation (defaults: the paper, source CIFAR-100);
    a task subclasses it and adds its own."""

    targets: list[str] = option(["cifar100", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
                                "target datasets to fine-tune on (registry names); each is resized to the source "
                                "resolution")
    finetune_steps: int = option(10_000, "fine-tuning iterations for general targets (CIFAR, TinyImageNet)")
    finetune_steps_fine_grained: int = option(5_000, "fine-tuning iterations for fine-grained targets "
                                                      "(names starting with one of `fine_grained`)")
    fine_grained: list[str] = option(FINE_GRAINED, "name prefixes of fine-grained targets")
    finetune_batch: int = option(256, "fine-tuning batch size (the reference code uses 128)")
    finetune_lr: float = option(0.01, "fine-tuning SGD learning rate (momentum 0.9, wd 5e-4, cosine to 0)")
    val_fraction: float = option(0.0, "fraction of each target's training split held out (seeded, class-balanced) "
                                      "as validation; 0 = train on all of it, as the paper")
    eval_split: str = option("test", "split the reported metrics come from: test, or val (for sizing presets; "
                                     "metrics are then named val/<target> and test is never touched)")
    eval_batch: int = option(500, "batch size of eval-mode prediction (does not change results)")

    def validate(self) -> None:
        super().validate()
        if not self.targets:
            raise OptionError("targets is empty: name at least one target dataset, e.g. targets=cifar10_32")
        if len(set(self.targets)) != len(self.targets):
            raise OptionError(f"targets {self.targets} repeat a name")
        if self.eval_split not in EVAL_SPLITS:
            raise OptionError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise OptionError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_split == "val" and self.val_fraction <= 0:
            raise OptionError("eval_split=val needs a validation split: set val_fraction > 0 (e.g. 0.1)")
        for name in ("finetune_steps", "finetune_steps_fine_grained", "finetune_batch", "eval_batch"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.finetune_lr > 0:
            raise OptionError(f"finetune_lr must be > 0, got {self.finetune_lr}")
