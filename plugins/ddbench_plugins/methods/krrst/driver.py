"""A KRR-ST run, imported lazily by ``KRRST.distill``: the target model, the
:class:`~.step.Distiller`, checkpoints and resume, progress, divergence checks, and the
artifact (the distilled set, its provenance, a grid and a loss curve)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ddbench.cache import atomic_torch_save, load_checkpoint
from ddbench.errors import DivergenceError
from ddbench.types import ArchSpec, ArtifactRef, Provenance

from .step import CHECKPOINT_VERSION, Distiller

CHECKPOINT_FILE = "krrst.pt"

#: tests only: called with the step count after every outer step (the resume test sets it
#: in a child process to SIGKILL itself mid-run)
after_step: Callable[[int], None] | None = None


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


def fingerprint(options: Any, num_images: int, seed: int, source: Any, device: torch.device) -> dict[str, Any]:
    """What a checkpoint must match to be resumed."""
    opts = options.to_dict()
    for k in ("log_every",):  # changes nothing but the progress display
        opts.pop(k, None)
    return json.loads(json.dumps({"options": opts, "num_images": int(num_images), "seed": int(seed),
                                  "source": getattr(source, "content_hash", ""),
                                  "source_name": getattr(source, "name", ""), "device": device.type,
                                  "version": CHECKPOINT_VERSION}, default=str))


def arch_spec(options: Any) -> ArchSpec:
    """The pool's ConvNet, which is also the backbone a task should pre-train on this set."""
    return ArchSpec(name="convnet", kwargs={"widths": [int(c) for c in options.arch_widths],
                                           "norm": str(options.arch_norm).lower()}, width=float(options.arch_width))


def make_builder(options: Any, in_shape: tuple[int, int, int], out_dim: int) -> Callable[[], nn.Module]:
    from ddbench.plugins import registry

    spec = arch_spec(options)
    arch = registry("architecture").get(spec.name)

    def build() -> nn.Module:
        return arch.build(in_shape, out_dim, width=spec.width, widths=tuple(spec.kwargs["widths"]),
                          norm=spec.kwargs["norm"])

    return build


def loss_summary(losses: list[float]) -> dict[str, Any]:
    if not losses:
        return {"n": 0}
    n = len(losses)
    tail = losses[-max(1, n // 10):]
    head = losses[: max(1, n // 10)]
    return {"n": n, "first": losses[0], "last": losses[-1], "min": min(losses),
            "mean_first_10pct": sum(head) / len(head), "mean_last_10pct": sum(tail) / len(tail)}


def distill(ctx: Any, source: Any, options: Any, *, num_images: int, method_name: str = "krrst",
            scaling: str | None = None):
    """Run KRR-ST on ``source`` with a synthetic set of ``num_images`` images and return the
    :class:`~ddbench.distilled.DistilledSet`."""
    from ddbench.distilled import DistilledSet
    from ddbench_plugins.targets import get_target_model

    t_start = time.time()
    device = torch.device(ctx.device)
    target = get_target_model(ctx, source, options)
    if options.learn != "both":
        ctx.mark_diagnostic(f"ablation: learn={options.learn} (the paper learns images and targets)")
    in_shape = tuple(int(s) for s in source.x_train.shape[1:])
    build = make_builder(options, in_shape, int(target.feature_dim))
    d = Distiller(options, num_images=num_images, x_real01=source.x_train, mean=source.mean, std=source.std,
                  target=target, build=build, seed_generator=lambda off, dev: ctx.generator(off, dev), device=device)

    ckpt_dir = Path(ctx.checkpoint_dir) if ctx.checkpoint_dir else None
    ckpt_path = ckpt_dir / CHECKPOINT_FILE if ckpt_dir else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(options, num_images, ctx.seed, source, device)
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
    with ctx.progress(total, f"krrst: {total} outer steps") as bar:
        if d.step_count:
            bar.set(d.step_count)
        t0, since = time.time(), d.step_count
        while d.step_count < total:
            d.step()
            k = d.step_count
            if after_step is not None:
                after_step(k)
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
    arch = dataclasses.replace(
        arch_spec(options), feature_dim=int(d.pool.models[0].feature_dim) if d.pool.models else None,
        param_count=int(d.pool.models[0].trunk_parameters()) if d.pool.models else None,
        description=f"trunk params; head linear -> {int(target.feature_dim)}")
    target_record = dict(ctx.extras.get("target_model", {})) or {
        "sha256": getattr(target, "sha256", ""), "feature_dim": int(target.feature_dim)}
    if getattr(target, "path", ""):  # lets a task load this exact model (targets.target_model_for_set)
        target_record["path"] = target.path
    path = target_record.pop("path", "")
    sha = target_record.pop("sha256", "")
    details = {
        "num_images": int(num_images),
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
    provenance = Provenance(
        options=options.to_dict(), arch=arch,
        depends_on={"target_model": ArtifactRef(path=path, sha256=sha, info=target_record)},
        selection="initialised from KRR-ST's class-agnostic random draw of real training images "
                  "(ddbench.toolkit.subsets.initial_draw for the seed), then learned",
        scaling=scaling or "", seconds=details.pop("seconds"), details=details)
    # learned pixels may leave [0, 1]: the set declares no value range
    out = DistilledSet(images=images, targets=targets, label_kind="representation", recipe="representation_mse",
                       pixel_space="raw01" if options.raw_pixel_init else "normalized",
                       mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                       source=source.name, resolution=int(source.resolution), method=method_name,
                       provenance=provenance, value_range=None)
    if ctx.output_dir:
        write_outputs(Path(ctx.output_dir), out, losses)
    return out


def write_outputs(folder: Path, distilled: Any, losses: list[float]) -> None:
    """``grid.png`` (up to 100 images), ``loss.png`` and ``loss.json`` into ``folder``."""
    from ddbench.toolkit.plots import image_grid_png, loss_curve_png

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loss.json").write_text(json.dumps({"step": list(range(1, len(losses) + 1)), "loss": losses}))
    px = distilled.pixels01()[:100]
    image_grid_png(folder / "grid.png", px, f"KRR-ST: first {px.shape[0]} of {distilled.num_images} distilled images")
    loss_curve_png(folder / "loss.png", losses, xlabel="outer step", ylabel="KRR MSE to target representations",
                   title="KRR-ST outer loss")
