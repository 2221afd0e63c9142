"""Options of the ``scratch`` task (defaults: the DC/DSA/DM evaluation on CIFAR-10)."""

from __future__ import annotations

import dataclasses

from ddbench.errors import OptionError
from ddbench.options import Options, option

EVAL_SPLITS = ("test", "val")


@dataclasses.dataclass
class ScratchOptions(Options):
    """Options of the scratch task (defaults: ConvNet-128 x3 with instance norm, 1000 epochs)."""

    arch: str = option("convnet", "architecture trained from scratch on the set (`ddbench ls architectures`)")
    arch_widths: list[int] = option([128, 128, 128], "channels per block (ConvNet family): 128,128,128 is the DC "
                                                     "papers' ConvNet-128 of depth 3; empty = the architecture's "
                                                     "default (and not passed, for architectures without widths)")
    norm: str = option("in", "norm layer (bn, in, none) for architectures that take one; in = instance norm, as "
                             "the DC papers evaluate; empty = the architecture's default (not passed)")
    width: float = option(1.0, "width multiplier of the architecture")
    epochs: int = option(1000, "training epochs of the epoch-based recipes (hard_ce_dsa: lr x0.1 at half)")
    steps: int = option(10_000, "training iterations of the iteration-based recipe (learned_mse_adamw, learned "
                                "labels: KIP, FRePo)")
    warmup: int = option(500, "warm-up iterations of learned_mse_adamw")
    batch: int = option(0, "training batch size; 0 = the recipe's (256, or 500 for learned_mse_adamw)")
    eval_split: str = option("test", "split the metric comes from: test (the source's test split), or val (the "
                                     "source's seeded class-balanced validation split, carved from its training "
                                     "data; for sizing and tuning; the metric is then val/accuracy and test is "
                                     "never read)")
    eval_batch: int = option(500, "batch size of eval-mode prediction (does not change results)")

    def validate(self) -> None:
        super().validate()
        if not self.arch:
            raise OptionError("arch is empty: name an architecture, e.g. arch=convnet (`ddbench ls architectures`)")
        if self.eval_split not in EVAL_SPLITS:
            raise OptionError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        for name in ("epochs", "steps", "eval_batch"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "batch"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.width > 0:
            raise OptionError(f"width must be > 0, got {self.width}")
        if any(c < 1 for c in self.arch_widths):
            raise OptionError(f"arch_widths must be positive channel counts, got {self.arch_widths}")

    def arch_kwargs(self) -> dict:
        """The keyword arguments the architecture is built with (empty options are not passed)."""
        out: dict = {}
        if self.arch_widths:
            out["widths"] = [int(c) for c in self.arch_widths]
        if self.norm:
            out["norm"] = self.norm
        return out

    def recipe_lengths(self):
        """The lengths in the names :func:`ddbench.toolkit.recipes.pretrain` reads."""
        import types

        return types.SimpleNamespace(pretrain_epochs=self.epochs, pretrain_steps=self.steps,
                                     pretrain_warmup=self.warmup, pretrain_batch=self.batch)
