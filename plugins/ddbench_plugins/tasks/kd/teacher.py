"""The teacher of the ``kd`` task: a classifier of ``teacher_data`` trained once by ddbench
(the reference repo ships only a checkpoint) and cached, or a user's safetensors file.

Artifact (cache kind ``kd_teacher``): ``teacher.safetensors`` (the whole network's state,
head included) and ``teacher.json`` (config, config hash, sha256 of the weights, test and
validation accuracy in eval mode, training seconds and epochs, the mean/std the teacher's
inputs are normalised with). The key holds the teacher options, the teacher data's name,
content hash and resolution, and :data:`TEACHER_VERSION` -- never the device.

Training (ddbench's choice of a standard recipe): SGD lr ``teacher_lr`` momentum 0.9,
weight decay ``teacher_wd``, batch ``teacher_batch``, cosine to 0 per iteration,
crop(pad 4) + flip, cross-entropy, on the training split minus the held-out validation
split. After every epoch a checkpoint (weights, optimiser, RNG states) goes into the
``.partial`` folder; a killed training resumes from it to the same weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ddbench.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.toolkit.nn import Network

    from .options import KDOptions

CACHE_KIND = "kd_teacher"
#: bump when a change alters the trained weights or their accuracy numbers; part of the cache key
TEACHER_VERSION = "1"
WEIGHTS_FILE = "teacher.safetensors"
META_FILE = "teacher.json"
CHECKPOINT_FILE = "teacher.pt"
#: the leaderboard column every kd result shows
REPORT_LABEL = "teacher test %"
REPORT_DESCRIPTION = "top-1 % of the KD teacher on teacher_data's test split (eval mode)"


class Teacher:
    """A frozen teacher: ``net`` (with its classifier head), the ``mean``/``std`` its inputs are
    normalised with, ``sha256`` of its weights, and what is known of it (``meta``)."""

    def __init__(self, net: "Network", mean, std, *, sha256: str, meta: dict[str, Any], path: str):
        net.requires_grad_(False)
        self.net = net
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.sha256 = sha256
        self.meta = meta
        self.path = path


def teacher_config(options: "KDOptions", data: "PreparedData") -> dict[str, Any]:
    """The cache key of a trained teacher (the device is deliberately not part of it)."""
    return {"kind": CACHE_KIND, "version": TEACHER_VERSION, "options": options.teacher_options(),
            "data": data.name, "data_hash": data.content_hash, "resolution": int(data.resolution),
            "num_classes": int(data.num_classes)}


def build_teacher(options: "KDOptions", resolution: int, num_classes: int) -> "Network":
    """A fresh teacher network (uses torch's global RNG)."""
    from ddbench import plugins

    arch = plugins.registry("architecture").get(options.teacher_arch)
    return arch.build((3, int(resolution), int(resolution)), int(num_classes), width=float(options.teacher_width))


def _fingerprint(options: "KDOptions", data: "PreparedData") -> dict[str, Any]:
    return json.loads(json.dumps(teacher_config(options, data)))


def train_teacher(data: "PreparedData", options: "KDOptions", *, device: str = "cpu",
                  checkpoint_dir: str | Path | None = None,
                  progress: Callable[[int, str], Any] | None = None, log: Callable[[str], None] | None = None,
                  on_epoch_end: Callable[[int, float], None] | None = None) -> tuple["Network", dict[str, Any]]:
    """Train the teacher on ``data.x_train``/``y_train`` (the only place the task reads the
    teacher data's training images); resume from ``checkpoint_dir`` when a matching checkpoint
    is there. ``on_epoch_end(epoch, mean_loss)`` runs after each epoch's checkpoint (tests
    raise from it to simulate a kill). Returns the network (eval mode) and a summary."""
    import torch
    import torch.nn.functional as F

    from ddbench.cache import atomic_torch_save, load_checkpoint
    from ddbench.data import normalize
    from ddbench.toolkit.augment import train_augment
    from ddbench.toolkit.train import batches, fit, steps_per_epoch, warmup_cosine_lr

    dev = torch.device(device)
    x, y = data.x_train, data.y_train
    n = int(x.shape[0])
    if n < 2:
        raise DataError(f"teacher_data {data.name} has {n} training images; the teacher needs at least 2")
    batch = min(int(options.teacher_batch), n)
    per = steps_per_epoch(n, batch)
    epochs = int(options.teacher_epochs)
    total = per * epochs
    say = log or (lambda msg: None)
    fmt = torch.channels_last if dev.type == "cpu" else torch.contiguous_format  # ~15% cheaper on CPU (measured)
    ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    fingerprint = _fingerprint(options, data)
    seed = int(options.teacher_seed)
    fork = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(seed)
        net = build_teacher(options, data.resolution, data.num_classes).to(dev, memory_format=fmt)
        opt = torch.optim.SGD(net.parameters(), lr=float(options.teacher_lr), momentum=0.9,
                              weight_decay=float(options.teacher_wd))
        order_g = torch.Generator()
        order_g.manual_seed(seed * 1_000_003 + 1)
        aug_g = torch.Generator(device=dev)
        aug_g.manual_seed(seed * 1_000_003 + 2)
        start, losses, seconds = 0, [], 0.0
        if ckpt is not None and ckpt.exists():
            state = load_checkpoint(ckpt)
            if state.get("fingerprint") != fingerprint:
                say(f"ignoring a teacher checkpoint made with other settings: {ckpt}")
            else:
                net.load_state_dict(state["net"])
                opt.load_state_dict(state["optimizer"])
                order_g.set_state(state["order_g"])
                aug_g.set_state(state["aug_g"])
                start, losses, seconds = int(state["epoch"]), list(state["losses"]), float(state["seconds"])
                say(f"resuming the KD teacher from epoch {start}/{epochs} ({ckpt})")
        xd, yd = x.to(dev, torch.float32), y.to(dev, torch.long)
        mean, std = data.mean, data.std

        def batches_():
            for idx in batches(n, batch, order_g):
                idx = idx.to(dev)
                yield xd[idx], yd[idx]

        def forward(b):
            xb, yb = b
            with torch.no_grad():
                xb = normalize(train_augment(xb, aug_g), mean, std).contiguous(memory_format=fmt)
            return F.cross_entropy(net(xb), yb)

        def end_of_epoch(epoch: int, mean_loss: float, epoch_seconds: float) -> None:
            nonlocal seconds
            losses.append(mean_loss)
            seconds += epoch_seconds
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                atomic_torch_save({"fingerprint": fingerprint, "epoch": epoch, "losses": losses, "seconds": seconds,
                                   "net": net.state_dict(), "optimizer": opt.state_dict(),
                                   "order_g": order_g.get_state(), "aug_g": aug_g.get_state()}, ckpt)
            if on_epoch_end is not None:
                on_epoch_end(epoch, mean_loss)

        lr = float(options.teacher_lr)
        net.train()
        fit(forward, batches_(), opt, total, start=start * per, lr_at=lambda step: warmup_cosine_lr(step, total, 0, lr),
            check_every=1, epoch_steps=per, on_epoch=end_of_epoch, progress=progress,
            description=f"KD teacher ({options.teacher_arch} x{options.teacher_width:g} on {data.name})",
            diverged=lambda step, v: f"the KD teacher's loss became {v} at step {step}; lower teacher_lr "
                                     f"(now {options.teacher_lr})")
    net.eval()
    net.to(memory_format=torch.contiguous_format)
    return net, {"epochs": epochs, "resumed_from": start, "losses": losses, "train_seconds": round(seconds, 3),
                 "n_train": n, "steps_per_epoch": per, "device": str(dev)}


def teacher_accuracy(net: "Network", x01, y, mean, std, batch: int = 500) -> float | None:
    from ddbench.data import normalize
    from ddbench.toolkit import finetune as ft

    if len(y) == 0:
        return None
    return round(float(ft.accuracy(net, normalize(x01, mean, std), y, batch)), 3)


def save_teacher(folder: Path, net: "Network", meta: dict[str, Any]) -> str:
    from safetensors.torch import save_file

    from ddbench.distilled import sha256_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    # one metadata key only: a multi-key map is written in a per-process order (the sha256 would vary)
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": f"ddbench-kd-teacher/{TEACHER_VERSION}"})
    sha = sha256_file(folder / WEIGHTS_FILE)
    (folder / META_FILE).write_text(json.dumps({**meta, "sha256": sha}, indent=2, sort_keys=True, default=str))
    return sha


def _read_weights(path: Path, what: str) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError(f"{what} {path} does not exist (or is not a file); give the path to a .safetensors file "
                        f"with -o task.teacher_checkpoint=PATH, or leave it empty to train the teacher")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for truncated / non-safetensors files
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{what} {path} is not a readable safetensors file ({first}); it is truncated or corrupt: "
                        f"save the teacher's state_dict again with safetensors.torch.save_file, or leave "
                        f"teacher_checkpoint empty to train the teacher") from None


def load_weights_into(net: "Network", path: Path, what: str, hint: str) -> None:
    """Load a safetensors state dict into ``net`` strictly; a missing, corrupt or mis-shaped
    file is a one-line DataError naming the file and what to do."""
    state = _read_weights(path, what)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(own[k].shape)} expected)")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise DataError(f"{what} {path} does not fit {hint}: {'; '.join(parts)}; pass a checkpoint of that network, "
                        f"or set teacher_arch/teacher_width to the checkpoint's")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_teacher(folder: str | Path, device: str = "cpu") -> Teacher:
    """A cached teacher, its weights checked against their sha256."""
    import torch

    from ddbench.distilled import sha256_file

    from .options import KDOptions

    folder = Path(folder)
    weights, meta_path = folder / WEIGHTS_FILE, folder / META_FILE
    if not weights.exists() or not meta_path.exists():
        raise DataError(f"no KD teacher at {folder} (expected {WEIGHTS_FILE} and {META_FILE}); delete the folder "
                        f"to retrain")
    meta = json.loads(meta_path.read_text())
    sha = sha256_file(weights)
    if sha != meta.get("sha256"):
        raise DataError(f"KD teacher weights {weights} do not match their recorded sha256 ({sha[:12]} != "
                        f"{str(meta.get('sha256'))[:12]}); delete {folder} to retrain")
    o = meta["config"]["options"]
    opts = KDOptions.resolve({"teacher_arch": o["arch"], "teacher_width": o["width"]})
    with torch.random.fork_rng(devices=[]):
        net = build_teacher(opts, meta["config"]["resolution"], meta["config"]["num_classes"])
    load_weights_into(net, weights, "the cached KD teacher", f"{o['arch']} x{o['width']:g}")
    net.to(device).eval()
    return Teacher(net, meta["mean"], meta["std"], sha256=sha, meta=meta, path=str(folder))


def user_teacher(options: "KDOptions", data: "PreparedData", device: str = "cpu") -> Teacher:
    """The teacher in ``options.teacher_checkpoint``: built as ``teacher_arch`` x ``teacher_width``
    with a ``data``-sized head; its inputs are normalised with the file's ``mean``/``std``
    metadata (JSON lists) when it has them, else with ``data``'s training statistics."""
    import torch
    from safetensors import safe_open

    from ddbench.distilled import sha256_file

    path = Path(options.teacher_checkpoint).expanduser()
    hint = (f"teacher_arch={options.teacher_arch} x{options.teacher_width:g} with a {data.num_classes}-way head "
            f"at {data.resolution} px")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_teacher(options, data.resolution, data.num_classes)
    load_weights_into(net, path, "the teacher checkpoint", hint)
    mean, std, origin = data.mean, data.std, f"{data.name}'s training statistics (the file has no mean/std metadata)"
    with safe_open(str(path), framework="pt") as f:
        extra = f.metadata() or {}
    try:
        if "mean" in extra and "std" in extra:
            mean, std = json.loads(extra["mean"]), json.loads(extra["std"])
            origin = "the file's metadata"
    except ValueError:
        raise DataError(f"the teacher checkpoint {path} has mean/std metadata that is not JSON "
                        f"({extra.get('mean')!r}, {extra.get('std')!r}); write them as JSON lists") from None
    if len(mean) != 3 or len(std) != 3 or any(not float(s) > 0 for s in std):
        raise DataError(f"the teacher checkpoint {path} has mean {mean} / std {std}; give 3 values each, std > 0")
    net.to(device).eval()
    meta = {"source": "user checkpoint", "path": str(path), "normalisation": origin,
            "config": {"options": {"arch": options.teacher_arch, "width": float(options.teacher_width)},
                       "data": data.name, "resolution": int(data.resolution), "num_classes": int(data.num_classes)}}
    return Teacher(net, mean, std, sha256=sha256_file(path), meta=meta, path=str(path))


def obtain_teacher(ctx: "RunContext", data: "PreparedData", options: "KDOptions",
                   on_epoch_end: Callable[[int, float], None] | None = None) -> Teacher:
    """The teacher for ``data`` under ``options``: the user's checkpoint, or the cached one
    (trained here the first time, resuming a killed training). Records it in ``ctx``."""
    from ddbench.cache import config_hash

    if options.teacher_checkpoint:
        teacher = user_teacher(options, data, ctx.device)
        config = teacher.meta["config"]
        teacher.meta["test_accuracy"] = teacher_accuracy(teacher.net, data.x_test, data.y_test, teacher.mean,
                                                         teacher.std)
        teacher.meta["val_accuracy"] = teacher_accuracy(teacher.net, data.x_val, data.y_val, teacher.mean,
                                                        teacher.std)
    else:
        config = teacher_config(options, data)

        def create(out: Path, ckpt: Path) -> None:
            ctx.log(f"training the KD teacher ({options.teacher_arch} x{options.teacher_width:g}, "
                    f"{options.teacher_epochs} epochs) on {len(data.y_train)} {data.name} training images")
            t0 = time.time()
            net, info = train_teacher(data, options, device=ctx.device, checkpoint_dir=ckpt, progress=ctx.progress,
                                      log=ctx.log, on_epoch_end=on_epoch_end)
            test = teacher_accuracy(net, data.x_test, data.y_test, data.mean, data.std)
            val = teacher_accuracy(net, data.x_val, data.y_val, data.mean, data.std)
            ctx.log(f"KD teacher: {test}% test, {val}% val after {info['epochs']} epochs ({info['train_seconds']:.0f} s)")
            save_teacher(out, net, {
                "config": config, "config_hash": config_hash(config), "test_accuracy": test, "val_accuracy": val,
                "train": info, "train_seconds": info["train_seconds"], "epochs": info["epochs"],
                "wall_seconds": round(time.time() - t0, 3), "mean": list(data.mean), "std": list(data.std),
                "spec": dict(net.spec), "params": int(sum(p.numel() for p in net.parameters())),
                "n_train": int(len(data.y_train)), "n_val": int(len(data.y_val)), "n_test": int(len(data.y_test)),
                "recipe": "ddbench's choice (the reference ships only a checkpoint): SGD m 0.9, cosine per "
                          "iteration, crop(pad 4)+flip, cross-entropy"})

        folder, cached = ctx.cache.get_or_create(CACHE_KIND, config, create)
        teacher = load_teacher(folder, ctx.device)
        teacher.meta["cached"] = cached
    meta = teacher.meta
    ctx.extras["kd_teacher"] = {
        "sha256": teacher.sha256, "config_hash": config_hash(config), "path": teacher.path,
        "test_accuracy": meta.get("test_accuracy"), "val_accuracy": meta.get("val_accuracy"),
        "train_seconds": meta.get("train_seconds"), "epochs": meta.get("epochs"), "arch": options.teacher_arch,
        "width": float(options.teacher_width), "data": data.name, "mean": list(teacher.mean),
        "std": list(teacher.std), "user_checkpoint": bool(options.teacher_checkpoint),
        "cached": meta.get("cached"),
    }
    ctx.artifacts["kd_teacher"] = {"path": teacher.path, "sha256": teacher.sha256}
    if meta.get("test_accuracy") is not None:
        ctx.report(REPORT_LABEL, round(float(meta["test_accuracy"]), 2), REPORT_DESCRIPTION)
    return teacher
