"""Training the target backbone: Barlow Twins on the unlabeled images (the paper), or the
supervised oracle (a diagnostic), through the toolkit's training loop.

Barlow Twins (Zbontar et al., ICML 2021, arXiv:2103.03230): two augmented views of each
image (``ddbench.toolkit.augment.barlow_twins_views``, normalised with the source
statistics) go through the backbone and a projector MLP (Linear-BN-ReLU, Linear-BN-ReLU,
Linear; all ``target_proj_dim`` wide, no biases, as facebookresearch/barlowtwins); the loss
is ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` with ``C`` the cross-correlation of
the two batch-standardised embeddings. The oracle puts a linear classifier where the
projector was and trains cross-entropy on one crop + flip view per image.

Training runs under ``torch.random.fork_rng`` seeded with ``target_seed``, so it never
moves the caller's global RNG. After every epoch a checkpoint (weights, optimiser, epoch,
losses, all RNG states; plain tensors, loaded with ``weights_only=True``) is written
atomically; a killed run resumes from it to bit-identical weights (same device and threads).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ddbench.errors import DataError

from .model import TARGET_VERSION, build_backbone
from .options import target_options_dict

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ddbench.data import PreparedData
    from ddbench.toolkit.nn import Network

CHECKPOINT_FILE = "barlow_twins.pt"


def build_projector(in_dim: int, proj_dim: int):
    """Barlow Twins' projector: Linear-BN-ReLU, Linear-BN-ReLU, Linear, all ``proj_dim`` wide."""
    from torch import nn

    p = int(proj_dim)
    return nn.Sequential(
        nn.Linear(int(in_dim), p, bias=False), nn.BatchNorm1d(p), nn.ReLU(),
        nn.Linear(p, p, bias=False), nn.BatchNorm1d(p), nn.ReLU(),
        nn.Linear(p, p, bias=False),
    )


def barlow_twins_loss(z1: "torch.Tensor", z2: "torch.Tensor", lambd: float, eps: float = 1e-5) -> "torch.Tensor":
    """``sum_i (1 - C_ii)^2 + lambd * sum_{i!=j} C_ij^2`` with ``C`` the cross-correlation of the
    batch-standardised embeddings (BatchNorm1d without affine in training mode)."""
    import torch

    n = z1.shape[0]

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    c = standardise(z1).T @ standardise(z2) / n
    diag = torch.diagonal(c)
    on_diag = (diag - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return on_diag + lambd * off_diag


def _make_optimizer(name: str, modules: Sequence[Any], lr: float, wd: float):
    import torch

    from ddbench.toolkit.lars import lars_sgd, param_groups

    if name == "adamw":
        groups = param_groups(modules, wd)
        for g in groups:
            g["weight_decay"] = g["wd"]
        return torch.optim.AdamW(groups, lr=lr)
    return lars_sgd(modules, lr, wd)


def _training_fingerprint(options: Any, n: int, in_shape: Sequence[int]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (the probe's settings do not matter)."""
    opts = target_options_dict(options)
    opts.pop("target_probe_epochs")
    return {"version": TARGET_VERSION, "options": opts, "n": int(n), "in_shape": [int(s) for s in in_shape]}


@dataclasses.dataclass
class TrainInfo:
    epochs: int
    resumed_from: int
    losses: list[float]
    train_seconds: float
    device: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def select_train_images(source: "PreparedData", options: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The training images and their labels: ``x_train``/``y_train``, or a seeded subset of
    ``target_max_images`` (the labels are read only by ``target_objective=supervised``)."""
    import torch

    x, y = source.x_train, source.y_train
    k = int(options.target_max_images)
    if 0 < k < x.shape[0]:
        g = torch.Generator()
        g.manual_seed(int(options.target_seed))
        idx = torch.randperm(x.shape[0], generator=g)[:k].sort().values
        x, y = x[idx], y[idx]
    return x, y


def train_target_model(
    x_train: "torch.Tensor",
    mean: Sequence[float],
    std: Sequence[float],
    options: Any,
    *,
    y_train: "torch.Tensor | None" = None,
    num_classes: int | None = None,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[int, str], Any] | None = None,
    log: Callable[[str], None] | None = None,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> tuple["Network", TrainInfo]:
    """Train a backbone on images ``x_train`` (float [0, 1], NCHW) with ``options.target_objective``:
    Barlow Twins on the images alone (labels are never read), or ``supervised`` (cross-entropy
    on ``y_train`` with ``num_classes`` classes).

    ``mean``/``std`` normalise the views (the source's statistics). With ``checkpoint_dir``
    a checkpoint is written after every epoch and a run finding one there resumes from it.
    ``progress`` is ``RunContext.progress``; ``on_epoch_end(epoch, mean_loss)`` is called
    after each epoch's checkpoint (tests raise from it to simulate a kill). Returns the
    backbone (eval mode, gradients off) and a :class:`TrainInfo`.
    """
    import torch
    import torch.nn.functional as F

    from ddbench.cache import atomic_torch_save, load_checkpoint
    from ddbench.data import normalize
    from ddbench.toolkit.augment import barlow_twins_views, train_augment
    from ddbench.toolkit.lars import lars_adapt
    from ddbench.toolkit.train import batches, fit, warmup_cosine_lr

    dev = torch.device(device)
    n = int(x_train.shape[0])
    supervised = options.target_objective == "supervised"
    if supervised:
        if y_train is None or int(y_train.shape[0]) != n:
            raise DataError("target_objective=supervised needs one label per training image (y_train)")
        num_classes = int(num_classes) if num_classes else int(y_train.max()) + 1
    in_shape = tuple(int(s) for s in x_train.shape[1:])
    batch = min(int(options.target_batch), n)
    if batch < 2:
        raise DataError(f"training the target model needs at least 2 training images, got {n}")
    steps_per_epoch = n // batch  # drop_last: the projector's BN and C need full batches
    epochs = int(options.target_epochs)
    total_steps = steps_per_epoch * epochs
    warmup_steps = int(round(float(options.target_warmup_epochs) * steps_per_epoch))
    peak_lr = float(options.target_lr)
    ckpt_path = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE
    fingerprint = _training_fingerprint(options, n, in_shape)
    say = log or (lambda msg: None)
    # channels_last is 20-30% cheaper on CPU (measured; README.md)
    fmt = torch.channels_last if dev.type == "cpu" else torch.contiguous_format

    fork = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(int(options.target_seed))
        backbone = build_backbone(options.target_arch, in_shape, options.target_width, options.target_stem_padding)
        if supervised:  # the head: a linear classifier instead of the projector
            projector = torch.nn.Linear(backbone.feature_dim, num_classes)
        else:
            projector = build_projector(backbone.feature_dim, options.target_proj_dim)
        backbone.to(dev, memory_format=fmt)
        projector.to(dev)
        optimizer = _make_optimizer(options.target_optimizer, [backbone, projector], options.target_lr, options.target_wd)
        view_gen = torch.Generator(device=dev)
        view_gen.manual_seed(int(options.target_seed) * 1_000_003 + 1)
        order_gen = torch.Generator()
        order_gen.manual_seed(int(options.target_seed) * 1_000_003 + 2)

        start_epoch, losses, seconds = 0, [], 0.0
        if ckpt_path is not None and ckpt_path.exists():
            state = load_checkpoint(ckpt_path)
            if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
                say(f"ignoring a target-model checkpoint made with other settings: {ckpt_path}")
            else:
                backbone.load_state_dict(state["backbone"])
                projector.load_state_dict(state["projector"])
                optimizer.load_state_dict(state["optimizer"])
                view_gen.set_state(state["view_gen"])
                order_gen.set_state(state["order_gen"])
                torch.set_rng_state(state["torch_rng"])
                if fork and "cuda_rng" in state:
                    torch.cuda.set_rng_state(state["cuda_rng"], fork[0])
                start_epoch, losses, seconds = int(state["epoch"]), list(state["losses"]), float(state["seconds"])
                say(f"resuming the target model from epoch {start_epoch}/{epochs} ({ckpt_path})")

        x_dev = x_train.to(dev, torch.float32)
        y_dev = y_train.to(dev, torch.long) if supervised else None
        scale, lambd = float(options.target_loss_scale), float(options.target_lambda)

        def data():
            for idx in batches(n, batch, order_gen, drop_last=True):
                idx = idx.to(dev)
                yield x_dev[idx], (y_dev[idx] if supervised else None)

        def forward(b) -> "torch.Tensor":
            xb, yb = b
            if supervised:
                v = normalize(train_augment(xb, view_gen), mean, std).contiguous(memory_format=fmt)
                loss = F.cross_entropy(projector(backbone.embed(v)), yb)
            else:
                v1, v2 = barlow_twins_views(xb, view_gen)
                v1 = normalize(v1, mean, std).contiguous(memory_format=fmt)
                v2 = normalize(v2, mean, std).contiguous(memory_format=fmt)
                loss = barlow_twins_loss(projector(backbone.embed(v1)), projector(backbone.embed(v2)), lambd)
            return loss * scale

        def end_of_epoch(epoch: int, mean_loss: float, epoch_seconds: float) -> None:
            nonlocal seconds
            losses.append(mean_loss)
            seconds += epoch_seconds
            if ckpt_path is not None:
                state = {
                    "fingerprint": fingerprint, "epoch": epoch, "losses": losses, "seconds": seconds,
                    "backbone": backbone.state_dict(), "projector": projector.state_dict(),
                    "optimizer": optimizer.state_dict(), "view_gen": view_gen.get_state(),
                    "order_gen": order_gen.get_state(), "torch_rng": torch.get_rng_state(),
                }
                if fork:
                    state["cuda_rng"] = torch.cuda.get_rng_state(fork[0])
                atomic_torch_save(state, ckpt_path)
            if on_epoch_end is not None:
                on_epoch_end(epoch, mean_loss)

        def diverged(step: int, value: float) -> str:
            epoch, i = divmod(step - 1, steps_per_epoch)
            return (f"{kind} loss became {value} at epoch {epoch + 1}, step {i + 1}; the last good checkpoint is "
                    f"kept in {checkpoint_dir}; lower target_lr (now {options.target_lr})")

        kind = "supervised (oracle)" if supervised else "Barlow Twins"
        backbone.train()
        projector.train()
        fit(forward, data(), optimizer, total_steps, start=start_epoch * steps_per_epoch,
            lr_at=lambda step: warmup_cosine_lr(step, total_steps, warmup_steps, peak_lr),
            before_step=(lambda: lars_adapt(optimizer)) if options.target_optimizer == "lars" else None,
            check_every=1, epoch_steps=steps_per_epoch, on_epoch=end_of_epoch, progress=progress,
            description=f"{kind} target ({options.target_arch} x{options.target_width:g})", diverged=diverged)

    backbone.eval().requires_grad_(False)
    backbone.to(memory_format=torch.contiguous_format)
    return backbone, TrainInfo(epochs=epochs, resumed_from=start_epoch, losses=losses,
                               train_seconds=round(seconds, 3), device=str(dev))
