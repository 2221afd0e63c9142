"""The one training loop: pre-training on a distilled set, fine-tuning, the target model and
KRR-ST's model pool all train through :func:`fit` (and its single update, :func:`train_step`).

Example, a classifier on ``x``/``y`` with crop + flip, cosine learning rate and a progress bar::

    from ddbench.toolkit.augment import train_augment
    from ddbench.toolkit.train import batches, fit, supervised_forward

    order = batches(len(x), 128, ctx.generator(1))
    data = ((x[i], y[i]) for i in order)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    net.train()
    log = fit(supervised_forward(net, F.cross_entropy, lambda xb: train_augment(xb, g)), data, opt, 1000,
              scheduler=sched, check_every=20, progress=ctx.progress, description="train")

Reading a loss back costs a host sync on a GPU, so :func:`fit` reads (and checks for NaN/inf,
raising :class:`~ddbench.errors.DivergenceError`) only every ``check_every`` steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor

from ddbench.errors import DivergenceError


def batches(n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False) -> Iterator[Tensor]:
    """Index batches over shuffled epochs, forever; each epoch draws one ``randperm(n)``.

    The last batch of an epoch may be short; a trailing batch of a single image is folded into
    the previous one, so train-mode BatchNorm never sees a batch of one. With ``drop_last`` an
    epoch is ``n // batch_size`` full batches (for losses that need full batches)."""
    b = max(1, min(int(batch_size), n))
    while True:
        perm = torch.randperm(n, generator=generator)
        chunks = list(perm.split(b))
        if drop_last:
            if len(chunks[-1]) < b:
                chunks.pop()
        elif len(chunks) > 1 and len(chunks[-1]) == 1:
            tail = chunks.pop()
            chunks[-1] = torch.cat([chunks[-1], tail])
        yield from chunks


def steps_per_epoch(n: int, batch_size: int, *, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields per epoch."""
    b = max(1, min(int(batch_size), n))
    if drop_last:
        return n // b
    k = math.ceil(n / b)
    return k - 1 if k > 1 and n - (k - 1) * b == 1 else k


def warmup_cosine_lr(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``
    (``step`` counts from 0)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def supervised_forward(model: Callable[[Tensor], Tensor], loss: Callable[[Tensor, Tensor], Tensor],
                       augment: Callable[[Tensor], Tensor] | None = None) -> Callable[[Any], Tensor]:
    """The usual ``forward`` for :func:`fit`: ``loss(model(augment(x)), y)`` of an ``(x, y)`` batch,
    the augmentation without gradients."""

    def forward(batch: Any) -> Tensor:
        xb, yb = batch
        if augment is not None:
            with torch.no_grad():
                xb = augment(xb)
        return loss(model(xb), yb)

    return forward


def train_step(optimizer: torch.optim.Optimizer, loss: Tensor, before_step: Callable[[], None] | None = None) -> None:
    """One update from ``loss``: clear the gradients, backpropagate, ``before_step()`` (e.g. LARS
    rescaling the gradients), step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if before_step is not None:
        before_step()
    optimizer.step()


@dataclasses.dataclass
class FitLog:
    """What a :func:`fit` call did: ``first``/``last`` are the first and last losses read
    (NaN when none was), ``epoch_losses`` the mean loss of each epoch it finished (epoch mode)."""

    steps: int
    first: float
    last: float
    lr: float | None
    epoch_losses: list[float]
    seconds: float


class _NoBar:
    def advance(self, n: int = 1, **postfix: Any) -> None:
        pass

    def set(self, n: int) -> None:
        pass


def fit(
    forward: Callable[[Any], Tensor],
    data: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    start: int = 0,
    scheduler: Any = None,
    scheduler_every: int = 1,
    lr_at: Callable[[int], float] | None = None,
    before_step: Callable[[], None] | None = None,
    check_every: int = 1,
    epoch_steps: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
    progress: Callable[[int, str], Any] | None = None,
    description: str = "train",
    diverged: Callable[[int, float], str] | None = None,
) -> FitLog:
    """Train for steps ``start + 1 .. steps`` (counted from 1): per step, ``lr_at(step - 1)``
    sets every group's learning rate (when given), ``loss = forward(next(data))``, then
    :func:`train_step`, then ``scheduler.step()`` on every ``scheduler_every``-th step.

    ``check_every``: the loss is read (one host sync) and checked at the first step, every
    ``check_every``-th step and the last; 0 never reads it. A NaN/inf loss raises
    :class:`~ddbench.errors.DivergenceError` before its update, with ``diverged(step, value)``
    as the message when given.

    ``epoch_steps`` > 0 switches to epoch mode (it needs ``check_every=1``): the progress bar
    counts epochs, and after each ``on_epoch(epoch, mean_loss, seconds)`` runs (write a
    checkpoint there; ``start`` must then be a whole number of epochs, to resume). Otherwise
    the bar counts steps. ``progress`` is ``RunContext.progress`` or None (no bar).
    The caller puts the model in train mode."""
    if epoch_steps and check_every != 1:
        raise ValueError("epoch mode averages every step's loss: it needs check_every=1")
    it = iter(data)
    first = last = float("nan")
    lr: float | None = None
    epoch_losses: list[float] = []
    t_start = t_epoch = time.time()
    loss_sum = 0.0
    done = start
    if epoch_steps:
        total, unit_start = steps // epoch_steps, start // epoch_steps
    else:
        total, unit_start = steps, start
    cm = progress(total, description) if progress is not None else contextlib.nullcontext(_NoBar())
    with cm as bar:
        if unit_start:
            bar.set(unit_start)
        for step in range(start + 1, steps + 1):
            if lr_at is not None:
                lr = lr_at(step - 1)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            loss = forward(next(it))
            if check_every > 0 and (step == 1 or step % check_every == 0 or step == steps):
                last = float(loss.detach())
                if step == 1:
                    first = last
                if not math.isfinite(last):
                    raise DivergenceError(diverged(step, last) if diverged is not None
                                          else f"{description}: the loss became {last} at step {step}")
                if epoch_steps:
                    loss_sum += last
                else:
                    bar.advance(step - done, loss=last)
                    done = step
            train_step(optimizer, loss, before_step)
            if scheduler is not None and step % scheduler_every == 0:
                scheduler.step()
            if epoch_steps and step % epoch_steps == 0:
                mean = loss_sum / epoch_steps
                seconds = time.time() - t_epoch
                epoch_losses.append(mean)
                postfix: dict[str, Any] = {"loss": mean, "s_per_epoch": round(seconds, 1)}
                if lr is not None:
                    postfix["lr"] = lr
                bar.advance(1, **postfix)
                if on_epoch is not None:
                    on_epoch(step // epoch_steps, mean, seconds)
                loss_sum, t_epoch = 0.0, time.time()
    return FitLog(steps=max(0, steps - start), first=first, last=last, lr=lr, epoch_losses=epoch_losses,
                  seconds=round(time.time() - t_start, 3))
