"""A pool of online models trained on a moving dataset (KRR-ST's model pool; usable by any
method that meta-learns against networks at many stages of training)."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .train import fit


class ModelPool:
    """``size`` models from ``build`` (a fresh network from torch's global RNG), each with its
    own SGD optimiser and step counter, trained full-batch on ``loss(model(xs), ys)`` (MSE by
    default).

    ``reset_counter=True`` (KRR-ST's paper): after its step a model whose counter reaches T is
    re-initialised (fresh random weights, fresh optimiser) with counter 0.
    ``reset_counter=False`` (KRR-ST's reference code, ``model_pool.py``): a model whose counter
    has reached T is re-created at random on every pick and never trained again.

    Every draw (model seeds, initial step counts, picks) comes from ``generator``; models are
    built under ``fork_rng``, so the global RNG never moves.
    """

    def __init__(self, build: Callable[[], nn.Module], size: int, T: int, *, lr: float, momentum: float,
                 wd: float, reset_counter: bool, generator: torch.Generator, device: torch.device | str,
                 channels_last: bool = False, loss: Callable[[Tensor, Tensor], Tensor] = F.mse_loss) -> None:
        self._build, self.size, self.T = build, int(size), int(T)
        self.lr, self.momentum, self.wd = float(lr), float(momentum), float(wd)
        self.reset_counter = bool(reset_counter)
        self.generator = generator
        self.device = torch.device(device)
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.loss = loss
        self.models: list[nn.Module] = []
        self.opts: list[torch.optim.Optimizer] = []
        self.counters: list[int] = []
        #: how many times a slot was re-initialised (diagnostic)
        self.reinits = 0

    def _fresh(self, seed: int | None) -> tuple[nn.Module, torch.optim.Optimizer]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else seed)
            model = self._build()
        model = model.to(self.device, memory_format=self.fmt)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.wd)
        return model, opt

    def _draw_seed(self) -> int:
        return int(torch.randint(2**62, (1,), generator=self.generator))

    def new_model(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A randomly initialised model and its optimiser (seed from the pool's generator)."""
        return self._fresh(self._draw_seed())

    def train(self, idx: int, xs: Tensor, ys: Tensor, steps: int = 1) -> None:
        """``steps`` full-batch steps of model ``idx`` on ``(xs, ys)`` in train mode (no host sync)."""
        model = self.models[idx]
        model.train()
        fit(lambda batch: self.loss(model(batch[0]), batch[1]), itertools.repeat((xs, ys)), self.opts[idx],
            int(steps), check_every=0)

    def init(self, xs: Tensor, ys: Tensor, progress: Any = None) -> None:
        """Build the models; each trains t ~ U{1..T-1} full-batch steps (its counter starts at t).
        ``progress(i, t)`` is called after model ``i`` (1-based)."""
        self.models, self.opts, self.counters = [], [], []
        xs, ys = xs.detach(), ys.detach()
        for idx in range(self.size):
            model, opt = self.new_model()
            t = int(torch.randint(1, self.T, (1,), generator=self.generator))
            self.models.append(model)
            self.opts.append(opt)
            self.counters.append(t)
            self.train(idx, xs, ys, t)
            if progress is not None:
                progress(idx + 1, t)

    def pick(self) -> int:
        return int(torch.randint(self.size, (1,), generator=self.generator))

    def _reinit(self, idx: int) -> None:
        self.models[idx], self.opts[idx] = self.new_model()
        self.reinits += 1

    def update(self, idx: int, xs: Tensor, ys: Tensor) -> None:
        """The sampled model's online step after an outer step (inputs are detached here)."""
        xs, ys = xs.detach(), ys.detach()
        if self.reset_counter:
            self.train(idx, xs, ys)
            self.counters[idx] += 1
            if self.counters[idx] >= self.T:
                self._reinit(idx)
                self.counters[idx] = 0
        else:  # the reference's ModelPool.update, verbatim in behaviour
            if self.counters[idx] >= self.T:
                self._reinit(idx)
            else:
                self.counters[idx] += 1
                self.train(idx, xs, ys)

    def state_dict(self) -> dict[str, Any]:
        return {"models": [m.state_dict() for m in self.models], "opts": [o.state_dict() for o in self.opts],
                "counters": list(self.counters), "reinits": self.reinits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.models, self.opts = [], []
        for ms, os_ in zip(state["models"], state["opts"]):
            model, opt = self._fresh(None)  # weights are overwritten; draws nothing from the generator
            model.load_state_dict(ms)
            opt.load_state_dict(os_)
            self.models.append(model)
            self.opts.append(opt)
        self.counters = [int(c) for c in state["counters"]]
        self.reinits = int(state.get("reinits", 0))
