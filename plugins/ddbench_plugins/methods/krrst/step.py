"""KRR-ST's state and outer (meta) step (protocol.md §1.1).

:class:`Distiller` holds the whole state of a run (synthetic set, outer optimiser, model
pool, RNG streams) and does one outer step per :meth:`Distiller.step`. Every random draw
comes from an explicit ``torch.Generator`` whose state is checkpointed, so a killed run
resumes to the bit-identical artifact; networks are built under ``fork_rng`` from seeds
drawn from the pool's generator, so the global RNG never moves.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddbench.data import normalize
from ddbench.errors import OptionError
from ddbench.toolkit.augment import train_augment
from ddbench.toolkit.krr import krr_predict
from ddbench.toolkit.nn import fused_embed
from ddbench.toolkit.pool import ModelPool
from ddbench.toolkit.subsets import INITIAL_DRAW_OFFSET, random_draw

CHECKPOINT_VERSION = 1

# generator offsets (ctx.generator(offset)): one independent stream per kind of draw; the
# initial draw's is the toolkit's, so the ``random`` control can draw the same images
_G_INIT, _G_POOL, _G_BATCH, _G_AUG = INITIAL_DRAW_OFFSET, 7002, 7003, 7004


def _nullphase(name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


class Distiller:
    """All state of one KRR-ST run and its outer step.

    ``x_real01`` are the source's training images in [0, 1] (moved to ``device`` once);
    ``num_images`` is m, the size of the synthetic set (the run's budget); ``target`` has
    ``represent(x_norm) -> (N, d)``; ``build`` makes a fresh pool network
    (``ddbench.toolkit.nn.Network`` with a ``d``-way linear head) from torch's global RNG;
    ``seed_generator(offset, device)`` is ``ctx.generator``.
    """

    def __init__(self, options: Any, *, num_images: int, x_real01: Tensor, mean, std, target: Any,
                 build: Callable[[], nn.Module], seed_generator: Callable[[int, str | None], torch.Generator],
                 device: str | torch.device = "cpu") -> None:
        self.o = options
        self.device = torch.device(device)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.target = target
        self.x_real = x_real01.to(self.device, torch.float32)
        # on-device statistics: normalising a batch needs no host-to-device copy
        self.mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        n = self.x_real.shape[0]
        self.num_images = int(num_images)
        if self.num_images < 1:
            raise OptionError(f"KRR-ST needs at least one synthetic image, got a budget of {num_images}")
        if self.num_images > n:
            raise OptionError(f"the budget is {self.num_images} images but the source has only {n} training images")
        self.batch_size = min(int(options.batch_size), n)
        dev_kind = None if self.device.type == "cpu" else str(self.device)
        self.g_init = seed_generator(_G_INIT, None)
        self.g_pool = seed_generator(_G_POOL, None)
        self.g_batch = seed_generator(_G_BATCH, dev_kind)
        self.g_aug = seed_generator(_G_AUG, dev_kind)
        self.fmt = torch.channels_last if options.channels_last else torch.contiguous_format
        if options.channels_last and isinstance(getattr(target, "net", None), nn.Module):
            # this run's own copy of the target (get_target_model loads a fresh one)
            target.net.to(memory_format=torch.channels_last)
        self.pool = ModelPool(build, options.pool_size, options.pool_steps, lr=options.pool_lr,
                              momentum=options.pool_momentum, wd=options.pool_wd,
                              reset_counter=options.reset_counter, generator=self.g_pool, device=self.device,
                              channels_last=options.channels_last)
        self.step_count = 0
        self.perm = torch.empty(0, dtype=torch.long, device=self.device)
        self.pos = 0
        self.cholesky_fallbacks = 0
        self.losses = torch.full((int(options.steps),), float("nan"), device=self.device)
        self.seconds = 0.0
        self.xs: Tensor | None = None
        self.ys: Tensor | None = None

    # -- setup --------------------------------------------------------------

    def init_synthetic(self) -> Tensor:
        """X_s = m random real training images (class-agnostic, seeded); Y_s = g(X_s).
        Returns the indices drawn (``ddbench.toolkit.subsets.initial_draw`` for the seed)."""
        idx = random_draw(self.x_real.shape[0], self.num_images, self.g_init).to(self.device)
        x01 = self.x_real[idx]
        x_norm = normalize(x01, self.mean, self.std)
        ys = self.target.represent(self._pool_input(x_norm), batch_size=self.batch_size).to(self.device, torch.float32)
        xs = x01.clone() if self.o.raw_pixel_init else x_norm
        self.set_synthetic(xs.contiguous(), ys.contiguous())
        return idx

    def set_synthetic(self, xs: Tensor, ys: Tensor) -> None:
        """Start the outer loop from the images ``xs`` (in the real inputs' space) and targets
        ``ys``: a fresh AdamW and lr schedule over what ``learn`` optimises (the golden-figure
        test starts from the reference's tensors this way)."""
        o = self.o
        learn = getattr(o, "learn", "both")
        self.xs = xs.detach().clone().requires_grad_(learn in ("both", "images"))
        self.ys = ys.detach().clone().requires_grad_(learn in ("both", "targets"))
        #: the tensors the outer loop optimises (both in the paper; one in the ablations)
        self.learned = [t for t in (self.xs, self.ys) if t.requires_grad]
        self.opt = torch.optim.AdamW(self.learned, lr=o.outer_lr, weight_decay=o.outer_wd)
        self.sched = torch.optim.lr_scheduler.LinearLR(self.opt, start_factor=1.0, end_factor=o.outer_lr_end,
                                                       total_iters=max(1, int(o.steps)))
        m = self.xs.shape[0]
        self.ones_s = torch.ones(m, 1, device=self.device)
        self.ones_b = torch.ones(self.batch_size, 1, device=self.device)
        self.eye = torch.eye(m, device=self.device)

    def init_pool(self, progress: Any = None) -> None:
        self.pool.init(self._pool_input(self.xs), self.ys, progress)

    def _pool_input(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=self.fmt) if self.fmt is not torch.contiguous_format else x

    # -- one outer step -----------------------------------------------------

    def real_batch(self) -> Tensor:
        """The next b real images (epochs without replacement, on-device permutation; a
        final partial batch is dropped), crop pad-4 + flip in [0, 1] pixels, then normalised."""
        b = self.batch_size
        if self.pos + b > self.perm.numel():
            self.perm = torch.randperm(self.x_real.shape[0], generator=self.g_batch, device=self.g_batch.device)
            self.perm = self.perm.to(self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + b]
        self.pos += b
        x = train_augment(self.x_real[idx], self.g_aug)
        return self._pool_input((x - self.mean_t) / self.std_t)  # == ddbench.data.normalize

    def step(self, phase: Callable[[str], contextlib.AbstractContextManager] = _nullphase,
             batch: Tensor | None = None) -> Tensor:
        """One outer iteration; returns the (detached, on-device) loss. ``phase(name)`` is
        entered around each part (the benchmark times them). ``batch``: use these (already
        augmented, normalised) real images instead of drawing the next batch."""
        o, xs, ys = self.o, self.xs, self.ys
        with phase("data"):
            xb = self.real_batch() if batch is None else self._pool_input(batch)
        with phase("target_forward"):
            yb = self.target.represent(xb, batch_size=xb.shape[0])
        idx = self.pool.pick()
        model = self.pool.models[idx]
        model.eval()
        with phase("syn_features"):
            fs = torch.cat([model.embed(self._pool_input(xs)), self.ones_s], 1)
        with phase("real_features"):
            with torch.no_grad():
                embed = fused_embed(model) if o.fuse_bn else model.embed
                fb = torch.cat([embed(xb), self.ones_b], 1)
        with phase("kernel_solve_backward"):
            # K_ss before K_bs: the order the graph is built in fixes the order in which the
            # gradients into fs are summed, so it is part of the bit-exact result
            K_ss = fs @ fs.T
            K_bs = fb @ fs.T
            pred, fell_back = krr_predict(K_bs, K_ss, ys, o.ridge, o.solver, self.eye)
            self.cholesky_fallbacks += int(fell_back)
            loss = F.mse_loss(pred, yb)
            grads = torch.autograd.grad(loss, self.learned)
        with phase("optimizer"):
            for t, g in zip(self.learned, grads):
                t.grad = g
                if o.grad_clip > 0:
                    nn.utils.clip_grad_norm_(t, o.grad_clip)
            self.opt.step()
            self.sched.step()
            for t in self.learned:
                t.grad = None
        with phase("pool_update"):
            self.pool.update(idx, self._pool_input(xs), ys)
        loss = loss.detach()
        if self.step_count < self.losses.numel():
            self.losses[self.step_count] = loss
        self.step_count += 1
        return loss

    # -- checkpoints --------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "version": CHECKPOINT_VERSION, "step": self.step_count,
            "xs": self.xs.detach().cpu(), "ys": self.ys.detach().cpu(),
            "opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "pool": self.pool.state_dict(),
            "perm": self.perm.cpu(), "pos": self.pos, "losses": self.losses[: self.step_count].cpu(),
            "cholesky_fallbacks": self.cholesky_fallbacks, "seconds": self.seconds,
            "g_init": self.g_init.get_state(), "g_pool": self.g_pool.get_state(),
            "g_batch": self.g_batch.get_state(), "g_aug": self.g_aug.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_synthetic(state["xs"].to(self.device), state["ys"].to(self.device))
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.g_init.set_state(state["g_init"])
        self.g_pool.set_state(state["g_pool"])
        self.g_batch.set_state(state["g_batch"])
        self.g_aug.set_state(state["g_aug"])
        self.pool.load_state_dict(state["pool"])
        self.perm = state["perm"].to(self.device)
        self.pos = int(state["pos"])
        self.step_count = int(state["step"])
        self.losses[: self.step_count] = state["losses"].to(self.device)
        self.cholesky_fallbacks = int(state["cholesky_fallbacks"])
        self.seconds = float(state["seconds"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
