"""The plain value types plugins and the host exchange: budgets, presets, metric
declarations, control rows, raw dataset splits. No torch, no imports from the rest of
ddbench, so every other module can depend on this one (it is the bottom layer)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

#: What a distilled set's targets are.
LABEL_KINDS = ("hard", "soft", "representation", "none", "noise")
#: what each label kind means (docs, error messages)
LABEL_KIND_MEANING = {
    "hard": "class indices (int64, one per image)",
    "soft": "learned label vectors (float, one per image)",
    "representation": "learned representation targets (float, one per image; e.g. KRR-ST's 512-d targets)",
    "none": "the empty no-pre-training reference (no images)",
    "noise": "a noise baseline: the images only give the shape, a task draws fresh noise of that shape "
             "(e.g. the Gaussian baseline of data-free knowledge distillation); targets are ignored",
}
#: the label kinds a task evaluates unless it declares otherwise (``Task.label_kinds``)
DEFAULT_TASK_LABEL_KINDS = ("hard", "soft", "representation", "none")

#: the tiers every method and task offers (a preset may have several entries per tier,
#: one per source and budget)
TIERS = ("smoke", "quick", "paper")


def _err(msg: str) -> Exception:
    from .errors import OptionError

    return OptionError(msg)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much a distilled set may hold: ``images`` in total and, where the source has
    labels, ``ipc`` images per class. A run's budget is set by ``--ipc K`` or
    ``--images N`` (or the preset) and resolved against the source's class count, so a
    resolved budget carries both when they agree."""

    images: int | None = None
    ipc: int | None = None

    def __post_init__(self) -> None:
        for name in ("images", "ipc"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise _err(f"budget {name} must be a positive integer, got {v!r}")

    @property
    def empty(self) -> bool:
        return self.images is None and self.ipc is None

    def resolve(self, num_classes: int | None) -> "Budget":
        """Both numbers, from whichever was given (``ipc`` needs the class count)."""
        images, ipc = self.images, self.ipc
        if ipc is not None:
            if not num_classes:
                raise _err(f"--ipc {ipc} needs a labelled source; give --images N instead")
            if images is not None and images != ipc * num_classes:
                raise _err(f"budget {images} images is not {ipc} per class x {num_classes} classes")
            images = ipc * num_classes
        elif images is not None and num_classes and images % num_classes == 0:
            ipc = images // num_classes
        return Budget(images=images, ipc=ipc)

    def matches(self, other: "Budget") -> bool:
        """True when every number ``other`` gives equals this budget's."""
        return all(getattr(other, k) is None or getattr(other, k) == getattr(self, k) for k in ("images", "ipc"))

    def label(self) -> str:
        if self.images is None and self.ipc is None:
            return "no budget"
        if self.ipc is not None and self.images is not None:
            return f"{self.images} images (ipc {self.ipc})"
        return f"ipc {self.ipc}" if self.images is None else f"{self.images} images"

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "ipc": self.ipc}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Budget":
        d = d or {}
        return cls(images=d.get("images"), ipc=d.get("ipc"))


@dataclasses.dataclass(frozen=True)
class Preset:
    """One named entry of a plugin's presets: option values for a tier on a source at a budget.

    ``source=None`` serves any source; ``budget`` is the entry's default budget and
    ``budgets`` the other budgets it accepts (methods only); ``any_budget`` accepts every
    budget (the smoke tier). ``scaling`` says how the entry departs from the paper and is
    written into every record made with it.

    Example::

        presets = (
            Preset("paper", {"lr": 1e-4}, source="cifar100", budget=Budget(images=1000, ipc=10),
                   scaling="the paper's Table 1 row"),
            Preset("smoke", {"lr": 1e-3}, budget=Budget(images=8), any_budget=True,
                   scaling="smoke test; not a result"),
        )
    """

    name: str
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str | None = None
    budget: Budget | None = None
    budgets: tuple[Budget, ...] = ()
    any_budget: bool = False
    scaling: str = ""
    description: str = ""

    def accepts(self, budget: Budget) -> bool:
        if budget.empty:
            return True
        if self.any_budget:
            return True
        return any(b.matches(budget) for b in ((self.budget,) if self.budget else ()) + tuple(self.budgets))

    def budget_labels(self) -> list[str]:
        if self.any_budget:
            return [f"any (default {self.budget.label()})" if self.budget else "any"]
        return [b.label() for b in ((self.budget,) if self.budget else ()) + tuple(self.budgets)]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source,
                "budget": self.budget.to_dict() if self.budget else None,
                "budgets": [b.to_dict() for b in self.budgets], "any_budget": self.any_budget,
                "values": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.values.items()},
                "scaling": self.scaling, "description": self.description}


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A metric a task declares: the host renders only what is declared.

    ``split`` says which data the number comes from (``"test"`` for results, ``"val"`` for
    sizing runs that must never touch test); ``diagnostic`` marks numbers that explain a
    result (an imitation error, a probe) rather than rank it: the leaderboard shows them
    after the headline columns and leaves them out of plots.
    """

    name: str
    higher_is_better: bool = True
    unit: str = ""
    description: str = ""
    diagnostic: bool = False
    split: str = "test"
    #: a breakdown of a headline number (e.g. one target of an architecture's mean): kept in
    #: the record and the CSV, left out of the Markdown table and the plots
    detail: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MetricSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class ControlRow:
    """A row a method declares as its control: another method (with option overrides) that
    isolates what this method adds. The leaderboard explains the pair under every table
    that holds both."""

    method: str
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "overrides": dict(self.overrides), "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ControlRow":
        return cls(method=d["method"], overrides=dict(d.get("overrides") or {}), note=d.get("note", ""))


@dataclasses.dataclass
class MetricValue:
    """One seed's value of one declared metric, plus what produced it and diagnostics."""

    value: float
    #: what produced the number, e.g. "finetuned-network top-1 on test" (protocol §3.9)
    predictor: str = ""
    #: how many examples the number was measured on (the leaderboard says which gaps it resolves)
    n_examples: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RawSplits:
    """What :meth:`ddbench.interfaces.Dataset.load` returns."""

    x_train: Any  # uint8 (N, H, W, 3)
    y_train: Any  # int64 (N,)
    x_test: Any
    y_test: Any
    class_names: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """The network a distilled set was made for: a registered architecture's name, the
    keyword arguments of its ``build``, the width multiplier; ``feature_dim``,
    ``param_count`` and ``description`` describe rather than build (protocol §3.5)."""

    name: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    width: float = 1.0
    feature_dim: int | None = None
    param_count: int | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs), "width": self.width, "feature_dim": self.feature_dim,
                "param_count": self.param_count, "description": self.description}

    @classmethod
    def parse(cls, value: Any) -> "ArchSpec":
        """An ``ArchSpec`` from itself, a registered name, or its ``to_dict()`` form."""
        from .errors import DataError

        if isinstance(value, ArchSpec):
            return value
        if isinstance(value, str) and value:
            return cls(name=value)
        if not isinstance(value, Mapping) or not value.get("name"):
            raise DataError(f"a distilled set's architecture is {value!r}: expected a registered name or "
                            f"{{'name': ..., 'kwargs': {{...}}, 'width': ...}}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DataError(f"a distilled set's architecture has unknown keys {unknown}; build keyword arguments "
                            f"go under 'kwargs' (known keys: {', '.join(sorted(known))})")
        return cls(**{**value, "kwargs": dict(value.get("kwargs") or {})})


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    """An artifact a distilled set depends on (e.g. the model whose outputs are its targets)."""

    path: str = ""
    sha256: str = ""
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "info": dict(self.info)}

    @classmethod
    def parse(cls, value: Any) -> "ArtifactRef":
        if isinstance(value, ArtifactRef):
            return value
        d = dict(value or {})
        return cls(path=str(d.pop("path", "") or ""), sha256=str(d.pop("sha256", "") or ""),
                   info=dict(d.pop("info", None) or d))


@dataclasses.dataclass
class Provenance:
    """How a distilled set was made. Typed where other plugins read it (``arch``,
    ``depends_on``, ``options``); ``details`` keeps whatever else the method records (losses,
    indices, timings) for people to read."""

    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    arch: ArchSpec | None = None
    #: artifacts the set depends on, by role (e.g. {"target_model": ArtifactRef(...)})
    depends_on: dict[str, ArtifactRef] = dataclasses.field(default_factory=dict)
    #: how the images were chosen or initialised, in words
    selection: str = ""
    #: how the configuration departs from the paper
    scaling: str = ""
    seconds: float | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"options": self.options, "arch": self.arch.to_dict() if self.arch else None,
                "depends_on": {k: v.to_dict() for k, v in self.depends_on.items()}, "selection": self.selection,
                "scaling": self.scaling, "seconds": self.seconds, "details": self.details}

    @classmethod
    def parse(cls, value: Any) -> "Provenance":
        """From itself or a dict: the typed keys are read, every other key goes to ``details``."""
        if isinstance(value, Provenance):
            return value
        d = dict(value or {})
        details = dict(d.pop("details", None) or {})
        opts = d.pop("options", None)
        out = cls(options=dict(opts.to_dict() if hasattr(opts, "to_dict") else opts or {}),
                  arch=ArchSpec.parse(d.pop("arch")) if d.get("arch") else None,
                  depends_on={k: ArtifactRef.parse(v) for k, v in (d.pop("depends_on", None) or {}).items()},
                  selection=str(d.pop("selection", "") or ""), scaling=str(d.pop("scaling", "") or ""),
                  seconds=d.pop("seconds", None))
        d.pop("arch", None)
        out.details = {**d, **details}
        return out
