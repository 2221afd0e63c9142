"""Fine-tuning a (pre-trained or fresh) network on a labelled target, and eval-mode prediction.

Protocol §1.4: drop the pre-training head, new linear head; SGD lr 0.01, momentum 0.9,
wd 5e-4; cosine to 0 over the iterations (stepped every iteration); crop (pad 4) + flip
on every batch; images normalised with the target's own training statistics. The
reference code (``algorithms/finetune.py``) draws batches from a shuffled loader without
``drop_last`` and evaluates once, in eval mode, after the last step; so does this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .recipes import seed_global

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ddbench.context import RunContext
    from ddbench.toolkit.nn import Network


def finetune(ctx: "RunContext", net: "Network", x: "torch.Tensor", y: "torch.Tensor", num_classes: int, *,
             steps: int, batch_size: int, lr: float, offset: int, momentum: float = 0.9,
             weight_decay: float = 5e-4, description: str = "fine-tune") -> dict[str, Any]:
    """Replace ``net``'s head with a fresh ``num_classes``-way one and train the whole
    network on normalised images ``x`` with labels ``y``, in place.

    ``offset`` separates this run's randomness (head init ``offset``, batch order
    ``offset + 1``, augmentation ``offset + 2``) from every other phase of the seed.
    Returns diagnostics (steps, first/last loss, seconds). Leaves ``net`` in eval mode.
    """
    import torch
    import torch.nn.functional as F

    from .augment import train_augment
    from .train import batches, fit, supervised_forward

    device = next(net.parameters()).device
    seed_global(ctx, offset)
    net.reset_head(num_classes)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    order = batches(len(x), batch_size, ctx.generator(offset + 1))
    aug_g = ctx.generator(offset + 2)

    def data():
        for idx in order:
            yield x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)

    net.train()
    run = fit(supervised_forward(net, F.cross_entropy, lambda xb: train_augment(xb, aug_g)), data(), opt, steps,
              scheduler=sched, check_every=max(1, steps // 50), progress=ctx.progress, description=description,
              diverged=lambda step, value: f"{description} diverged at step {step} (loss {value})")
    net.eval()
    return {"steps": int(steps), "batch_size": int(min(batch_size, len(x))), "lr": lr, "momentum": momentum,
            "weight_decay": weight_decay, "schedule": "cosine to 0", "augment": "crop pad 4 + flip",
            "loss_first": run.first, "loss_last": run.last, "seconds": run.seconds}


def predict(net: "Network", x: "torch.Tensor", batch_size: int = 500) -> "torch.Tensor":
    """Logits for ``x`` in eval mode, without gradients. BatchNorm uses its running
    statistics, so each image's prediction does not depend on the others in its batch."""
    import torch

    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), max(1, int(batch_size))):
            outs.append(net(x[i:i + batch_size].to(device)).float().cpu())
    net.train(was_training)
    if not outs:
        return torch.zeros(0, 0)
    return torch.cat(outs)


def accuracy(net: "Network", x: "torch.Tensor", y: "torch.Tensor", batch_size: int = 500) -> float:
    """Top-1 accuracy in percent (0-100), eval mode."""
    if len(y) == 0:
        return float("nan")
    pred = predict(net, x, batch_size).argmax(dim=1)
    return float((pred == y.cpu()).float().mean().item() * 100.0)
