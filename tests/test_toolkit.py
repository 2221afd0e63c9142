"""ddbench.toolkit: the training loop, batches, LARS and real-image selection (the
augmentations: tests/test_augment.py; KRR and the pool: tests/test_krrst.py)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ddbench.context import RunContext
from ddbench.errors import DataError, DivergenceError
from ddbench.toolkit.train import batches, fit, steps_per_epoch, supervised_forward, warmup_cosine_lr


def test_importing_the_toolkit_imports_no_torch():
    code = "import sys, ddbench.toolkit; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batches_cover_each_epoch_once():
    it = batches(10, 4, torch.Generator().manual_seed(0))
    epoch = [next(it) for _ in range(steps_per_epoch(10, 4))]
    assert sorted(torch.cat(epoch).tolist()) == list(range(10)) and [len(b) for b in epoch] == [4, 4, 2]
    it = batches(9, 4, torch.Generator().manual_seed(0))  # a trailing batch of one is folded in
    epoch = [next(it) for _ in range(steps_per_epoch(9, 4))]
    assert [len(b) for b in epoch] == [4, 5] and sorted(torch.cat(epoch).tolist()) == list(range(9))
    it = batches(10, 4, torch.Generator().manual_seed(0), drop_last=True)  # full batches of one permutation
    assert steps_per_epoch(10, 4, drop_last=True) == 2
    first = [next(it) for _ in range(2)]
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(first), perm[:8])
    assert [len(next(it)) for _ in range(2)] == [4, 4]  # the next epoch starts


def test_warmup_cosine_lr():
    assert warmup_cosine_lr(0, 10, 2, 1.0) == 0.5 and warmup_cosine_lr(1, 10, 2, 1.0) == 1.0
    assert warmup_cosine_lr(2, 10, 2, 1.0) == 1.0
    assert math.isclose(warmup_cosine_lr(6, 10, 2, 1.0), 0.5)
    assert warmup_cosine_lr(10, 10, 2, 1.0) == 0.0


def _regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    return net, opt, x, y


def test_fit_trains_and_reports_the_first_and_last_loss():
    net, opt, x, y = _regression()
    data = ((x[i], y[i]) for i in batches(12, 4, torch.Generator().manual_seed(0)))
    log = fit(supervised_forward(net, torch.nn.functional.mse_loss), data, opt, 30, check_every=10)
    assert log.steps == 30 and log.last < 0.1 * log.first


def test_fit_raises_on_divergence_before_the_update():
    net, opt, x, y = _regression()
    seen = []

    def forward(batch):
        seen.append(net.weight.detach().clone())
        loss = torch.nn.functional.mse_loss(net(batch[0]), batch[1])
        return loss * float("nan") if len(seen) == 3 else loss

    with pytest.raises(DivergenceError, match="at step 3"):
        fit(forward, iter(lambda: (x, y), None), opt, 5)
    assert torch.equal(net.weight, seen[-1])  # the NaN step never reached the weights


def test_fit_checks_only_every_check_every_steps():
    """Reading the loss is a host sync on a GPU: a NaN at step 2 is found at the next check."""
    net, opt, x, y = _regression()
    calls = {"n": 0}

    def forward(batch):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(net(batch[0]), batch[1])
        return loss * float("nan") if calls["n"] == 2 else loss

    with pytest.raises(DivergenceError, match="at step 4"):
        fit(forward, iter(lambda: (x, y), None), opt, 6, check_every=4)


def test_fit_epoch_mode_resumes_bit_identically():
    """The per-epoch callback as a checkpoint: a run stopped after epoch 1 and resumed from its
    checkpoint ends with the weights and per-epoch losses of a straight run."""

    def train(checkpoint: dict, stop_after: int | None = None):
        net, opt, x, y = _regression()
        order_gen = torch.Generator().manual_seed(5)
        losses: list[float] = []
        if checkpoint:
            net.load_state_dict(checkpoint["net"])
            opt.load_state_dict(checkpoint["opt"])
            order_gen.set_state(checkpoint["order"])
            losses = list(checkpoint["losses"])

        def on_epoch(epoch, mean, seconds):
            losses.append(mean)
            checkpoint.update(net={k: v.clone() for k, v in net.state_dict().items()}, opt=opt.state_dict(),
                              order=order_gen.get_state(), losses=list(losses), epoch=epoch)
            if epoch == stop_after:
                raise KeyboardInterrupt

        data = ((x[i], y[i]) for i in batches(12, 5, order_gen, drop_last=True))
        log = fit(supervised_forward(net, torch.nn.functional.mse_loss), data, opt, 3 * 2,
                  start=2 * checkpoint.get("epoch", 0), epoch_steps=2, on_epoch=on_epoch,
                  lr_at=lambda step: 0.1 / (1 + step))
        return net, losses, log

    straight, straight_losses, log = train({})
    assert len(straight_losses) == 3 and log.epoch_losses == straight_losses
    checkpoint: dict = {}
    with pytest.raises(KeyboardInterrupt):
        train(checkpoint, stop_after=1)
    assert checkpoint["epoch"] == 1
    resumed, resumed_losses, log = train(checkpoint)
    assert log.epoch_losses == straight_losses[1:] and resumed_losses == straight_losses
    assert torch.equal(resumed.weight, straight.weight) and torch.equal(resumed.bias, straight.bias)


def test_lars_scales_weight_gradients_only():
    from ddbench.toolkit.lars import ETA, lars_adapt, lars_sgd

    net = torch.nn.Linear(4, 3)
    opt = lars_sgd([net], lr=0.5, weight_decay=0.0)
    net.weight.grad = torch.full_like(net.weight, 10.0)
    net.bias.grad = torch.full_like(net.bias, 10.0)
    w_norm, g_norm = float(net.weight.detach().norm()), float(net.weight.grad.norm())
    lars_adapt(opt)
    expected = min(1.0, ETA * w_norm / (g_norm + 1e-8) / 0.5)
    assert torch.allclose(net.weight.grad, torch.full_like(net.weight, 10.0 * expected))
    assert torch.equal(net.bias.grad, torch.full_like(net.bias, 10.0))  # biases are exempt


def test_initial_draw_is_krrsts_seeded_class_agnostic_draw():
    from ddbench.toolkit.subsets import INITIAL_DRAW_OFFSET, initial_draw, per_class_quota

    ctx = RunContext(seed=3)
    idx = initial_draw(ctx, 50, 7)
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3 * 1_000_003 + INITIAL_DRAW_OFFSET))[:7]
    assert torch.equal(idx, expected)
    assert torch.equal(initial_draw(RunContext(seed=3), 50, 7), idx)
    assert not torch.equal(initial_draw(RunContext(seed=4), 50, 7), idx)
    with pytest.raises(DataError, match="cannot draw"):
        initial_draw(ctx, 5, 6)
    assert per_class_quota([3, 3, 3], 0, 2, torch.Generator()) == [2, 2, 2]
    spread = per_class_quota([3, 3, 3], 7, 0, torch.Generator().manual_seed(0))
    assert sorted(spread) == [2, 2, 3]
    with pytest.raises(DataError, match="only 3"):
        per_class_quota([3, 3, 3], 0, 4, torch.Generator())
