"""Shared facts of the paper's setup (protocol.md §1.2), used by several built-in plugins."""

from __future__ import annotations

from typing import Any

#: the source resolution per paper source row
PAPER_RESOLUTION = {"cifar100": 32, "tinyimagenet": 64, "imagenet64": 64}


def paper_source_row(source: Any) -> str:
    """Which row of protocol §1.2 a source (a name or a PreparedData) belongs to:
    cifar100, tinyimagenet or imagenet64 (cifar100 for unknown sources)."""
    name = str(getattr(source, "name", source) or "").lower()
    if "tinyimagenet" in name or "tiny_imagenet" in name or "tiny-imagenet" in name:
        return "tinyimagenet"
    if "imagenet" in name:
        return "imagenet64"
    return "cifar100"
