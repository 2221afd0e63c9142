"""The four plugin interfaces: Method, Architecture, Task, Dataset.

Each is a small abstract class. A plugin subclasses one, and registers an instance
through the matching hook (see ``ddbench.hookspecs``). This module does not import
torch, so listing plugins stays fast.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from .errors import OptionError
from .options import Options
from .types import DEFAULT_TASK_LABEL_KINDS, LABEL_KIND_MEANING, LABEL_KINDS, TIERS, Budget, ControlRow, MetricSpec, MetricValue, Preset, RawSplits

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .context import RunContext
    from .data import PreparedData
    from .distilled import DistilledSet

#: kept for plugins written against the first interface
PRESETS = TIERS

__all__ = ["Method", "Architecture", "Task", "Dataset", "Budget", "Preset", "MetricSpec", "MetricValue",
           "ControlRow", "RawSplits", "LABEL_KINDS", "TIERS", "PRESETS"]


class _Plugin(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: the plugin's presets: a sequence of :class:`~ddbench.types.Preset` entries (one per
    #: tier, source and budget), or the short form ``{tier: {option: value}}`` (any source,
    #: any budget). Every key must be a field of ``Options``.
    presets: ClassVar[Sequence[Preset] | Mapping[str, Mapping[str, Any]]] = ()
    #: the source dataset a tier runs on when the user names none, e.g. {"quick": "cifar10_32"};
    #: when absent, the tier's only source-specific preset entry decides
    default_sources: ClassVar[Mapping[str, str]] = {}
    kind: ClassVar[str] = "plugin"

    @classmethod
    def preset_entries(cls) -> list[Preset]:
        """The presets as :class:`~ddbench.types.Preset` entries."""
        if isinstance(cls.presets, Mapping):
            return [Preset(name, dict(values), any_budget=True) for name, values in cls.presets.items()]
        return list(cls.presets)

    @classmethod
    def default_source(cls, tier: str | None) -> str | None:
        if tier is None:
            return None
        if tier in cls.default_sources:
            return cls.default_sources[tier]
        sources = {p.source for p in cls.preset_entries() if p.name == tier and p.source}
        return sources.pop() if len(sources) == 1 else None

    def find_preset(self, tier: str | None, source: str, budget: Budget | None = None) -> Preset | None:
        """The entry of ``tier`` for ``source`` (an entry for that source first, then one for
        any source) that accepts ``budget``; None when ``tier`` is None. Raises OptionError,
        naming what exists, for an unknown tier or an uncovered source/budget."""
        if tier is None:
            return None
        budget = budget or Budget()
        entries = [p for p in self.preset_entries() if p.name == tier]
        where = f"{self.kind} {self.name}"
        if not entries:
            tiers = sorted({p.name for p in self.preset_entries()})
            raise OptionError(f"unknown preset {tier!r} for {where}; its presets: {', '.join(tiers) or '(none)'} "
                              f"(see `ddbench ls presets --{self.kind} {self.name}`)")
        for_source = [p for p in entries if p.source == source] or [p for p in entries if p.source is None]
        if not for_source:
            covered = ", ".join(sorted(str(p.source) for p in entries))
            raise OptionError(f"{where}'s preset {tier!r} covers the sources {covered}, not {source!r}; "
                              f"run one of those, or use --preset none and set every option with -o")
        for p in for_source:
            if p.accepts(budget):
                return p
        offered = "; ".join(", ".join(p.budget_labels()) for p in for_source)
        raise OptionError(f"{where}'s preset {tier!r} on {source} has the budgets {offered}, not "
                          f"{budget.label()}; pick one of those with --ipc/--images, or use --preset none")

    def preset(self, tier: str | None, source: str | None = None, budget: Budget | None = None) -> Preset | None:
        """The preset entry for ``tier`` on ``source`` (``source`` may be omitted when the tier
        has one entry, or one for any source)."""
        if source is not None or tier is None:
            return self.find_preset(tier, source or "", budget)
        entries = [p for p in self.preset_entries() if p.name == tier]
        if len(entries) == 1:
            return entries[0]
        generic = [p for p in entries if p.source is None and p.accepts(budget or Budget())]
        if generic:
            return generic[0]
        if not entries:
            return self.find_preset(tier, "", budget)  # raises, naming the tiers
        raise OptionError(f"{self.kind} {self.name}'s preset {tier!r} has entries for the sources "
                          f"{', '.join(sorted(str(p.source) for p in entries))}: name the source")

    def options(self, preset: Preset | str | None = None, overrides: Mapping[str, Any] | None = None,
                source: str | None = None, budget: Budget | None = None):
        """Defaults, then the preset entry's values, then the user's overrides. ``preset`` is an
        entry, or a tier name looked up with ``source`` and ``budget``."""
        if isinstance(preset, str):
            preset = self.preset(preset, source, budget)
        layer = dict(preset.values) if preset is not None else {}
        return self.Options.resolve(layer, overrides, where=f"{self.kind} {self.name}")


class Method(_Plugin):
    """Distills a source dataset into a :class:`~ddbench.distilled.DistilledSet`.

    Example (a complete method plugin)::

        from ddbench import hookimpl
        from ddbench.interfaces import Budget, Method, Preset

        class FirstImages(Method):
            name = "first"
            description = "the first ctx.budget.ipc training images of each class"
            label_kind = "hard"
            recipes = ("hard_ce_dsa",)
            presets = (Preset("smoke", {}, budget=Budget(ipc=1), any_budget=True),
                       Preset("paper", {}, source="cifar100", budget=Budget(images=1000, ipc=10)))

            def distill(self, ctx, source, options):
                import torch
                from ddbench.distilled import DistilledSet
                idx = torch.cat([(source.y_train == c).nonzero()[: ctx.budget.ipc, 0]
                                 for c in range(source.num_classes)])
                return DistilledSet.from_source(source, source.x_train[idx], source.y_train[idx],
                                                label_kind="hard", recipe="hard_ce_dsa",
                                                method=self.name, options=options)

        @hookimpl
        def ddbench_register_methods(register):
            register(FirstImages())
    """

    kind: ClassVar[str] = "method"
    #: what the targets of the sets it returns are (one of LABEL_KINDS)
    label_kind: ClassVar[str] = "hard"
    #: the pre-training recipes its sets may name (``DistilledSet.recipe``); a task that
    #: pre-trains implements them by name, the host knows none
    recipes: ClassVar[tuple[str, ...]] = ()
    #: rows that isolate what this method adds (e.g. random images with this method's recipe)
    controls: ClassVar[tuple[ControlRow, ...]] = ()
    #: a reference row (e.g. no pre-training): shown in every budget's table, never ranked
    reference: ClassVar[bool] = False
    #: whether the method spends an image budget (``ctx.budget``); a reference usually does not
    takes_budget: ClassVar[bool] = True
    #: bump when a change alters results; part of every cache key
    version: ClassVar[str] = "1"

    def seed_varies(self) -> str:
        """What differs between two seeds of this method's rows (the leaderboard prints it)."""
        return "evaluation seed" if not self.takes_budget else "distillation seed + evaluation seed (paired across methods)"

    def label_kind_for(self, options: Options) -> str:
        """The label kind of the sets made under ``options`` (default: ``label_kind``)."""
        return self.label_kind

    def source_resolution(self, options: Options) -> int | None:
        """The resolution (pixels) to prepare the source at; None keeps its native one."""
        return None

    def cache_options(self, options: Options) -> dict[str, Any]:
        """The options that decide the distilled set: part of its cache key. Override to leave
        out options a configuration does not read (so changing them keeps the cache)."""
        return options.to_dict()

    @abc.abstractmethod
    def distill(self, ctx: "RunContext", source: "PreparedData", options: Options) -> "DistilledSet":
        """Return the distilled set for ``ctx.seed`` holding exactly ``ctx.budget.images``
        images (``ctx.budget.ipc`` per class where the source has labels). Must be
        deterministic under the seed on CPU."""


class Architecture(_Plugin):
    """Builds a network. The network is a :class:`ddbench.toolkit.nn.Network`: ``embed(x)`` gives
    ``(N, feature_dim)`` features, ``forward(x)`` applies the linear head (if any).

    Example::

        class Tiny(Architecture):
            name = "tiny"
            def build(self, in_shape, num_outputs=None, width=1.0, **kw):
                from torch import nn
                from ddbench.toolkit.nn import Network
                c = max(1, int(8 * width))
                trunk = nn.Sequential(nn.Conv2d(in_shape[0], c, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
                return Network(trunk, feature_dim=c, num_outputs=num_outputs)
    """

    kind: ClassVar[str] = "architecture"
    default_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)

    @abc.abstractmethod
    def build(self, in_shape: tuple[int, int, int], num_outputs: int | None = None, width: float = 1.0, **kwargs: Any):
        """Return a fresh, randomly initialised ``ddbench.toolkit.nn.Network`` (uses torch's global RNG)."""


class Task(_Plugin):
    """Evaluates a distilled set and returns the metrics it declares.

    ``metrics(options)`` declares every metric ``evaluate`` may return (name, direction,
    unit, description, split, diagnostic or not); the host renders only what is
    declared, and a metric returned but not declared fails the run. ``evaluate`` gets the
    distilled set (``label_kind == "none"`` for a no-pre-training reference) and returns
    ``{metric_name: MetricValue}``; the runner aggregates the values over seeds.

    Example::

        class CountImages(Task):
            name = "count"
            presets = {"smoke": {}}
            def metrics(self, options):
                return [MetricSpec("images", higher_is_better=False, unit="images",
                                   description="images in the set")]
            def evaluate(self, ctx, distilled, source, options):
                return {"images": MetricValue(float(distilled.num_images))}
    """

    kind: ClassVar[str] = "task"
    version: ClassVar[str] = "1"
    #: options that choose what is measured (e.g. the split), not what is evaluated: the
    #: leaderboard files a run by them instead of labelling its row with them
    measurement_options: ClassVar[tuple[str, ...]] = ()
    #: the label kinds of the sets this task can evaluate (see ``LABEL_KIND_MEANING``); the
    #: runner refuses a method whose declared label kind is not among them before any work
    #: starts, with :meth:`refusal`'s message
    label_kinds: ClassVar[tuple[str, ...]] = DEFAULT_TASK_LABEL_KINDS

    def refusal(self, label_kind: str, who: str) -> str | None:
        """The one-line reason this task cannot evaluate ``who``'s sets of ``label_kind``, or
        None when it can. Override to say what to run instead."""
        if label_kind in self.label_kinds:
            return None
        accepted = ", ".join(f"{k!r}" for k in self.label_kinds)
        return (f"task {self.name} cannot evaluate {who}'s sets of label kind {label_kind!r} "
                f"({LABEL_KIND_MEANING.get(label_kind, 'unknown')}); it evaluates the label kinds {accepted}: "
                f"pick another task (`ddbench ls tasks`) or another method")

    @abc.abstractmethod
    def metrics(self, options: Options) -> list[MetricSpec]:
        """Every metric ``evaluate`` may return under ``options`` (a superset is fine)."""

    def dependencies(self, options: Options) -> dict[str, Any]:
        """Identities of other data the evaluation reads (e.g. target datasets' content
        hashes). They become part of the evaluation's cache key, so a changed target
        dataset is never answered from a stale cache. Default: none."""
        return {}

    @abc.abstractmethod
    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: Options) -> dict[str, MetricValue]:
        """The metrics of one seed. ``ctx.seed``, ``ctx.device`` and ``ctx.cache`` are set;
        raise :class:`ddbench.errors.DataError` for a set this task cannot evaluate (e.g. a
        recipe it does not implement), naming what it accepts."""


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
