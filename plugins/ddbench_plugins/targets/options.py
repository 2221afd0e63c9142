"""The target model's options (``target_*``), inherited by every method that uses one, and
their presets. Measurements behind the presets: README.md."""

from __future__ import annotations

import dataclasses
from typing import Any

from ddbench.errors import OptionError
from ddbench.options import Options, option

OPTIMIZERS = ("adamw", "lars")
#: how the target backbone is trained: ``barlow_twins`` (the paper; unlabeled) or
#: ``supervised`` (a diagnostic oracle: cross-entropy on the source's labels, crop + flip;
#: it answers "what would KRR-ST do with a class-discriminative target?" and is not KRR-ST)
OBJECTIVES = ("barlow_twins", "supervised")


@dataclasses.dataclass
class TargetOptions(Options):
    """Options of the target model; a method's options class inherits them.

    Example::

        @dataclasses.dataclass
        class KmeansOptions(TargetOptions):
            kmeans_iters: int = option(100, "Lloyd iterations")

        opts = KmeansOptions.resolve(TARGET_PRESETS["quick"], {"kmeans_iters": 50})
        model = get_target_model(ctx, source, opts)   # trained once, then from the cache
    """

    target_objective: str = option("barlow_twins", "barlow_twins (the paper: unlabeled source) or supervised "
                                   "(diagnostic oracle: cross-entropy on the source's labels; not KRR-ST)")
    target_arch: str = option("resnet18", "architecture of the self-supervised target model")
    target_width: float = option(1.0, "width multiplier of the target model")
    target_stem_padding: int = option(1, "padding of the 3x3 stem conv (1 keeps the size; 2 = the reference code)")
    target_epochs: int = option(1000, "Barlow Twins training epochs on the unlabeled source")
    target_batch: int = option(256, "Barlow Twins batch size (images; each gives two views)")
    target_optimizer: str = option("lars", "lars (SGD momentum 0.9 with LARS, the CIFAR recipe) or adamw")
    target_lr: float = option(0.3, "peak learning rate, reached after the warm-up; cosine decay to 0")
    target_wd: float = option(1e-4, "weight decay (biases and norm parameters are exempt)")
    target_warmup_epochs: float = option(10.0, "linear learning-rate warm-up, in epochs")
    target_proj_dim: int = option(8192, "projector width (all three layers; the paper: 8192 at width 1)")
    target_lambda: float = option(0.0051, "weight of the off-diagonal (redundancy-reduction) term")
    target_loss_scale: float = option(0.1, "factor on the loss (solo-learn's scale_loss)")
    target_max_images: int = option(0, "train on a seeded subset of this many source training images (0 = all)")
    target_probe_epochs: int = option(100, "full-batch L-BFGS iterations of the linear probe (quality only)")
    target_seed: int = option(0, "seed of the target's training; fixed so that every run seed shares one target")

    def validate(self) -> None:
        super().validate()
        if self.target_objective not in OBJECTIVES:
            raise OptionError(f"target_objective must be one of {', '.join(OBJECTIVES)}, "
                              f"got {self.target_objective!r}")
        if self.target_optimizer not in OPTIMIZERS:
            raise OptionError(f"target_optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.target_optimizer!r}")
        for name in ("target_width", "target_lr", "target_proj_dim", "target_batch"):
            if not getattr(self, name) > 0:
                raise OptionError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("target_epochs", "target_wd", "target_warmup_epochs", "target_lambda", "target_max_images",
                     "target_probe_epochs", "target_stem_padding"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.target_batch < 2:
            raise OptionError("target_batch must be at least 2 (Barlow Twins standardises over the batch)")


#: preset name -> values of the ``target_*`` options
TARGET_PRESETS: dict[str, dict[str, Any]] = {
    # ~7 s on CPU: 256 images, one epoch of a width-1/8 ResNet18, probe included
    "smoke": {
        "target_arch": "resnet18", "target_width": 0.125, "target_epochs": 1, "target_batch": 64,
        "target_optimizer": "adamw", "target_lr": 1e-3, "target_wd": 1e-4, "target_warmup_epochs": 0.0,
        "target_proj_dim": 256, "target_lambda": 0.0051, "target_loss_scale": 1.0, "target_max_images": 256,
        "target_probe_epochs": 20, "target_stem_padding": 1, "target_seed": 0,
    },
    # ~17 min on 2 idle cores; measurements and reasoning in README.md
    "quick": {
        "target_arch": "resnet18", "target_width": 0.25, "target_epochs": 45, "target_batch": 256,
        "target_optimizer": "adamw", "target_lr": 2e-3, "target_wd": 1e-4, "target_warmup_epochs": 1.0,
        "target_proj_dim": 2048, "target_lambda": 0.0051, "target_loss_scale": 1.0, "target_max_images": 0,
        "target_probe_epochs": 100, "target_stem_padding": 1, "target_seed": 0,
    },
    "paper": {
        "target_arch": "resnet18", "target_width": 1.0, "target_epochs": 1000, "target_batch": 256,
        "target_optimizer": "lars", "target_lr": 0.3, "target_wd": 1e-4, "target_warmup_epochs": 10.0,
        "target_proj_dim": 8192, "target_lambda": 0.0051, "target_loss_scale": 0.1, "target_max_images": 0,
        "target_probe_epochs": 100, "target_stem_padding": 1, "target_seed": 0,
    },
}


def target_options_dict(options: Any) -> dict[str, Any]:
    """The ``target_*`` fields of ``options`` (a :class:`TargetOptions` or a subclass)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(TargetOptions)}
