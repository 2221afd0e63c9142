"""Which network the ``transfer`` task pre-trains and fine-tunes: the one a distilled set
declares (``provenance["arch"]``), or the task's default backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ddbench.errors import DataError

from .options import TransferOptions

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.distilled import DistilledSet


def default_backbone(preset: str | None, source: str | None = None) -> dict[str, Any]:
    """The backbone the task uses for sets that name none, for ``preset`` (and source)."""
    from . import Transfer

    values = Transfer().options(preset, {}, source=source)
    return {"name": values.default_arch, "widths": list(values.default_arch_widths),
            "norm": values.default_norm, "width": 1.0}


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
