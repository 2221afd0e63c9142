"""The ``transfer`` task: pre-train on a distilled set, fine-tune on target datasets,
report top-1 accuracy (protocol.md §1.4; Lee et al., ICLR 2024, Tables 1-2). See README.md.

This module must not import torch (``ddbench ls`` imports it to list plugins); the
training code lives in :mod:`.recipes` (pre-training, reusable by other tasks) and
:mod:`.finetune`, imported inside :meth:`Transfer.evaluate`.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.errors import DataError, OptionError
from ddbench.interfaces import MetricValue, Task
from ddbench.options import Options, option
from ddbench_plugins.paper import paper_source_row

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

EVAL_SPLITS = ("test", "val")
FINE_GRAINED = ["aircraft", "cars", "cub", "dogs", "flowers"]
PREDICTOR = "finetuned-network top-1 on {split}"

#: seed offsets of the task's phases (pre-training uses recipes.OFFSET_*, 101-103)
OFFSET_FINETUNE_BASE = 10_000


@dataclasses.dataclass
class TransferOptions(Options):
    """Options of the transfer task (defaults: the paper, source CIFAR-100)."""

    targets: list[str] = option(["cifar100", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
                                "target datasets to fine-tune on (registry names); each is resized to the source "
                                "resolution")
    arch: str = option("", "architecture to pre-train and fine-tune; empty = the distilled set's backbone "
                           "(provenance['arch']), else default_arch")
    arch_widths: list[int] = option([], "channels per block for ConvNet-family architectures; empty = the set's / "
                                        "the default's")
    norm: str = option("", "norm layer (bn, in, none) for architectures that take one; empty = the set's / default")
    width: float = option(0.0, "width multiplier; 0 = the set's (or 1.0)")
    default_arch: str = option("convnet", "backbone when the set names none and `arch` is empty (Random, Kmeans, "
                                          "no pre-training); equals KRR-ST's backbone for the same preset")
    default_arch_widths: list[int] = option([128, 256, 512], "ConvNet widths of default_arch")
    default_norm: str = option("bn", "norm layer of default_arch")
    pretrain_epochs: int = option(1000, "epochs of the epoch-based recipes (representation_mse, hard_ce_dsa)")
    pretrain_steps: int = option(10_000, "iterations of the iteration-based recipe (learned_mse_adamw; paper: 10k, "
                                         "40k for TinyImageNet)")
    pretrain_warmup: int = option(500, "warm-up iterations of learned_mse_adamw")
    pretrain_batch: int = option(0, "pre-training batch size; 0 = the recipe's (256, or 500 for learned_mse_adamw)")
    finetune_steps: int = option(10_000, "fine-tuning iterations for general targets (CIFAR, TinyImageNet)")
    finetune_steps_fine_grained: int = option(5_000, "fine-tuning iterations for fine-grained targets "
                                                      "(names starting with one of `fine_grained`)")
    fine_grained: list[str] = option(FINE_GRAINED, "name prefixes of fine-grained targets")
    finetune_batch: int = option(256, "fine-tuning batch size (the reference code uses 128)")
    finetune_lr: float = option(0.01, "fine-tuning SGD learning rate (momentum 0.9, wd 5e-4, cosine to 0)")
    val_fraction: float = option(0.0, "fraction of each target's training split held out (seeded, class-balanced) "
                                      "as validation; 0 = train on all of it, as the paper")
    eval_split: str = option("test", "split the reported metrics come from: test, or val (for sizing presets; "
                                     "metrics are then named val/<target> and test is never touched)")
    eval_batch: int = option(500, "batch size of eval-mode prediction (does not change results)")

    def validate(self) -> None:
        super().validate()
        if not self.targets:
            raise OptionError("targets is empty: name at least one target dataset, e.g. targets=cifar10_32")
        if len(set(self.targets)) != len(self.targets):
            raise OptionError(f"targets {self.targets} repeat a name")
        if self.eval_split not in EVAL_SPLITS:
            raise OptionError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise OptionError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_split == "val" and self.val_fraction <= 0:
            raise OptionError("eval_split=val needs a validation split: set val_fraction > 0 (e.g. 0.1)")
        for name in ("pretrain_epochs", "pretrain_steps", "finetune_steps", "finetune_steps_fine_grained",
                     "finetune_batch", "eval_batch"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_warmup", "pretrain_batch", "width"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.finetune_lr > 0:
            raise OptionError(f"finetune_lr must be > 0, got {self.finetune_lr}")


# ------------------------------------------------------------------------------- presets

#: protocol §1.4 / the reference test.py, by source (targets, backbone, learned-label iterations)
PAPER_BY_SOURCE: dict[str, dict[str, Any]] = {
    "cifar100": {"targets": ["cifar100", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
                 "default_arch_widths": [128, 256, 512], "pretrain_steps": 10_000},
    "tinyimagenet": {"targets": ["tinyimagenet", "cifar10", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
                     "default_arch_widths": [64, 128, 256, 512], "pretrain_steps": 40_000},
    "imagenet64": {"targets": ["cifar10", "cifar100", "aircraft", "cars", "cub2011", "dogs", "flowers102"],
                   "default_arch_widths": [64, 128, 256, 512], "pretrain_steps": 10_000},
}
_PAPER_COMMON: dict[str, Any] = {
    "default_arch": "convnet", "default_norm": "bn", "pretrain_epochs": 1000, "pretrain_warmup": 500,
    "pretrain_batch": 0, "finetune_steps": 10_000, "finetune_steps_fine_grained": 5_000, "finetune_batch": 256,
    "finetune_lr": 0.01, "val_fraction": 0.0, "eval_split": "test",
}
#: the quick tier (protocol §4): sized on 2 CPU cores, see SCALING["quick"] and README.md
_QUICK: dict[str, Any] = {
    "targets": ["cifar10_32", "cub100_32", "flowers12_32"],
    "default_arch": "convnet", "default_arch_widths": [32, 64, 128], "default_norm": "bn",
    "pretrain_epochs": 300, "pretrain_steps": 1_000, "pretrain_warmup": 50, "pretrain_batch": 0,
    "finetune_steps": 300, "finetune_steps_fine_grained": 300, "finetune_batch": 128, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}
_SMOKE: dict[str, Any] = {
    "targets": ["flowers12_32"],
    "default_arch": "convnet", "default_arch_widths": [8, 16], "default_norm": "bn",
    "pretrain_epochs": 2, "pretrain_steps": 4, "pretrain_warmup": 1, "pretrain_batch": 0,
    "finetune_steps": 4, "finetune_steps_fine_grained": 4, "finetune_batch": 32, "finetune_lr": 0.01,
    "val_fraction": 0.1, "eval_split": "test",
}

#: how each preset departs from the paper; written into every record
SCALING: dict[str, str] = {
    "paper": "unscaled: protocol §1.4 (pre-train 1000 epochs / 10k-40k iterations; fine-tune 10k iterations "
             "general, 5k fine-grained, batch 256; full target training splits)",
    "quick": "scaled for 2 CPU cores (protocol §4): source tinyimagenet200_32_subset at 32 px, targets "
             "cifar10_32/cub100_32/flowers12_32, ConvNet 32-64-128 (BN; KRR-ST's quick pool), pre-train 300 "
             "epochs (paper 1000; learned labels 1k iterations, 50 warm-up), fine-tune 300 iterations at batch "
             "128 for every target (paper 10k/5k at 256), 10% of each target's training split held out as "
             "validation; measured on 2 CPU cores: ~30 s pre-training + ~15-20 s per target per seed (3-7x more while "
             "other jobs share the cores)",
    "smoke": "smoke test: a handful of steps on tiny networks; not a result",
}


def _paper_row(source: Any) -> tuple[str, dict[str, Any]]:
    """The §1.2 row (name, values) for a source; CIFAR-100's for unknown ones."""
    row = paper_source_row(source)
    return row, PAPER_BY_SOURCE[row]


def default_backbone(preset: str | None, source: Any = None) -> dict[str, Any]:
    """The backbone the task uses for sets that name none, for ``preset`` (and source)."""
    values = {**TransferOptions().to_dict(), **Transfer().preset_values(preset, source=source)}
    return {"name": values["default_arch"], "widths": list(values["default_arch_widths"]),
            "norm": values["default_norm"], "width": 1.0}


# ------------------------------------------------------------------------------- helpers


def set_backbone(distilled: "DistilledSet") -> dict[str, Any] | None:
    """The backbone a distilled set declares in ``provenance["arch"]``, as
    ``{"name", "kwargs", "width"}``, or None.

    Accepted forms: a name (``"convnet"``); or a dict with ``name`` (or ``arch``) and either
    ``kwargs`` or the keyword arguments inline (``widths``, ``norm``, ...), plus an optional
    ``width`` (or ``width_mult``) multiplier. Keys that describe rather than build
    (``trunk_params``, ``in_shape``, ``feature_dim``, ``param_count``, ``head``, ``spec``,
    ``description``) are ignored. KRR-ST writes ``{"name": "convnet", "widths": [...],
    "norm": "bn", "width": 1.0, "feature_dim": ..., "trunk_params": ..., "head": ...}``.
    """
    arch = (distilled.provenance or {}).get("arch")
    if not arch:
        return None
    if isinstance(arch, str):
        return {"name": arch, "kwargs": {}, "width": 1.0}
    if not isinstance(arch, Mapping):
        raise DataError(f"the distilled set's provenance['arch'] is {arch!r}; expected a name or a dict with 'name'")
    name = arch.get("name") or arch.get("arch")
    if not name:
        raise DataError(f"the distilled set's provenance['arch'] has no 'name': {dict(arch)!r}")
    descriptive = {"name", "arch", "kwargs", "width", "width_mult", "trunk_params", "in_shape", "feature_dim",
                   "param_count", "spec", "head", "description"}
    kwargs = dict(arch.get("kwargs") or {k: v for k, v in arch.items() if k not in descriptive})
    width = float(arch.get("width", arch.get("width_mult", 1.0)) or 1.0)
    return {"name": str(name), "kwargs": kwargs, "width": width}


def resolve_backbone(distilled: "DistilledSet", options: TransferOptions) -> dict[str, Any]:
    """(name, kwargs, width, where it came from) of the network to pre-train and fine-tune."""
    declared = set_backbone(distilled)
    if options.arch:
        if declared and declared["name"] == options.arch:
            base, origin = declared, "distilled set (provenance['arch'])"
        else:
            base, origin = {"name": options.arch, "kwargs": {}, "width": 1.0}, "task option arch"
    elif declared:
        base, origin = declared, "distilled set (provenance['arch'])"
    else:
        kwargs: dict[str, Any] = {}
        if options.default_arch_widths:
            kwargs["widths"] = list(options.default_arch_widths)
        if options.default_norm:
            kwargs["norm"] = options.default_norm
        base, origin = {"name": options.default_arch, "kwargs": kwargs, "width": 1.0}, "task default (default_arch)"
    kwargs = dict(base["kwargs"])
    if options.arch_widths:
        kwargs["widths"] = list(options.arch_widths)
    if options.norm:
        kwargs["norm"] = options.norm
    if "widths" in kwargs:
        kwargs["widths"] = [int(c) for c in kwargs["widths"]]
    width = float(options.width) if options.width else float(base["width"])
    return {"name": base["name"], "kwargs": kwargs, "width": width, "origin": origin}


def target_offset(name: str) -> int:
    """A per-target seed offset that does not depend on the target's position in the list."""
    return OFFSET_FINETUNE_BASE + (zlib.crc32(name.encode()) % 1_000_000) * 10


def is_fine_grained(name: str, prefixes: list[str]) -> bool:
    low = name.lower()
    return any(low.startswith(p.lower()) for p in prefixes)


def _check_set(distilled: "DistilledSet", source: "PreparedData") -> None:
    """Normalisation and pixel space travel with the set; check them against the source."""
    if distilled.source and distilled.source != source.name:
        raise DataError(f"the distilled set was made from {distilled.source!r} but the run's source is "
                        f"{source.name!r}; pass --source {distilled.source}")
    if int(distilled.resolution) != int(source.resolution):
        raise DataError(f"the distilled set is at {distilled.resolution} px but the source was prepared at "
                        f"{source.resolution} px")
    if distilled.label_kind == "none":
        if distilled.num_images:
            raise DataError(f"a set with label kind 'none' must be empty; this one has {distilled.num_images} images")
        return
    if distilled.num_images == 0:
        raise DataError(f"the distilled set from {distilled.method or '?'} is empty but its label kind is "
                        f"{distilled.label_kind!r}; only the 'none' reference may be empty")
    if distilled.pixel_space == "normalized":
        diff = max(max(abs(a - b) for a, b in zip(distilled.mean, source.mean)),
                   max(abs(a - b) for a, b in zip(distilled.std, source.std)))
        if diff > 1e-4:
            raise DataError(f"the distilled set was normalised with mean {list(distilled.mean)} / std "
                            f"{list(distilled.std)}, but the source's statistics are {list(source.mean)} / "
                            f"{list(source.std)}; it was made from a different preparation of {source.name}")


def _source_inputs(distilled: "DistilledSet", x01):
    """Source images in the pixel space the pre-trained network was trained in."""
    from ddbench.data import normalize

    if distilled.pixel_space == "raw01":
        return x01
    return normalize(x01, distilled.mean, distilled.std)


def _target_model_path(ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData") -> str | None:
    """Where the set's target model is: ``provenance["target_model"]["path"]``, else the
    run's ``target_model`` artifact, else the cache entry its ``target_*`` options map to."""
    from pathlib import Path

    prov = distilled.provenance or {}
    tm = prov.get("target_model")
    if isinstance(tm, Mapping) and tm.get("path"):
        return str(tm["path"])
    if isinstance(tm, str) and tm:
        return tm
    art = (ctx.artifacts or {}).get("target_model")
    if isinstance(art, Mapping) and art.get("path") and Path(art["path"]).is_dir():
        return str(art["path"])
    opts = prov.get("options")
    if isinstance(opts, Mapping):
        import dataclasses as dc

        from ddbench_plugins.targets.barlow_twins import CACHE_KIND, TargetOptions, target_config

        names = {f.name for f in dc.fields(TargetOptions)}
        values = {k: v for k, v in opts.items() if k in names}
        if values:
            try:
                config = target_config(TargetOptions.resolve(values), source)
            except OptionError:
                return None
            folder = ctx.cache.path(CACHE_KIND, config)
            if folder.is_dir():
                return str(folder)
    return None


# ------------------------------------------------------------------------------- the task


class Transfer(Task):
    """Pre-train on the distilled set (its declared recipe), fine-tune on each target, report
    top-1 % on the target's test split (protocol.md §1.4)."""

    name = "transfer"
    description = "pre-train on the distilled set, fine-tune on target datasets, top-1 % on their test splits"
    Options = TransferOptions
    version = "1"
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "smoke": _SMOKE,
        "quick": _QUICK,
        "paper": {**_PAPER_COMMON, **PAPER_BY_SOURCE["cifar100"]},
    }

    def preset_values(self, preset: str | None, source: Any = None, **context: Any) -> Mapping[str, Any]:
        """``paper`` picks the targets, backbone and learned-label length by ``source``
        (CIFAR-100, TinyImageNet or ImageNet-64 rows of protocol §1.2/§1.4)."""
        if preset == "paper" and source is not None:
            return {**_PAPER_COMMON, **_paper_row(source)[1]}
        return super().preset_values(preset, **context)

    def dependencies(self, options: TransferOptions) -> dict[str, Any]:
        """Each target dataset's identity on disk (path, size, mtime) and loader version, so
        a changed target file is never answered from a cached evaluation. Raises
        UnknownNameError for a target the registry lacks, before any work starts."""
        from ddbench import plugins

        out: dict[str, Any] = {}
        for name in options.targets:
            ds = plugins.get_dataset(name)
            ident = getattr(ds, "identity", None)
            out[name] = {"identity": ident() if callable(ident) else {"location": ds.locate()},
                         "loader": f"{type(ds).__module__}.{type(ds).__qualname__}",
                         "version": str(getattr(ds, "version", ""))}
        return out

    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: TransferOptions) -> dict[str, MetricValue]:
        import copy
        import time

        from ddbench import plugins
        from ddbench.data import normalize, prepare

        from . import finetune as ft
        from . import recipes

        _check_set(distilled, source)
        for t in options.targets:  # fail before any training on a name the registry lacks
            plugins.registry("dataset").get(t)
        backbone = resolve_backbone(distilled, options)
        scaling = SCALING.get(ctx.preset or "", "custom options")
        split = options.eval_split
        resolution = int(distilled.resolution)

        # ---- pre-training (once per seed) ----
        pre_log: dict[str, Any] = {}
        t0 = time.time()
        if distilled.label_kind == "none":
            net = recipes.build_network(ctx, backbone["name"], backbone["kwargs"], backbone["width"], resolution,
                                        None)
            pre_log = {"skipped": True, "reason": "label kind 'none': the no-pre-training reference (random init)"}
        else:
            net = recipes.pretrain(ctx, distilled, backbone["name"], backbone["kwargs"], backbone["width"], options,
                                   log=pre_log)
        pre_log["arch"] = {k: backbone[k] for k in ("name", "kwargs", "width", "origin")}
        metrics: dict[str, MetricValue] = {}

        # ---- imitation error of representation sets, on held-out source images ----
        if distilled.label_kind == "representation":
            imitation = self._imitation(ctx, distilled, source, net, options, pre_log)
            if imitation is not None:
                metrics["imitation_mse"] = imitation
        pre_log["seconds_total"] = round(time.time() - t0, 3)
        ctx.extras["pretrain"] = pre_log

        spec = dict(net.spec)
        common = {
            "arch": spec, "arch_origin": backbone["origin"], "trunk_params": int(net.trunk_parameters()),
            "norm": spec.get("norm", backbone["kwargs"].get("norm")), "recipe": distilled.recipe,
            "label_kind": distilled.label_kind, "budget": distilled.budget(), "pixel_space": distilled.pixel_space,
            "pretrain_steps": int(pre_log.get("steps", 0)), "pretrain_epochs": int(pre_log.get("epochs", 0)),
            "scaling": scaling, "accuracy_unit": "percent (0-100)",
        }
        per_target: dict[str, Any] = {}

        # ---- fine-tuning, one target at a time ----
        for t_name in options.targets:
            t1 = time.time()
            target = prepare(t_name, resolution, val_fraction=options.val_fraction, cache=ctx.cache)
            if split == "val" and len(target.y_val) == 0:
                raise DataError(f"target {t_name} has no validation images at val_fraction={options.val_fraction}")
            fg = is_fine_grained(t_name, options.fine_grained)
            steps = options.finetune_steps_fine_grained if fg else options.finetune_steps
            tnet = copy.deepcopy(net)  # every target starts from the same pre-trained network
            x_train = normalize(target.x_train, target.mean, target.std)
            ft_log = ft.finetune(ctx, tnet, x_train, target.y_train, target.num_classes, steps=steps,
                                 batch_size=options.finetune_batch, lr=options.finetune_lr,
                                 offset=target_offset(t_name), description=f"fine-tune on {t_name}")
            val_acc = ft.accuracy(tnet, normalize(target.x_val, target.mean, target.std), target.y_val,
                                  options.eval_batch) if len(target.y_val) else None
            if split == "test":
                value = ft.accuracy(tnet, normalize(target.x_test, target.mean, target.std), target.y_test,
                                    options.eval_batch)
                key = t_name
            else:
                value, key = float(val_acc), f"val/{t_name}"
            info = {"n_train": len(target.y_train), "n_val": len(target.y_val), "n_test": len(target.y_test),
                    "num_classes": target.num_classes, "resolution": target.resolution,
                    "resized": bool(target.info.get("resized")), "mean": list(target.mean), "std": list(target.std),
                    "content_hash": target.content_hash, "fine_grained": fg}
            metrics[key] = MetricValue(
                value=float(value), higher_is_better=True, predictor=PREDICTOR.format(split=split),
                extra={**common, "split": split, "val_accuracy": val_acc, "finetune_steps": int(steps),
                       "finetune": ft_log, "target": info, "seconds": round(time.time() - t1, 3)})
            per_target[t_name] = {"val_accuracy": val_acc, "steps": int(steps), "loss_last": ft_log["loss_last"],
                                  "seconds": round(time.time() - t1, 3)}
            del tnet
        ctx.extras["transfer"] = {"scaling": scaling, "eval_split": split, "targets": per_target,
                                  "arch": spec, "trunk_params": int(net.trunk_parameters())}
        return metrics

    def _imitation(self, ctx, distilled, source, net, options, log) -> MetricValue | None:
        """MSE between the pre-trained network's head output and the target model's
        representations of the source's validation images (never its test images)."""
        import torch

        from ddbench_plugins.targets.barlow_twins import load_target_model

        from . import finetune as ft

        path = _target_model_path(ctx, distilled, source)
        if not path:
            ctx.log("transfer: cannot find the representation set's target model (provenance['target_model'], "
                    "the run's artifacts, the cache); imitation_mse skipped")
            log["imitation_skipped"] = "target model not found"
            return None
        if len(source.y_val) == 0:
            log["imitation_skipped"] = "the source has no validation split"
            return None
        try:
            target = load_target_model(path, ctx.device)
        except DataError as e:
            ctx.log(f"transfer: cannot load the target model for imitation_mse ({e}); skipped")
            log["imitation_skipped"] = str(e)
            return None
        recorded = distilled.provenance.get("target_model")
        want = recorded.get("sha256") if isinstance(recorded, Mapping) else None
        if want and want != target.sha256:
            ctx.log(f"transfer: the target model at {path} ({target.sha256[:12]}) is not the one the set was "
                    f"distilled with ({str(want)[:12]}); imitation_mse skipped")
            log["imitation_skipped"] = f"target model sha256 mismatch: {target.sha256} != {want}"
            return None
        mean, std = target.meta.get("mean", source.mean), target.meta.get("std", source.std)
        reps = target.represent_pixels(source.x_val, mean, std).cpu()
        out = ft.predict(net, _source_inputs(distilled, source.x_val), options.eval_batch)
        if out.shape != reps.shape:
            raise DataError(f"imitation_mse: the network outputs {tuple(out.shape[1:])} but the target model gives "
                            f"{tuple(reps.shape[1:])}-d representations")
        mse = float(torch.mean((out - reps) ** 2))
        # the MSE of predicting every image by the mean representation: imitation_mse / this < 1 beats it
        baseline = float(torch.mean((reps - reps.mean(0, keepdim=True)) ** 2))
        log["imitation"] = {"mse": mse, "variance_of_targets": baseline, "n_images": int(len(source.y_val)),
                            "target_sha256": target.sha256}
        return MetricValue(value=mse, higher_is_better=False,
                           predictor="pre-trained network head vs target model, MSE on source val",
                           extra={"split": "source val", "n_images": int(len(source.y_val)),
                                  "target_sha256": target.sha256, "variance_of_targets": baseline,
                                  "relative": mse / baseline if baseline > 0 else None})


@hookimpl
def ddbench_register_tasks(register):
    register(Transfer())
