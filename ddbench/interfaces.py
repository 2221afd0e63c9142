"""The four plugin interfaces: Method, Architecture, Task, Dataset.

Each is a small abstract class. A plugin subclasses one, and registers an instance
through the matching hook (see ``ddbench.hookspecs``). This module does not import
torch, so listing plugins stays fast.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from .options import Options

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .context import RunContext
    from .data import PreparedData
    from .distilled import DistilledSet

PRESETS = ("smoke", "quick", "paper")

#: What a distilled set's targets are.
LABEL_KINDS = ("hard", "soft", "representation", "none")


class _Plugin(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: preset name -> option values; every key must be a field of ``Options``.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def options(self, preset: str | None, overrides: Mapping[str, Any] | None = None, **context: Any):
        """Defaults, then the preset's values, then the user's overrides."""
        layer = self.preset_values(preset, **context)
        return self.Options.resolve(layer, overrides, where=f"{self.kind} {self.name}")

    def preset_values(self, preset: str | None, **context: Any) -> Mapping[str, Any]:
        """The option values of a preset. Override to vary a preset by ``context``
        (e.g. ``source=...``); the default looks ``preset`` up in ``presets``."""
        if preset is None:
            return {}
        return self.presets.get(preset, {})

    kind: ClassVar[str] = "plugin"


class Method(_Plugin):
    """Distills a source dataset into a :class:`~ddbench.distilled.DistilledSet`.

    Example (a complete method plugin)::

        import dataclasses
        from ddbench import hookimpl
        from ddbench.interfaces import Method
        from ddbench.options import Options, option

        @dataclasses.dataclass
        class FirstOptions(Options):
            ipc: int = option(1, "images per class")

        class FirstImages(Method):
            name = "first"
            description = "the first `ipc` training images of each class"
            label_kind = "hard"
            Options = FirstOptions
            presets = {"smoke": {"ipc": 1}, "quick": {"ipc": 2}, "paper": {"ipc": 10}}

            def distill(self, ctx, source, options):
                import torch
                from ddbench.distilled import DistilledSet
                idx = torch.cat([(source.y_train == c).nonzero()[: options.ipc, 0]
                                 for c in range(source.num_classes)])
                return DistilledSet.from_source(source, source.x_train[idx], source.y_train[idx],
                                                label_kind="hard", recipe="hard_ce_dsa",
                                                method=self.name, options=options)

        @hookimpl
        def ddbench_register_methods(register):
            register(FirstImages())
    """

    kind: ClassVar[str] = "method"
    label_kind: ClassVar[str] = "hard"
    #: name of the preset's default source dataset, per preset (e.g. {"quick": "tinyimagenet200_32_subset"})
    default_sources: ClassVar[Mapping[str, str]] = {}
    #: bump when a change alters results; part of every cache key
    version: ClassVar[str] = "1"

    @abc.abstractmethod
    def distill(self, ctx: "RunContext", source: "PreparedData", options: Options) -> "DistilledSet":
        """Return the distilled set for ``ctx.seed``. Must be deterministic under the seed on CPU."""


class Architecture(_Plugin):
    """Builds a network. The network is a :class:`ddbench.nn.Network`: ``embed(x)`` gives
    ``(N, feature_dim)`` features, ``forward(x)`` applies the linear head (if any).

    Example::

        class Tiny(Architecture):
            name = "tiny"
            def build(self, in_shape, num_outputs=None, width=1.0, **kw):
                from torch import nn
                from ddbench.nn import Network
                c = max(1, int(8 * width))
                trunk = nn.Sequential(nn.Conv2d(in_shape[0], c, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
                return Network(trunk, feature_dim=c, num_outputs=num_outputs)
    """

    kind: ClassVar[str] = "architecture"
    default_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)

    @abc.abstractmethod
    def build(self, in_shape: tuple[int, int, int], num_outputs: int | None = None, width: float = 1.0, **kwargs: Any):
        """Return a fresh, randomly initialised ``ddbench.nn.Network`` (uses torch's global RNG)."""


class Task(_Plugin):
    """Evaluates a distilled set and returns named metrics.

    ``evaluate`` gets the distilled set (``label_kind == "none"`` for the no-pre-training
    reference) and returns ``{metric_name: MetricValue}``; the runner aggregates the
    values over seeds.

    Example::

        class CountImages(Task):
            name = "count"
            def evaluate(self, ctx, distilled, source, options):
                return {"images": MetricValue(float(distilled.num_images), higher_is_better=False)}
    """

    kind: ClassVar[str] = "task"
    version: ClassVar[str] = "1"

    def dependencies(self, options: Options) -> dict[str, Any]:
        """Identities of other data the evaluation reads (e.g. target datasets' content
        hashes). They become part of the evaluation's cache key, so a changed target
        dataset is never answered from a stale cache. Default: none."""
        return {}

    @abc.abstractmethod
    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData", options: Options) -> dict[str, "MetricValue"]:
        ...


class Dataset(_Plugin):
    """A labelled image dataset with a train and a test split.

    ``load`` returns uint8 ``(N, H, W, 3)`` images and int64 labels as numpy arrays
    (:class:`RawSplits`); the core resizes, normalises, carves the validation split and
    caches the result (``ddbench.data.prepare``).

    Example::

        class Ones(Dataset):
            name = "ones"
            def locate(self):
                return "<in memory>"
            def load(self):
                import numpy as np
                x = np.ones((20, 32, 32, 3), np.uint8); y = np.arange(20) % 2
                return RawSplits(x, y, x[:4], y[:4], ["a", "b"])
    """

    kind: ClassVar[str] = "dataset"
    #: native resolution (pixels), informative
    resolution: ClassVar[int | None] = None

    @abc.abstractmethod
    def locate(self) -> str | None:
        """Where the data is, or None when it is not present (must be cheap, no torch)."""

    def searched(self) -> list[str]:
        """Places looked in, for the 'not found' message."""
        return []

    def how_to_get(self) -> str:
        return ""

    @abc.abstractmethod
    def load(self) -> "RawSplits":
        """Read the data; raise ``DataError`` with a clear message when it is missing or corrupt."""


@dataclasses.dataclass
class RawSplits:
    x_train: Any  # uint8 (N, H, W, 3)
    y_train: Any  # int64 (N,)
    x_test: Any
    y_test: Any
    class_names: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class MetricValue:
    """One seed's value of one metric, plus optional diagnostics."""

    value: float
    higher_is_better: bool = True
    #: what produced the number, e.g. "finetuned-network top-1 on test"
    predictor: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
