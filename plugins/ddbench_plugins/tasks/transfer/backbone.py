"""Which network the ``transfer`` task pre-trains and fine-tunes: the one a distilled set
declares (``provenance.arch``), or the task's default backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    """The backbone a distilled set declares (``provenance.arch``, an
    :class:`~ddbench.types.ArchSpec`), as ``{"name", "kwargs", "width"}``, or None."""
    arch = distilled.provenance.arch
    if arch is None:
        return None
    return {"name": arch.name, "kwargs": dict(arch.kwargs), "width": float(arch.width)}


def resolve_backbone(distilled: "DistilledSet", options: TransferOptions) -> dict[str, Any]:
    """(name, kwargs, width, where it came from) of the network to pre-train and fine-tune."""
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
