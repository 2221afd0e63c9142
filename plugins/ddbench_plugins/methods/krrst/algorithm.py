"""The torch side of KRR-ST (protocol.md §1.1), imported lazily by ``KRRST.distill``.

:class:`ModelPool` holds the l online ConvNets; :class:`Distiller` holds the whole state
of a run (synthetic set, outer optimiser, pool, RNG streams) and does one outer step per
:meth:`Distiller.step`; :func:`distill` drives it with checkpoints, progress and outputs.

Every random draw comes from an explicit ``torch.Generator`` (the pool's model seeds,
initial step counts and picks; the real-batch order; the augmentation) whose state is
checkpointed, so a killed run resumes to the bit-identical artifact. Networks are built
under ``torch.random.fork_rng`` from a seed drawn from the pool's generator: the global
RNG is never moved.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddbench.cache import atomic_torch_save, load_checkpoint
from ddbench.data import normalize
from ddbench.errors import DivergenceError, OptionError

CHECKPOINT_FILE = "krrst.pt"
CHECKPOINT_VERSION = 1

# generator offsets (ctx.generator(offset)): one independent stream per kind of draw
_G_INIT, _G_POOL, _G_BATCH, _G_AUG = 7001, 7002, 7003, 7004


def _nullphase(name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- pool


class ModelPool:
    """l ConvNets with a linear head (feature_dim -> target dim), each with its own SGD
    optimiser and step counter.

    ``reset_counter=True`` (the paper): after its full-batch step a model whose counter
    reaches T is re-initialised (fresh random weights, fresh optimiser) with counter 0.
    ``reset_counter=False`` (the reference code, ``model_pool.py``): a model whose counter
    has reached T is re-created at random on every pick and never trained again.
    """

    def __init__(self, build: Callable[[], nn.Module], size: int, T: int, *, lr: float, momentum: float,
                 wd: float, reset_counter: bool, generator: torch.Generator, device: torch.device,
                 channels_last: bool = False) -> None:
        self._build, self.size, self.T = build, int(size), int(T)
        self.lr, self.momentum, self.wd = float(lr), float(momentum), float(wd)
        self.reset_counter = bool(reset_counter)
        self.generator = generator
        self.device = torch.device(device)
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
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

    def train_step(self, idx: int, xs: Tensor, ys: Tensor) -> Tensor:
        """One full-batch SGD step of MSE(h(f(xs)), ys) in train mode; returns the loss."""
        model, opt = self.models[idx], self.opts[idx]
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(xs), ys)
        loss.backward()
        opt.step()
        return loss.detach()

    def init(self, xs: Tensor, ys: Tensor, progress: Any = None) -> None:
        """Build l models; each trains t ~ U{1..T-1} full-batch steps (its counter starts at t)."""
        self.models, self.opts, self.counters = [], [], []
        xs, ys = xs.detach(), ys.detach()
        for idx in range(self.size):
            model, opt = self.new_model()
            t = int(torch.randint(1, self.T, (1,), generator=self.generator))
            self.models.append(model)
            self.opts.append(opt)
            self.counters.append(t)
            for _ in range(t):
                self.train_step(idx, xs, ys)
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
            self.train_step(idx, xs, ys)
            self.counters[idx] += 1
            if self.counters[idx] >= self.T:
                self._reinit(idx)
                self.counters[idx] = 0
        else:  # the reference's ModelPool.update, verbatim in behaviour
            if self.counters[idx] >= self.T:
                self._reinit(idx)
            else:
                self.counters[idx] += 1
                self.train_step(idx, xs, ys)

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


# --------------------------------------------------------------------------- fused eval features


def fused_embed(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """A no-grad eval-mode ``model.embed`` with each Conv2d+BatchNorm2d pair folded into one
    convolution and ReLUs applied in place. Falls back to ``model.embed`` when the trunk is
    not a plain ``nn.Sequential``. Equal to ``embed`` up to float rounding."""
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, nn.Sequential):
        return model.embed
    mods = list(trunk)
    ops: list[Callable[[Tensor], Tensor]] = []
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if (isinstance(m, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d) and not nxt.training
                and nxt.running_mean is not None and m.padding_mode == "zeros"):
            scale = torch.rsqrt(nxt.running_var + nxt.eps)
            if nxt.weight is not None:
                scale = scale * nxt.weight
            bias = m.bias if m.bias is not None else torch.zeros_like(nxt.running_mean)
            b = (bias - nxt.running_mean) * scale
            if nxt.bias is not None:
                b = b + nxt.bias
            w = m.weight * scale.view(-1, 1, 1, 1)  # keeps the weight's memory format
            ops.append(lambda x, w=w, b=b, m=m: F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups))
            i += 2
            continue
        if isinstance(m, nn.ReLU):
            ops.append(torch.relu_)
        else:
            ops.append(m)
        i += 1

    def run(x: Tensor) -> Tensor:
        inp = x
        for op in ops:
            x = torch.relu(x) if (op is torch.relu_ and x is inp) else op(x)
        return x

    return run


# --------------------------------------------------------------------------- the distiller


class Distiller:
    """All state of one KRR-ST run and its outer step.

    ``x_real01`` are the source's training images in [0, 1] (moved to ``device`` once);
    ``target`` has ``represent(x_norm) -> (N, d)``; ``build`` makes a fresh pool network
    (``ddbench.nn.Network`` with a ``d``-way linear head) from torch's global RNG.
    """

    def __init__(self, options: Any, *, x_real01: Tensor, mean, std, target: Any, build: Callable[[], nn.Module],
                 seed_generator: Callable[[int, str | None], torch.Generator],
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
        if options.num_images > n:
            raise OptionError(f"num_images={options.num_images} but the source has only {n} training images")
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
        """X_s = m random real training images (class-agnostic, seeded); Y_s = g(X_s)."""
        n = self.x_real.shape[0]
        idx = torch.randperm(n, generator=self.g_init)[: self.o.num_images].to(self.device)
        x01 = self.x_real[idx]
        x_norm = normalize(x01, self.mean, self.std)
        ys = self.target.represent(self._pool_input(x_norm), batch_size=self.batch_size).to(self.device, torch.float32)
        xs = x01.clone() if self.o.raw_pixel_init else x_norm
        self._set_synthetic(xs.contiguous(), ys.contiguous())
        return idx

    def _set_synthetic(self, xs: Tensor, ys: Tensor) -> None:
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
        from ddbench.augment import train_augment

        b = self.batch_size
        if self.pos + b > self.perm.numel():
            self.perm = torch.randperm(self.x_real.shape[0], generator=self.g_batch, device=self.g_batch.device)
            self.perm = self.perm.to(self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + b]
        self.pos += b
        x = train_augment(self.x_real[idx], self.g_aug)
        return self._pool_input((x - self.mean_t) / self.std_t)  # == ddbench.data.normalize

    def solve(self, K_ss: Tensor, ys: Tensor) -> Tensor:
        """alpha = (K_ss + lambda I)^-1 Y_s with lambda = ridge * trace(K_ss) (detached)."""
        lam = self.o.ridge * K_ss.detach().diagonal().sum()
        A = K_ss + lam * self.eye
        if self.o.solver == "cholesky":
            L, info = torch.linalg.cholesky_ex(A)
            # one scalar read: free on CPU, the step's only host sync on CUDA; a failed
            # factorisation must never reach the update
            if int(info) == 0:
                return torch.cholesky_solve(ys, L)
            self.cholesky_fallbacks += 1
        return torch.linalg.solve(A, ys)

    def step(self, phase: Callable[[str], contextlib.AbstractContextManager] = _nullphase) -> Tensor:
        """One outer iteration; returns the (detached, on-device) loss. ``phase(name)`` is
        entered around each part (the benchmark times them)."""
        o, xs, ys = self.o, self.xs, self.ys
        with phase("data"):
            xb = self.real_batch()
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
            K_ss = fs @ fs.T
            K_bs = fb @ fs.T
            pred = K_bs @ self.solve(K_ss, ys)
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
        self._set_synthetic(state["xs"].to(self.device), state["ys"].to(self.device))
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


# --------------------------------------------------------------------------- driver


def _check_losses(d: Distiller, start: int, ckpt_step: int | None, ckpt_dir: Any) -> None:
    """Raise DivergenceError if a loss in [start, d.step_count) is NaN/inf (one host sync)."""
    chunk = d.losses[start:d.step_count]
    if chunk.numel() == 0:
        return
    bad = ~torch.isfinite(chunk)
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0]) + start
        value = float(chunk[k - start])
        kept = (f"the last good checkpoint (step {ckpt_step}) is kept in {ckpt_dir}" if ckpt_step is not None
                else "no checkpoint was written")
        raise DivergenceError(
            f"KRR-ST loss became {value} at step {k + 1}; {kept}; lower outer_lr (now {d.o.outer_lr:g}) "
            f"or raise ridge (now {d.o.ridge:g})")


def fingerprint(options: Any, seed: int, source: Any, device: torch.device) -> dict[str, Any]:
    opts = options.to_dict()
    for k in ("log_every",):  # changes nothing but the progress display
        opts.pop(k, None)
    return json.loads(json.dumps({"options": opts, "seed": int(seed), "source": getattr(source, "content_hash", ""),
                                  "source_name": getattr(source, "name", ""), "device": device.type,
                                  "version": CHECKPOINT_VERSION}, default=str))


def arch_spec(options: Any) -> dict[str, Any]:
    return {"name": "convnet", "widths": [int(c) for c in options.arch_widths], "norm": str(options.arch_norm).lower(),
            "width": float(options.arch_width)}


def make_builder(options: Any, in_shape: tuple[int, int, int], out_dim: int) -> Callable[[], nn.Module]:
    from ddbench.plugins import registry

    arch = registry("architecture").get("convnet")
    spec = arch_spec(options)

    def build() -> nn.Module:
        return arch.build(in_shape, out_dim, width=spec["width"], widths=tuple(spec["widths"]), norm=spec["norm"])

    return build


def loss_summary(losses: list[float]) -> dict[str, Any]:
    if not losses:
        return {"n": 0}
    n = len(losses)
    tail = losses[-max(1, n // 10):]
    head = losses[: max(1, n // 10)]
    return {"n": n, "first": losses[0], "last": losses[-1], "min": min(losses),
            "mean_first_10pct": sum(head) / len(head), "mean_last_10pct": sum(tail) / len(tail)}


def distill(ctx: Any, source: Any, options: Any, *, method_name: str = "krrst", scaling: str | None = None):
    """Run KRR-ST on ``source`` and return the :class:`~ddbench.distilled.DistilledSet`."""
    from ddbench.distilled import DistilledSet
    from ddbench_plugins.targets.barlow_twins import get_target_model

    t_start = time.time()
    device = torch.device(ctx.device)
    target = get_target_model(ctx, source, options)
    if options.learn != "both":
        ctx.mark_diagnostic(f"ablation: learn={options.learn} (the paper learns images and targets)")
    in_shape = tuple(int(s) for s in source.x_train.shape[1:])
    build = make_builder(options, in_shape, int(target.feature_dim))
    d = Distiller(options, x_real01=source.x_train, mean=source.mean, std=source.std, target=target, build=build,
                  seed_generator=lambda off, dev: ctx.generator(off, dev), device=device)

    ckpt_dir = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir else None
    ckpt_path = ckpt_dir / CHECKPOINT_FILE if ckpt_dir else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(options, ctx.seed, source, device)
    resumed_from: int | None = None
    init_seconds = 0.0
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("fingerprint") != fp:
            ctx.log(f"krrst: ignoring a checkpoint made with other settings: {ckpt_path}")
        else:
            d.load_state_dict(state)
            init_seconds = float(state.get("init_seconds", 0.0))
            resumed_from = d.step_count
            ctx.log(f"krrst: resuming from step {d.step_count}/{options.steps} ({ckpt_path})")

    def save() -> None:
        if ckpt_path is None:
            return
        state = d.state_dict()
        state["fingerprint"] = fp
        state["init_seconds"] = init_seconds
        atomic_torch_save(state, ckpt_path)

    if resumed_from is None:
        t0 = time.time()
        d.init_synthetic()
        with ctx.progress(options.pool_size, f"krrst: pool of {options.pool_size} models") as bar:
            d.init_pool(lambda i, t: bar.advance(1, pretrain_steps=t))
        init_seconds = time.time() - t0
        save()
    last_ckpt: int | None = d.step_count if ckpt_path is not None else None

    total = int(options.steps)
    checked = d.step_count
    hook = _kill_hook()
    with ctx.progress(total, f"krrst: {total} outer steps") as bar:
        if d.step_count:
            bar.set(d.step_count)
        t0, since = time.time(), d.step_count
        while d.step_count < total:
            d.step()
            k = d.step_count
            if hook is not None and k == hook:
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            at_ckpt = options.checkpoint_every > 0 and k % options.checkpoint_every == 0 and k < total
            if k % options.log_every == 0 or at_ckpt or k == total:
                _check_losses(d, checked, last_ckpt, ckpt_dir)
                now = time.time()
                d.seconds += now - t0
                t0 = now
                running = float(d.losses[checked:k].mean())
                bar.advance(k - since, loss=running, lr=d.sched.get_last_lr()[0],
                            s_per_step=round(d.seconds / max(1, k), 3))
                since, checked = k, k
                if at_ckpt:
                    save()
                    last_ckpt = k

    losses = [float(v) for v in d.losses[:total].cpu()]
    images = d.xs.detach().cpu().contiguous()
    targets = d.ys.detach().cpu().float().contiguous()
    arch = arch_spec(options)
    arch.update({"feature_dim": int(d.pool.models[0].feature_dim) if d.pool.models else None,
                 "trunk_params": int(d.pool.models[0].trunk_parameters()) if d.pool.models else None,
                 "head": f"linear -> {int(target.feature_dim)}"})
    provenance = {
        "options": options.to_dict(),
        "arch": arch,
        "target_model": dict(ctx.extras.get("target_model", {})) or {
            "sha256": getattr(target, "sha256", ""), "feature_dim": int(target.feature_dim)},
        "target_dim": int(target.feature_dim),
        "loss": loss_summary(losses),
        "steps": total,
        "seconds": round(time.time() - t_start, 3),
        "distill_seconds": round(d.seconds, 3),
        "init_seconds": round(init_seconds, 3),
        "s_per_step": round(d.seconds / total, 4) if total else None,
        "resumed_from_step": resumed_from,
        "pool_reinits": d.pool.reinits,
        "cholesky_fallbacks": d.cholesky_fallbacks,
        "real_batch": d.batch_size,
        "device": str(device),
        "reference_behaviour": {"raw_pixel_init": bool(options.raw_pixel_init),
                                "reset_counter": bool(options.reset_counter)},
    }
    if scaling:
        provenance["scaling"] = scaling
    out = DistilledSet(images=images, targets=targets, label_kind="representation", recipe="representation_mse",
                       pixel_space="raw01" if options.raw_pixel_init else "normalized",
                       mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                       source=source.name, resolution=int(source.resolution), method=method_name,
                       provenance=provenance)
    if ctx.output_dir:
        write_outputs(Path(ctx.output_dir), out, losses)
    return out


def _kill_hook() -> int | None:
    """Tests only: ``DDBENCH_KRRST_KILL_AT_STEP=k`` SIGKILLs the process right after step k."""
    import os

    v = os.environ.get("DDBENCH_KRRST_KILL_AT_STEP")
    return int(v) if v else None


def write_outputs(folder: Path, distilled: Any, losses: list[float]) -> None:
    """``grid.png`` (up to 100 images), ``loss.png`` and ``loss.json`` into ``folder``."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loss.json").write_text(json.dumps({"step": list(range(1, len(losses) + 1)), "loss": losses}))

    px = distilled.pixels01()[:100]
    if px.shape[0]:
        n = px.shape[0]
        cols = min(10, n)
        rows = math.ceil(n / cols)
        c, h, w = px.shape[1:]
        grid = torch.ones(rows * (h + 1) + 1, cols * (w + 1) + 1, c)
        for i in range(n):
            r, q = divmod(i, cols)
            grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = px[i].permute(1, 2, 0)
        fig = Figure(figsize=(cols * 0.6 + 0.4, rows * 0.6 + 0.6), dpi=100)
        ax = fig.add_subplot()
        ax.imshow(grid.squeeze(-1).numpy() if c == 1 else grid.numpy(), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"KRR-ST: first {n} of {distilled.num_images} distilled images", fontsize=8)
        fig.savefig(folder / "grid.png", bbox_inches="tight")

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    if losses:
        steps = list(range(1, len(losses) + 1))
        k = max(1, len(losses) // 50)
        ax.plot(steps, losses, lw=0.5 if k > 1 else 1.0, alpha=0.4 if k > 1 else 1.0, label="loss")
        if k > 1:
            smooth = torch.tensor(losses).unfold(0, k, 1).mean(1).tolist()
            ax.plot(steps[k - 1:], smooth, lw=1.2, label=f"moving mean ({k})")
        ax.legend(fontsize=8)
    ax.set_xlabel("outer step")
    ax.set_ylabel("KRR MSE to target representations")
    ax.set_title("KRR-ST outer loss", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "loss.png")
