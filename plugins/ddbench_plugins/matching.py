"""What the matching-based distillers (``dsa``, ``dm``) declare alike: the options of the
synthetic set, its distillation network and its augmentation, and the sources and budgets
of their ``paper`` presets. A shared declaration module, not a method: each method imports
it, never the other method (their torch side shares :mod:`ddbench.toolkit.matching`).

This module must not import torch (``ddbench ls`` imports it)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar, Mapping

from ddbench.errors import OptionError
from ddbench.interfaces import Method, Preset
from ddbench.options import Options, option
from ddbench.types import Budget
from ddbench_plugins.paper import PAPER_SOURCES, QUICK_BUDGET, QUICK_SOURCE

#: the protocol's DSA strategy (protocol.md §1.4)
STRATEGY = "color_crop_cutout_flip_scale_rotate"
INITS = ("real", "noise")

#: the DC family's own CIFAR-10 rows: ConvNet-128 x 3 with instance norm at 32 px
CIFAR10_IPCS = (1, 10, 50)
#: the distillation network at the KRR-ST paper's sources: ConvNet-128 of depth 3 at 32 px
#: (the DC papers' CIFAR network), depth 4 at 64 px (the DM paper's Tiny-ImageNet network)
PAPER_NETWORK: dict[str, dict[str, Any]] = {
    "cifar100": {"arch_widths": (128, 128, 128), "resolution": 32},
    "tinyimagenet": {"arch_widths": (128, 128, 128, 128), "resolution": 64},
    "imagenet64": {"arch_widths": (128, 128, 128, 128), "resolution": 64},
    "cifar10": {"arch_widths": (128, 128, 128), "resolution": 32},
}
#: the CIFAR-10 sample the quick tier's sanity rows use (README: the papers' own setting in miniature)
CIFAR10_SAMPLE = "cifar10_32"
CIFAR10_SAMPLE_BUDGET = Budget(images=100, ipc=10)


@dataclasses.dataclass
class MatchingOptions(Options):
    """The synthetic set, the fresh random network it is matched through, the real batches
    and the augmentation. The budget is the run's (``--ipc``; the same count for every class)."""

    iterations: int = option(1000, "outer iterations (a fresh random network each)")
    lr_img: float = option(0.1, "SGD learning rate of the synthetic images")
    momentum: float = option(0.5, "SGD momentum of the synthetic images")
    batch_real: int = option(256, "real images per class per matching step (capped at the smallest class)")
    init: str = option("real", "initial synthetic images: real (random real images of each class) or noise "
                               "(standard normal in the normalised space)")
    dsa_strategy: str = option(STRATEGY, "DSA families joined by '_' (color, crop, cutout, flip, scale, rotate), "
                                         "or none")
    dsa_mode: str = option("S", "S: one family per augmentation (the papers); M: all families in turn")
    arch_widths: tuple[int, ...] = option((128, 128, 128), "channels of the distillation ConvNet's blocks "
                                                          "(conv3x3-norm-ReLU-avgpool2 each)")
    arch_norm: str = option("in", "norm layer of the distillation ConvNet: in (instance norm, the papers), bn or "
                                  "none")
    resolution: int | None = option(None, "source resolution in pixels (None: the dataset's native one)")
    log_every: int = option(10, "iterations between loss checks (NaN/inf), progress updates and host syncs")
    checkpoint_every: int = option(100, "iterations between resumable checkpoints (0 = none)")

    def validate(self) -> None:
        super().validate()
        for name in ("batch_real", "log_every"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("iterations", "checkpoint_every", "momentum"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.lr_img > 0:
            raise OptionError(f"lr_img must be > 0, got {self.lr_img!r}")
        if self.init not in INITS:
            raise OptionError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.dsa_mode not in ("S", "M"):
            raise OptionError(f"dsa_mode must be S (one family per augmentation) or M (all), got {self.dsa_mode!r}")
        check_strategy(self.dsa_strategy)
        if str(self.arch_norm).lower() not in ("bn", "in", "none"):
            raise OptionError(f"arch_norm must be one of bn, in, none, got {self.arch_norm!r}")
        if not self.arch_widths or min(self.arch_widths) < 1:
            raise OptionError(f"arch_widths must list positive channel counts, got {self.arch_widths!r}")
        if self.resolution is not None and self.resolution < 2 ** len(self.arch_widths):
            raise OptionError(f"resolution {self.resolution} is too small for {len(self.arch_widths)} pooling blocks")


#: DSA's augmentation families, as :class:`ddbench.toolkit.augment.DSA` names them
#: (tests/test_matching.py checks the two lists agree)
FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


def check_strategy(strategy: str) -> None:
    """A clear error for a DSA strategy with an unknown family."""
    if str(strategy).lower() in ("", "none"):
        return
    unknown = [f for f in str(strategy).split("_") if f not in FAMILIES]
    if unknown:
        raise OptionError(f"dsa_strategy {strategy!r}: unknown augmentation famil{'y' if len(unknown) == 1 else 'ies'} "
                          f"{', '.join(map(repr, unknown))}; join families from {', '.join(FAMILIES)} with '_', "
                          f"e.g. {STRATEGY}, or give none")


def matching_presets(title: str, *, paper: dict[str, Any], quick: dict[str, Any], quick_scaling: str,
                     quick_cifar10: dict[str, Any], quick_cifar10_scaling: str, smoke: dict[str, Any],
                     smoke_scaling: str) -> tuple[Preset, ...]:
    """A matching method's presets: ``smoke`` (any budget); ``quick`` on the transfer
    leaderboard's sample at its budget and on the CIFAR-10 sample at IPC 10; ``paper`` with the
    method's ``paper`` values at the KRR-ST paper's budgets (:data:`PAPER_NETWORK` per source)
    and at the method's own CIFAR-10 rows (IPC 1/10/50)."""
    return (
        Preset("smoke", smoke, budget=Budget(images=8), any_budget=True, scaling=smoke_scaling),
        Preset("quick", quick, source=QUICK_SOURCE, budget=QUICK_BUDGET, scaling=quick_scaling),
        Preset("quick", quick_cifar10, source=CIFAR10_SAMPLE, budget=CIFAR10_SAMPLE_BUDGET,
               scaling=quick_cifar10_scaling),
        *(Preset("paper", {**paper, **PAPER_NETWORK[source]}, source=source, budget=PAPER_SOURCES[source][1],
                 scaling=f"the paper's hyperparameters at the KRR-ST paper's budget for {source} "
                         f"(distillation network ConvNet-128 x {len(PAPER_NETWORK[source]['arch_widths'])}, IN)")
          for source in PAPER_SOURCES),
        Preset("paper", {**paper, **PAPER_NETWORK["cifar10"]}, source="cifar10", budget=Budget(images=100, ipc=10),
               budgets=tuple(Budget(images=10 * k, ipc=k) for k in CIFAR10_IPCS if k != 10),
               scaling=f"unscaled: the {title} paper's CIFAR-10 rows (IPC 1/10/50, ConvNet-128x3 IN)"),
    )


class MatchingMethod(Method):
    """What ``dsa`` and ``dm`` declare alike: a class-balanced learned set with hard labels,
    pre-trained with ``hard_ce_dsa``. The run is ``distill(ctx, source, options, method_name=,
    scaling=)`` in the ``driver`` module of the subclass's package, imported only when a run
    starts (so that listing plugins never imports torch)."""

    label_kind = "hard"
    recipes = ("hard_ce_dsa",)
    Options = MatchingOptions
    default_sources: ClassVar[Mapping[str, str]] = {"quick": QUICK_SOURCE, "paper": "cifar100"}

    def source_resolution(self, options: MatchingOptions) -> int | None:
        return options.resolution

    def distill(self, ctx, source, options):
        entry = self.find_preset(ctx.preset, source.name, ctx.budget) if ctx.preset else None
        driver = importlib.import_module(f"{type(self).__module__}.driver")
        return driver.distill(ctx, source, options, method_name=self.name,
                              scaling=entry.scaling if entry is not None else None)
