"""Knowledge distillation of one student from the teacher over the distilled images
(protocol §1.4, "Target-data-free KD"; reference: github.com/db-Lee/selfsup_dd @ 4beb4b1,
``algorithms/zeroshot_kd.py``), and its measurement.

Per epoch: one shuffled pass over the set's images in batches of ``kd_batch`` (the last batch
short); per batch, without gradients, ``x = DSA(x)`` (a noise set instead draws fresh
``randn`` of the batch's shape) and ``y = teacher(to_teacher(x))``; the loss is the soft
cross-entropy ``-(softmax(y/T) * log_softmax(s/T)).sum(-1).mean()``; AdamW, cosine over the
epochs stepped once per epoch. Student and teacher are both in train mode (BatchNorm uses
the batch's statistics), the teacher a deep copy per student so the cached one never
changes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ddbench.context import RunContext
    from ddbench.distilled import DistilledSet
    from ddbench.toolkit.nn import Network

    from .options import KDOptions
    from .teacher import Teacher

#: seed offsets of the KD phase, per student (added to the student's base offset)
OFFSET_ORDER, OFFSET_AUG, OFFSET_NOISE = 1, 2, 3


def soft_cross_entropy(student_logits: "torch.Tensor", teacher_logits: "torch.Tensor",
                       temperature: float = 1.0) -> "torch.Tensor":
    """``-(softmax(t/T) * log_softmax(s/T)).sum(-1).mean()``: cross-entropy to the teacher's
    softmax (the reference's loss; no T^2 factor)."""
    import torch.nn.functional as F

    t = float(temperature)
    return -(F.softmax(teacher_logits / t, dim=-1) * F.log_softmax(student_logits / t, dim=-1)).sum(-1).mean()


def space_map(distilled: "DistilledSet", mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """Per-channel ``(scale, shift)`` taking the set's input space to the space normalised with
    ``mean``/``std``: pixel ``p = x * std_s + mean_s`` (``p = x`` for a raw01 set), then
    ``(p - mean) / std``."""
    if distilled.pixel_space == "raw01":
        s_mean, s_std = [0.0] * len(mean), [1.0] * len(std)
    else:
        s_mean, s_std = list(distilled.mean), list(distilled.std)
    scale = [ss / t for ss, t in zip(s_std, std)]
    shift = [(sm - tm) / t for sm, tm, t in zip(s_mean, mean, std)]
    return scale, shift


def to_teacher_space(x: "torch.Tensor", scale: Sequence[float], shift: Sequence[float]) -> "torch.Tensor":
    import torch

    a = torch.tensor(scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    b = torch.tensor(shift, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * a + b


def kd_forward(student: "Network", t_net: "Network", scale: Sequence[float], shift: Sequence[float],
               temperature: float, inputs: Callable[["torch.Tensor"], "torch.Tensor"]):
    """The loss of one KD batch: ``x = inputs(batch)`` and the teacher's logits of ``x`` (in its
    own space) without gradients, then the soft cross-entropy of the student's logits."""
    import torch

    def forward(xb: "torch.Tensor") -> "torch.Tensor":
        with torch.no_grad():
            xb = inputs(xb)
            y = t_net(to_teacher_space(xb, scale, shift))
        return soft_cross_entropy(student(xb), y, temperature)

    return forward


def kd_train(ctx: "RunContext", student: "Network", teacher: "Teacher", distilled: "DistilledSet",
             options: "KDOptions", offset: int, description: str = "KD") -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` (in place) over the set's images; returns the log."""
    import torch

    from ddbench.toolkit.augment import DSA
    from ddbench.toolkit.train import batches, fit, steps_per_epoch

    device = ctx.torch_device()
    noise = distilled.label_kind == "noise"
    x = distilled.images.to(device=device, dtype=torch.float32)
    m = len(x)
    batch = min(int(options.kd_batch), m)
    per = steps_per_epoch(m, batch)
    epochs = int(options.kd_epochs)
    lr = float(options.kd_lr_noise if noise else options.kd_lr)
    scale, shift = space_map(distilled, teacher.mean, teacher.std)
    t_net = copy.deepcopy(teacher.net).to(device).train()  # batch statistics, as the reference; never the cache's
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=float(options.kd_wd))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    order = batches(m, batch, ctx.generator(offset + OFFSET_ORDER))
    aug_g = ctx.generator(offset + OFFSET_AUG)
    noise_g = ctx.generator(offset + OFFSET_NOISE)
    dsa = DSA()
    temperature = float(options.temperature)

    def data():
        for idx in order:
            yield x[idx.to(device)]

    if noise:
        def inputs(xb: "torch.Tensor") -> "torch.Tensor":
            return torch.randn(xb.shape, generator=noise_g).to(device)
    else:
        def inputs(xb: "torch.Tensor") -> "torch.Tensor":
            return dsa(xb, aug_g)

    forward = kd_forward(student, t_net, scale, shift, temperature, inputs)
    run = fit(forward, data(), opt, epochs * per, scheduler=sched, scheduler_every=per, check_every=1,
              epoch_steps=per, progress=ctx.progress,
              description=f"{description}: KD {epochs} epochs over {m} {'noise' if noise else 'set'} images",
              diverged=lambda step, v: f"KD diverged at step {step} (loss {v}); lower kd_lr")
    student.eval()
    del t_net
    losses = run.epoch_losses
    return {"epochs": epochs, "steps": epochs * per, "steps_per_epoch": per, "batch_size": batch, "lr": lr,
            "weight_decay": float(options.kd_wd), "optimizer": "adamw", "schedule": "cosine over epochs (per epoch)",
            "temperature": temperature, "input": "fresh N(0, I) per batch" if noise else "DSA per batch",
            "teacher_mode": "train (batch statistics)", "teacher_space": {"scale": scale, "shift": shift},
            "loss_first": losses[0] if losses else run.first, "loss_last": losses[-1] if losses else run.last,
            "seconds": run.seconds}


def train_mode_accuracy(net: "Network", x: "torch.Tensor", y: "torch.Tensor", batch_size: int) -> float:
    """The reference's measurement: top-1 % with BatchNorm in train mode (each batch's own
    statistics, so the number depends on how the test set is batched). The running
    statistics are restored afterwards."""
    import torch

    device = next(net.parameters()).device
    saved = copy.deepcopy(net.state_dict())
    net.train()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), int(batch_size)):
            out = net(x[i:i + batch_size].to(device))
            correct += int((out.argmax(1).cpu() == y[i:i + batch_size]).sum())
    net.load_state_dict(saved)
    net.eval()
    return 100.0 * correct / max(1, len(y))


def measure(net: "Network", x: "torch.Tensor", y: "torch.Tensor", options: "KDOptions") -> float:
    from ddbench.toolkit import finetune as ft

    if options.eval_mode == "train":
        return float(train_mode_accuracy(net, x, y, options.eval_batch))
    return float(ft.accuracy(net, x, y, options.eval_batch))

