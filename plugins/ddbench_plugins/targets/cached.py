"""The public calls: the target model for a source (trained once, then from the cache) and
the target model a distilled set was made with. Only this module knows the cache key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ddbench.errors import DataError, OptionError

from .model import TARGET_VERSION, TargetModel, load_target_model
from .options import TargetOptions, target_options_dict

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

CACHE_KIND = "target_model"
#: the leaderboard column every result made with a target model shows (``ctx.report``)
PROBE_LABEL = "target probe (val %)"
PROBE_DESCRIPTION = ("linear-probe top-1 % of the set's target model on the source's validation split "
                     "(the target's quality; '–' for sets without one)")


def target_config(options: Any, source: "PreparedData") -> dict[str, Any]:
    """The cache key of the target model: its options, the source's identity, the code version.

    The device is deliberately not part of it: a target trained on a GPU serves CPU runs
    too; its sha256 (recorded with every result) says exactly which weights were used.
    The objective is the ``algorithm`` field (so a Barlow Twins target keeps the key it had
    before ``target_objective`` existed).
    """
    opts = target_options_dict(options)
    opts.pop("target_objective")
    return {
        "kind": CACHE_KIND,
        "algorithm": str(options.target_objective),
        "version": TARGET_VERSION,
        "options": opts,
        "source": source.name,
        "source_hash": source.content_hash,
        "resolution": int(source.resolution),
    }


def get_target_model(ctx: "RunContext", source: "PreparedData", options: Any) -> TargetModel:
    """The target model for ``source`` under ``options`` (a :class:`TargetOptions` or a subclass):
    from the cache, or trained (resuming a killed training) and cached. Records it in
    ``ctx.extras["target_model"]`` and ``ctx.artifacts["target_model"]``."""
    from ddbench.cache import config_hash

    from . import training

    config = target_config(options, source)

    def create(out_dir: Path, ckpt_dir: Path) -> None:
        from .model import save_target_model, target_quality

        x, y = training.select_train_images(source, options)
        supervised = options.target_objective == "supervised"
        if supervised:
            ctx.log(f"training a SUPERVISED target model (diagnostic oracle, not KRR-ST) on {x.shape[0]} "
                    f"labelled {source.name} images ({options.target_arch} x{options.target_width:g}, "
                    f"{options.target_epochs} epochs)")
        else:
            ctx.log(f"training the Barlow Twins target model on {x.shape[0]} unlabeled {source.name} images "
                    f"({options.target_arch} x{options.target_width:g}, {options.target_epochs} epochs)")
        net, info = training.train_target_model(x, source.mean, source.std, options, y_train=y if supervised else None,
                                                num_classes=source.num_classes, device=ctx.device,
                                                checkpoint_dir=ckpt_dir, progress=ctx.progress, log=ctx.log)
        quality = target_quality(TargetModel(net), source, steps=int(options.target_probe_epochs))
        ctx.log(f"target model: linear probe {quality['linear_probe_val']:.2f}% (val), "
                f"{quality['linear_probe_test']:.2f}% (test)")
        save_target_model(out_dir, net, {
            "config": config, "config_hash": config_hash(config), "quality": quality, "train": info.to_dict(),
            "in_shape": list(source.x_train.shape[1:]), "feature_dim": int(net.feature_dim), "spec": net.spec,
            "mean": list(source.mean), "std": list(source.std), "n_train_images": int(x.shape[0]),
        })

    folder, _cached = ctx.cache.get_or_create(CACHE_KIND, config, create)
    model = load_target_model(folder, ctx.device)
    train = model.meta.get("train", {})
    ctx.extras["target_model"] = {
        "sha256": model.sha256, "config_hash": config_hash(config),
        "linear_probe_val": model.quality.get("linear_probe_val"),
        "linear_probe_test": model.quality.get("linear_probe_test"),
        "objective": options.target_objective,
        "epochs": train.get("epochs"), "arch": options.target_arch, "width": options.target_width,
        "train_seconds": train.get("train_seconds"),
    }
    ctx.artifacts["target_model"] = {"path": str(folder), "sha256": model.sha256}
    if model.quality.get("linear_probe_val") is not None:
        ctx.report(PROBE_LABEL, round(float(model.quality["linear_probe_val"]), 2), PROBE_DESCRIPTION)
    if options.target_objective != "barlow_twins":
        ctx.mark_diagnostic(f"{options.target_objective} target model (trained with the source's labels)")
    return model


def _candidate_folders(ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData") -> list[str]:
    """Where the set's target model may be, most specific first: the path its provenance
    records, the run's ``target_model`` artifact, the cache entry of its ``target_*`` options."""
    import dataclasses

    prov = distilled.provenance
    out: list[str] = []
    rec = prov.depends_on.get(CACHE_KIND)
    if rec is not None and rec.path:
        out.append(rec.path)
    art = (ctx.artifacts or {}).get("target_model")
    if isinstance(art, Mapping) and art.get("path"):
        out.append(str(art["path"]))
    opts = prov.options
    if opts:
        names = {f.name for f in dataclasses.fields(TargetOptions)}
        values = {k: v for k, v in opts.items() if k in names}
        if values:
            try:
                out.append(str(ctx.cache.path(CACHE_KIND, target_config(TargetOptions.resolve(values), source))))
            except OptionError:
                pass
    return out


def target_model_for_set(ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData") -> TargetModel | None:
    """The target model ``distilled`` was made with, loaded on ``ctx.device``, or None when it
    cannot be found.

    Looks at the path in ``provenance.depends_on["target_model"]``, then the run's
    ``ctx.artifacts["target_model"]``, then the cache entry of the set's ``target_*`` options;
    when the provenance records a sha256, only a model with those exact weights is returned.
    Raises DataError when the only model found is corrupt (its weights fail their sha256)."""
    rec = distilled.provenance.depends_on.get(CACHE_KIND)
    want = rec.sha256 if rec is not None else None
    broken: DataError | None = None
    for folder in _candidate_folders(ctx, distilled, source):
        if not Path(folder).exists():
            continue
        try:
            model = load_target_model(folder, ctx.device)
        except DataError as e:
            broken = broken or e
            continue
        if not want or model.sha256 == want:
            return model
    if broken is not None:
        raise broken
    return None
