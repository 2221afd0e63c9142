"""Pre-training recipes: how a network is trained on a distilled set before it is used.

Protocol §1.4 (the reference code, github.com/db-Lee/selfsup_dd @ 4beb4b1,
``algorithms/pretrain_*.py`` and ``test.py``) trains on a distilled set with one of
three recipes, chosen by the *set's* label kind, not by the evaluation:

=====================  ==========================================================
``representation_mse``  MSE to representation targets (KRR-ST); SGD lr 0.1, m 0.9,
                        wd 1e-3; batch 256; constant lr; no augmentation; epochs.
``hard_ce_dsa``         cross-entropy to hard labels (Random, Kmeans, DSA, DM, MTT);
                        SGD lr 0.01, m 0.9, wd 5e-4; batch 256; lr x0.1 at half the
                        epochs; DSA on every batch; epochs.
``learned_mse_adamw``   MSE to learned labels (KIP, FRePo); AdamW lr 3e-4, wd 0;
                        batch 500; 500 warm-up steps then cosine to 0; DSA on every
                        batch; iterations.
=====================  ==========================================================

Lengths (epochs / iterations / warm-up) come from the caller's options because they
are scaled per preset; everything else is fixed here so every task that pre-trains
uses the same recipe. The head is ``Linear(feature_dim, target dim or num classes)``;
:func:`pretrain` returns the network *with* that head (the caller drops it).

Details taken from the reference code: one epoch is one pass over a shuffled set in
batches of ``min(batch, m)``, the last batch may be short (no ``drop_last``); the
learned-label loss is ``mean_i sum_j 0.5 (f(x_i)_j - y_ij)^2`` (FRePo's, not
``F.mse_loss``); the step schedule steps once per epoch, the cosine schedule once per
iteration (``transformers.get_cosine_schedule_with_warmup``). DSA is applied to each
batch in the distilled set's own pixel space, as the reference does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from ddbench.errors import DataError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ddbench.context import RunContext
    from ddbench.distilled import DistilledSet
    from ddbench.toolkit.nn import Network

#: seed offsets of the pre-training phase (network init, batch order, augmentation)
OFFSET_INIT, OFFSET_ORDER, OFFSET_AUG = 101, 102, 103


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A pre-training recipe; lengths come from the options at run time."""

    name: str
    loss: str  # "ce" | "mse" | "half_sse"
    optimizer: str  # "sgd" | "adamw"
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    schedule: str  # "constant" | "step_half" | "warmup_cosine"
    augment: str  # "none" | "dsa"
    unit: str  # "epochs" | "steps": what the length option counts

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "representation_mse": Recipe("representation_mse", "mse", "sgd", 0.1, 0.9, 1e-3, 256, "constant", "none",
                                 "epochs"),
    "hard_ce_dsa": Recipe("hard_ce_dsa", "ce", "sgd", 0.01, 0.9, 5e-4, 256, "step_half", "dsa", "epochs"),
    "learned_mse_adamw": Recipe("learned_mse_adamw", "half_sse", "adamw", 3e-4, 0.0, 0.0, 500, "warmup_cosine",
                                "dsa", "steps"),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise OptionError(f"no pre-training recipe {name!r}; known: {', '.join(sorted(RECIPES))}") from None


def seed_global(ctx: "RunContext", offset: int) -> None:
    """Seed torch's global RNG (architectures and ``reset_head`` draw from it) from the
    run seed and a phase offset, mixed as ``ctx.generator`` mixes them."""
    import torch

    torch.manual_seed(ctx.generator(offset).initial_seed())


def build_network(ctx: "RunContext", arch_name: str, arch_kwargs: dict[str, Any], width: float,
                  resolution: int, num_outputs: int | None, offset: int = OFFSET_INIT) -> "Network":
    """A freshly initialised network, seeded by ``ctx.seed`` and ``offset``."""
    from ddbench import plugins

    arch = plugins.registry("architecture").get(arch_name)
    seed_global(ctx, offset)
    net = arch.build((3, int(resolution), int(resolution)), num_outputs, width=width, **dict(arch_kwargs))
    return net.to(ctx.torch_device())


def output_dim(distilled: "DistilledSet") -> int:
    """Head width: the target dimension for float targets, the class count for hard labels."""
    t = distilled.targets
    if t.dim() == 2:
        return int(t.shape[1])
    if distilled.num_classes:
        return int(distilled.num_classes)
    return int(t.max().item()) + 1


def _loss(recipe: Recipe, out: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F

    if recipe.loss == "ce":
        return F.cross_entropy(out, y)
    if recipe.loss == "mse":
        return F.mse_loss(out, y)
    return (0.5 * (out - y).square().sum(dim=-1)).mean()


def check_targets(recipe: Recipe, distilled: "DistilledSet") -> None:
    import torch

    t = distilled.targets
    if recipe.loss == "ce":
        if t.dim() != 1 or t.dtype != torch.long:
            raise DataError(f"recipe {recipe.name} needs hard labels (int64, shape (m,)); the set from "
                            f"{distilled.method or '?'} has targets {tuple(t.shape)} {t.dtype}")
    elif t.dim() != 2 or not t.is_floating_point():
        raise DataError(f"recipe {recipe.name} needs float targets of shape (m, d); the set from "
                        f"{distilled.method or '?'} has targets {tuple(t.shape)} {t.dtype}")


def length(recipe: Recipe, options: Any, m: int, batch_size: int) -> dict[str, int]:
    """Total optimiser steps (and epochs, warm-up) the options ask of ``recipe``."""
    from .train import steps_per_epoch

    if recipe.unit == "epochs":
        epochs = int(options.pretrain_epochs)
        if epochs < 1:
            raise OptionError(f"pretrain_epochs must be >= 1, got {epochs}")
        per = steps_per_epoch(m, batch_size)
        return {"epochs": epochs, "steps_per_epoch": per, "steps": epochs * per, "warmup": 0}
    steps = int(options.pretrain_steps)
    if steps < 1:
        raise OptionError(f"pretrain_steps must be >= 1, got {steps}")
    warmup = min(int(getattr(options, "pretrain_warmup", 0)), steps)
    return {"epochs": 0, "steps_per_epoch": steps_per_epoch(m, batch_size), "steps": steps, "warmup": warmup}


def _scheduler(recipe: Recipe, opt: Any, plan: dict[str, int]):
    import torch

    if recipe.schedule == "step_half":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[plan["epochs"] // 2], gamma=0.1)
    if recipe.schedule == "warmup_cosine":
        warm, total = plan["warmup"], plan["steps"]

        def factor(step: int) -> float:
            if step < warm:
                return step / max(1, warm)
            progress = (step - warm) / max(1, total - warm)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return None


def pretrain(ctx: "RunContext", distilled: "DistilledSet", arch_name: str, arch_kwargs: dict[str, Any],
             width: float, options: Any, *, log: dict[str, Any] | None = None,
             description: str = "") -> "Network":
    """Train a fresh ``arch_name`` network on ``distilled`` with the set's recipe.

    ``options`` supplies ``pretrain_epochs`` (epoch-based recipes), ``pretrain_steps`` and
    ``pretrain_warmup`` (iteration-based ones) and optionally ``pretrain_batch`` (0 = the
    recipe's). Randomness: network init, batch order and augmentation each come from
    ``ctx`` with their own offset, so the same seed gives the same network on CPU.
    Returns the network with its pre-training head, in eval mode; ``log`` (when given)
    receives the recipe, the lengths, the loss curve's ends and the seconds taken;
    ``description`` prefixes the progress bar's label (e.g. the architecture's name).
    """
    import torch

    from .augment import DSA
    from .train import batches, fit, supervised_forward

    recipe = get_recipe(distilled.recipe)
    if distilled.num_images == 0:
        raise DataError("cannot pre-train on an empty distilled set (label kind 'none' means: skip pre-training)")
    check_targets(recipe, distilled)
    device = ctx.torch_device()
    x = distilled.images.to(device=device, dtype=torch.float32)
    y = distilled.targets.to(device)
    m = len(x)
    batch = int(getattr(options, "pretrain_batch", 0) or recipe.batch_size)
    plan = length(recipe, options, m, batch)

    net = build_network(ctx, arch_name, arch_kwargs, width, distilled.resolution, output_dim(distilled))
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                              weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    order = batches(m, batch, ctx.generator(OFFSET_ORDER))
    aug_g = ctx.generator(OFFSET_AUG)
    augment = None
    if recipe.augment == "dsa":
        dsa = DSA()
        augment = lambda xb: dsa(xb, aug_g)  # noqa: E731

    def data():
        for idx in order:
            idx = idx.to(device)
            yield x[idx], y[idx]

    steps = plan["steps"]
    net.train()
    run = fit(supervised_forward(net, lambda out, yb: _loss(recipe, out, yb), augment), data(), opt, steps,
              scheduler=_scheduler(recipe, opt, plan),
              # the cosine schedule steps every iteration, the step schedule once per epoch
              scheduler_every=1 if recipe.schedule == "warmup_cosine" else plan["steps_per_epoch"],
              check_every=plan["steps_per_epoch"] if recipe.unit == "epochs" else max(1, steps // 100),
              progress=ctx.progress,
              description=(f"{description}: " if description else "") + f"pre-train {recipe.name} on {m} images",
              diverged=lambda step, value: f"pre-training with {recipe.name} diverged at step {step} (loss {value}); "
                                           "the distilled set's targets may be badly scaled")
    net.eval()
    if log is not None:
        log.update({"recipe": recipe.describe(), "batch_size": min(batch, m), "images": m, **plan,
                    "loss_first": run.first, "loss_last": run.last, "seconds": run.seconds})
    return net
