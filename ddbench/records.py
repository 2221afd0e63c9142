"""Run records: one per run, finished, failed or interrupted.

Every part is a dataclass with explicit ``to_dict``/``from_dict``: the resolved
configuration (:class:`RunConfig`, including what the plugins declared about the run:
its metrics and the method's role), one :class:`SeedResult` per seed, and the
aggregated :class:`Metric` values. Schema 2 added the budget, the declarations and
``source_info``; records of schema 1 are read and upgraded in memory.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Mapping

from .types import Budget, ControlRow, MetricSpec

SCHEMA_VERSION = 2


@dataclasses.dataclass
class Metric:
    name: str
    per_seed: list[float]
    higher_is_better: bool = True
    predictor: str = ""
    #: what varied between the values (e.g. "distillation seed + evaluation seed")
    varied: str = ""

    @property
    def n(self) -> int:
        return len(self.per_seed)

    @property
    def mean(self) -> float | None:
        vals = [v for v in self.per_seed if v is not None and not math.isnan(v)]
        return statistics.fmean(vals) if vals else None

    @property
    def std(self) -> float | None:
        vals = [v for v in self.per_seed if v is not None and not math.isnan(v)]
        return statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "per_seed": list(self.per_seed), "mean": self.mean, "std": self.std, "n": self.n,
                "higher_is_better": self.higher_is_better, "predictor": self.predictor, "varied": self.varied}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metric":
        return cls(name=d["name"], per_seed=list(d["per_seed"]), higher_is_better=bool(d.get("higher_is_better", True)),
                   predictor=d.get("predictor", ""), varied=d.get("varied", ""))


@dataclasses.dataclass
class MethodInfo:
    """What the method declared about itself when the run was made (so a record renders
    the same without the plugin installed)."""

    label_kind: str = ""
    reference: bool = False
    takes_budget: bool = True
    recipes: list[str] = dataclasses.field(default_factory=list)
    controls: list[ControlRow] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label_kind": self.label_kind, "reference": self.reference, "takes_budget": self.takes_budget,
                "recipes": list(self.recipes), "controls": [c.to_dict() for c in self.controls]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "MethodInfo":
        d = d or {}
        return cls(label_kind=d.get("label_kind", ""), reference=bool(d.get("reference", False)),
                   takes_budget=bool(d.get("takes_budget", True)), recipes=list(d.get("recipes") or []),
                   controls=[ControlRow.from_dict(c) for c in d.get("controls") or []])


@dataclasses.dataclass
class RunConfig:
    """The fully resolved configuration of a run. ``hash()`` (all but ``origins``) names it."""

    method: str
    task: str
    source: str
    method_version: str = "1"
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    task_version: str = "1"
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    preset: str | None = None
    budget: Budget = dataclasses.field(default_factory=Budget)
    device: str = "cpu"
    #: which distribution supplied each plugin; not part of the hash
    origins: dict[str, str] = dataclasses.field(default_factory=dict)
    #: true for every tier but the paper's: the numbers come from a scaled-down setup
    scaled: bool = True
    #: how the preset entries depart from the paper (written by the plugins' presets)
    scaling: dict[str, str] = dataclasses.field(default_factory=dict)
    #: what the user changed on top of the preset (the leaderboard labels rows with it)
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    metrics: list[MetricSpec] = dataclasses.field(default_factory=list)
    #: task options that choose what is measured (e.g. a split), not what is evaluated
    measurement_options: list[str] = dataclasses.field(default_factory=list)
    method_info: MethodInfo = dataclasses.field(default_factory=MethodInfo)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "method_version": self.method_version, "method_options": self.method_options,
                "task": self.task, "task_version": self.task_version, "task_options": self.task_options,
                "source": self.source, "preset": self.preset, "budget": self.budget.to_dict(), "device": self.device,
                "origins": dict(self.origins), "scaled": self.scaled, "scaling": dict(self.scaling),
                "overrides": dict(self.overrides), "metrics": [m.to_dict() for m in self.metrics],
                "measurement_options": list(self.measurement_options), "method_info": self.method_info.to_dict()}

    def hash(self) -> str:
        from .cache import config_hash

        return config_hash({k: v for k, v in self.to_dict().items() if k != "origins"})

    def metric_spec(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        return cls(method=d.get("method", ""), task=d.get("task", ""), source=d.get("source", ""),
                   method_version=str(d.get("method_version", "1")), method_options=dict(d.get("method_options") or {}),
                   task_version=str(d.get("task_version", "1")), task_options=dict(d.get("task_options") or {}),
                   preset=d.get("preset"), budget=Budget.from_dict(d.get("budget")), device=d.get("device", "cpu"),
                   origins=dict(d.get("origins") or {}), scaled=bool(d.get("scaled", True)),
                   scaling=dict(d.get("scaling") or {}), overrides=dict(d.get("overrides") or {}),
                   metrics=[MetricSpec.from_dict(m) for m in d.get("metrics") or []],
                   measurement_options=list(d.get("measurement_options") or []),
                   method_info=MethodInfo.from_dict(d.get("method_info")))


@dataclasses.dataclass
class SeedResult:
    """What one seed produced besides its metric values."""

    label_kind: str = ""
    recipe: str = ""
    pixel_space: str = ""
    #: {"images", "bytes", "float_bytes"} of the distilled set
    budget: dict[str, int] = dataclasses.field(default_factory=dict)
    distilled_cached: bool = False
    evaluation_cached: bool = False
    #: the plugins' diagnostics (``ctx.extras``), e.g. ``diagnostic`` and ``reported``
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: ``{metric: MetricValue.extra}``
    metrics_extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: ``{metric: MetricValue.n_examples}``: how many examples each number was measured on
    n_examples: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    #: what making the distilled set cost when it was made (also when this run read it from the
    #: cache): ``{"seconds", "peak_memory_mb"}`` (the process's peak RSS, or CUDA's peak allocated)
    distill_cost: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SeedResult":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    @property
    def reported(self) -> dict[str, Any]:
        """Facts a plugin asked to show beside the result (``RunContext.report``)."""
        return dict(self.extras.get("reported") or {})

    @property
    def diagnostic(self) -> list[str]:
        return [str(r) for r in self.extras.get("diagnostic") or []]


@dataclasses.dataclass
class RunRecord:
    run_id: str
    config: RunConfig
    config_hash: str
    seeds: list[int]
    status: str = "running"  # running | finished | failed | interrupted
    metrics: list[Metric] = dataclasses.field(default_factory=list)
    #: one entry per seed that ran, keyed by the seed as a string
    per_seed: dict[str, SeedResult] = dataclasses.field(default_factory=dict)
    #: the budget the sets hold: {"images", "ipc", "bytes"} (bytes of the first seed's set)
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the prepared source data (PreparedData.summary())
    source_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    commit: str | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    peak_memory_mb: float | None = None
    artifacts: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    error: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    #: set by ``ddbench leaderboard accept``: a maintainer's re-scoring of the submitted
    #: distilled sets (verified_at, ddbench, environment, seeds, tolerance, verdict, and
    #: ``metrics``: ``{name: {seed: re-scored value}}`` beside the submitted ``per_seed``);
    #: None for a record that was never verified. Written only when set (old readers ignore it).
    verification: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def source(self) -> str:
        return self.config.source

    @property
    def preset(self) -> str | None:
        return self.config.preset

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def seed_results(self) -> list[SeedResult]:
        return [self.per_seed[str(s)] for s in self.seeds if str(s) in self.per_seed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "method": self.method, "task": self.task,
            "source": self.source, "preset": self.preset, "config": self.config.to_dict(),
            "config_hash": self.config_hash, "seeds": list(self.seeds), "status": self.status,
            "metrics": [m.to_dict() for m in self.metrics], "budget": dict(self.budget),
            "per_seed": {k: v.to_dict() for k, v in self.per_seed.items()}, "source_info": dict(self.source_info),
            "env": self.env, "commit": self.commit, "timings": dict(self.timings),
            "peak_memory_mb": self.peak_memory_mb, "artifacts": self.artifacts, "error": self.error,
            "started_at": self.started_at, "finished_at": self.finished_at,
            **({"verification": self.verification} if self.verification is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        version = d.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            from .errors import DDBenchError

            raise DDBenchError(f"record {d.get('run_id')} has schema {d['schema_version']}; upgrade ddbench to read it")
        config = dict(d.get("config") or {})
        for key in ("method", "task", "source", "preset"):
            config.setdefault(key, d.get(key))
        per_seed = dict(d.get("per_seed") or {})
        source_info = dict(d.get("source_info") or {})
        if version < 2:
            # schema 1 kept the source's summary among the seeds
            source_info = dict(per_seed.pop("source", None) or source_info)
        seeds = [int(s) for s in d.get("seeds", [])]
        budget = dict(d.get("budget") or {})
        results = {k: SeedResult.from_dict(v) for k, v in per_seed.items() if isinstance(v, Mapping)}
        if not budget and results:
            first = next(iter(results.values())).budget
            budget = {"images": first.get("images"), "ipc": None, "bytes": first.get("bytes")}
        return cls(
            run_id=d["run_id"], config=RunConfig.from_dict(config), config_hash=d.get("config_hash", ""), seeds=seeds,
            status=d.get("status", "finished"), metrics=[Metric.from_dict(m) for m in d.get("metrics", [])],
            per_seed=results, budget=budget, source_info=source_info, env=d.get("env", {}), commit=d.get("commit"),
            timings=dict(d.get("timings", {})), peak_memory_mb=d.get("peak_memory_mb"),
            artifacts=d.get("artifacts", {}), error=d.get("error"), started_at=d.get("started_at", ""),
            finished_at=d.get("finished_at"), schema_version=SCHEMA_VERSION,
            verification=dict(d["verification"]) if isinstance(d.get("verification"), Mapping) else None,
        )
