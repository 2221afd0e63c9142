"""Pre-train on a distilled set, then fine-tune on labelled targets: the shared body of every
task that evaluates a set by transfer (``transfer``, ``arch_generalization``).

Protocol §1.4 (the reference code, github.com/db-Lee/selfsup_dd @ 4beb4b1, ``test.py``):
one network is pre-trained per seed with the set's recipe (:mod:`.recipes`), then every
target starts from a copy of it, gets a fresh head and is fine-tuned (:mod:`.finetune`).
The options are read by name, so any task whose options have these fields can use it:
``targets``, ``val_fraction``, ``fine_grained``, ``finetune_steps``,
``finetune_steps_fine_grained``, ``finetune_batch``, ``finetune_lr``, ``eval_batch`` and
the recipe lengths :func:`ddbench.toolkit.recipes.pretrain` reads.
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any

from ddbench.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet
    from ddbench.toolkit.nn import Network

#: seed offsets of the fine-tuning phase (pre-training uses recipes.OFFSET_*, 101-103)
OFFSET_FINETUNE_BASE = 10_000


def target_offset(name: str) -> int:
    """A per-target seed offset that does not depend on the target's position in the list."""
    return OFFSET_FINETUNE_BASE + (zlib.crc32(name.encode()) % 1_000_000) * 10


def is_fine_grained(name: str, prefixes: list[str]) -> bool:
    low = name.lower()
    return any(low.startswith(p.lower()) for p in prefixes)


def set_backbone(distilled: "DistilledSet") -> dict[str, Any] | None:
    """The backbone a distilled set declares (``provenance.arch``, an
    :class:`~ddbench.types.ArchSpec`), as ``{"name", "kwargs", "width"}``, or None."""
    arch = distilled.provenance.arch
    if arch is None:
        return None
    return {"name": arch.name, "kwargs": dict(arch.kwargs), "width": float(arch.width)}


def resolve_backbone(distilled: "DistilledSet", options: Any) -> dict[str, Any]:
    """(name, kwargs, width, where it came from) of the network to pre-train: the options'
    ``arch`` if set, else the set's declared backbone, else the options' ``default_arch``
    (with ``default_arch_widths``/``default_norm``); ``arch_widths``, ``norm`` and ``width``
    override the chosen one's."""
    declared = set_backbone(distilled)
    if options.arch:
        if declared and declared["name"] == options.arch:
            base, origin = declared, "distilled set (provenance.arch)"
        else:
            base, origin = {"name": options.arch, "kwargs": {}, "width": 1.0}, "task option arch"
    elif declared:
        base, origin = declared, "distilled set (provenance.arch)"
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


def dataset_dependencies(names: list[str]) -> dict[str, Any]:
    """Each named dataset's identity on disk (path, size, mtime) and loader version: what a
    task's ``dependencies`` returns so a changed target file is never answered from a cached
    evaluation. Raises UnknownNameError for a name the registry lacks. No torch."""
    from ddbench import plugins

    out: dict[str, Any] = {}
    for name in names:
        ds = plugins.get_dataset(name)
        ident = getattr(ds, "identity", None)
        out[name] = {"identity": ident() if callable(ident) else {"location": ds.locate()},
                     "loader": f"{type(ds).__module__}.{type(ds).__qualname__}",
                     "version": str(getattr(ds, "version", ""))}
    return out


def check_origin(distilled: "DistilledSet", source: "PreparedData") -> None:
    """The set was made from the run's source, at the resolution the source was prepared at."""
    if distilled.source and distilled.source != source.name:
        raise DataError(f"the distilled set was made from {distilled.source!r} but the run's source is "
                        f"{source.name!r}; pass --source {distilled.source}")
    if int(distilled.resolution) != int(source.resolution):
        raise DataError(f"the distilled set is at {distilled.resolution} px but the source {source.name} was "
                        f"prepared at {source.resolution} px")


def check_set(distilled: "DistilledSet", source: "PreparedData") -> None:
    """Normalisation and pixel space travel with the set; check them against the source."""
    check_origin(distilled, source)
    if distilled.label_kind == "none":
        if distilled.num_images:
            raise DataError(f"a set with label kind 'none' must be empty; this one has {distilled.num_images} images")
        return
    if distilled.num_images == 0:
        raise DataError(f"the distilled set from {distilled.method or '?'} is empty but its label kind is "
                        f"{distilled.label_kind!r}; only the 'none' reference may be empty")
    distilled.check_preparation(source)


def pretrained(ctx: "RunContext", distilled: "DistilledSet", backbone: dict[str, Any], options: Any,
               log: dict[str, Any], description: str = "") -> "Network":
    """The network ``backbone`` pre-trained on the set with its recipe, or a fresh one for
    the no-pre-training reference (label kind ``none``); ``log`` receives what was done."""
    from . import recipes

    if distilled.label_kind == "none":
        net = recipes.build_network(ctx, backbone["name"], backbone["kwargs"], backbone["width"],
                                    int(distilled.resolution), None)
        log.update({"skipped": True, "reason": "label kind 'none': the no-pre-training reference (random init)"})
    else:
        net = recipes.pretrain(ctx, distilled, backbone["name"], backbone["kwargs"], backbone["width"], options,
                               log=log, description=description)
    log["arch"] = {k: backbone[k] for k in ("name", "kwargs", "width", "origin") if k in backbone}
    return net


def prepare_targets(ctx: "RunContext", options: Any, resolution: int) -> dict[str, "PreparedData"]:
    """Every target of ``options.targets`` prepared once at ``resolution`` (resized, normalised
    with its own training statistics, validation carved when ``val_fraction`` > 0)."""
    from ddbench import plugins
    from ddbench.data import prepare

    for t in options.targets:  # fail before any training on a name the registry lacks
        plugins.registry("dataset").get(t)
    out = {}
    for name in options.targets:
        target = prepare(name, resolution, val_fraction=options.val_fraction, cache=ctx.cache)
        if options.eval_split == "val" and len(target.y_val) == 0:
            raise DataError(f"target {name} has no validation images at val_fraction={options.val_fraction}")
        out[name] = target
    return out


def finetune_on(ctx: "RunContext", net: "Network", name: str, target: "PreparedData", options: Any,
                description: str = "") -> dict[str, Any]:
    """Fine-tune a copy of ``net`` on ``target`` (protocol §1.4) and measure it: the
    reported split's top-1 % (``value``; test is read only when ``eval_split`` is test), the
    validation accuracy (``val_accuracy``, None without a validation split), what the
    fine-tuning did (``finetune``), the target's identity (``target``) and ``seconds``."""
    import copy

    from ddbench.data import normalize

    from . import finetune as ft

    t0 = time.time()
    fg = is_fine_grained(name, options.fine_grained)
    steps = options.finetune_steps_fine_grained if fg else options.finetune_steps
    tnet = copy.deepcopy(net)  # every target starts from the same pre-trained network
    log = ft.finetune(ctx, tnet, normalize(target.x_train, target.mean, target.std), target.y_train,
                      target.num_classes, steps=steps, batch_size=options.finetune_batch, lr=options.finetune_lr,
                      offset=target_offset(name), description=description or f"fine-tune on {name}")
    val_acc = (ft.accuracy(tnet, normalize(target.x_val, target.mean, target.std), target.y_val, options.eval_batch)
               if len(target.y_val) else None)
    if options.eval_split == "test":
        value = ft.accuracy(tnet, normalize(target.x_test, target.mean, target.std), target.y_test,
                            options.eval_batch)
        n = len(target.y_test)
    else:
        value, n = float(val_acc), len(target.y_val)
    info = {"n_train": len(target.y_train), "n_val": len(target.y_val), "n_test": len(target.y_test),
            "num_classes": target.num_classes, "resolution": target.resolution,
            "resized": bool(target.info.get("resized")), "mean": list(target.mean), "std": list(target.std),
            "content_hash": target.content_hash, "fine_grained": fg}
    del tnet
    return {"value": float(value), "n_examples": int(n), "val_accuracy": val_acc, "steps": int(steps),
            "finetune": log, "target": info, "seconds": round(time.time() - t0, 3)}


def arch_facts(net: "Network", backbone: dict[str, Any]) -> dict[str, Any]:
    """What a result must record about its network (protocol §3.5): the built spec, its norm,
    the trunk's and the whole network's parameter counts, where the choice came from."""
    spec = dict(net.spec)
    return {"arch": spec, "arch_origin": backbone.get("origin"), "trunk_params": int(net.trunk_parameters()),
            "norm": spec.get("norm", backbone["kwargs"].get("norm")),
            "params": int(sum(p.numel() for p in net.parameters()))}


#: the leaderboard column (``ctx.report``) that lists each network's trunk parameter count
PARAMS_LABEL = "trunk params"
PARAMS_DESCRIPTION = ("trunk parameter count of each network the task trained (without heads), as built for this "
                      "result: the architectures' identity beside the numbers (protocol §3.5)")


def report_params(ctx: "RunContext", trunk_params: dict[str, int]) -> None:
    """Show each network's trunk parameter count beside the result (one leaderboard column),
    e.g. ``source_net 93.7K · vgg11 578.5K``."""
    def short(n: int) -> str:
        return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)

    text = " · ".join(f"{name} {short(n)}" for name, n in trunk_params.items())
    ctx.report(PARAMS_LABEL, text, PARAMS_DESCRIPTION)
