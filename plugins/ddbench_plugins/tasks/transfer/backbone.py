"""Which network the ``transfer`` task pre-trains and fine-tunes: the one a distilled set
declares (``provenance.arch``), or the task's default backbone."""

from __future__ import annotations

from typing import Any

from ddbench.toolkit.transfer import resolve_backbone, set_backbone  # noqa: F401 (public: the toolkit's)


def default_backbone(preset: str | None, source: str | None = None) -> dict[str, Any]:
    """The backbone the task uses for sets that name none, for ``preset`` (and source)."""
    from . import Transfer

    values = Transfer().options(preset, {}, source=source)
    return {"name": values.default_arch, "widths": list(values.default_arch_widths),
            "norm": values.default_norm, "width": 1.0}

