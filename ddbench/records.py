"""Run records: one per run, finished, failed or interrupted. Explicit to_dict/from_dict."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

SCHEMA_VERSION = 1


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
class RunRecord:
    run_id: str
    method: str
    task: str
    source: str
    preset: str | None
    config: dict[str, Any]
    config_hash: str
    seeds: list[int]
    status: str = "running"  # running | finished | failed | interrupted
    metrics: list[Metric] = dataclasses.field(default_factory=list)
    #: per-seed diagnostics: {seed: {...}} (target-model quality, budgets, scaling, ...)
    per_seed: dict[str, Any] = dataclasses.field(default_factory=dict)
    env: dict[str, Any] = dataclasses.field(default_factory=dict)
    commit: str | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    peak_memory_mb: float | None = None
    artifacts: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    error: str | None = None
    started_at: str = ""
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "method": self.method, "task": self.task,
            "source": self.source, "preset": self.preset, "config": self.config, "config_hash": self.config_hash,
            "seeds": list(self.seeds), "status": self.status, "metrics": [m.to_dict() for m in self.metrics],
            "per_seed": self.per_seed, "env": self.env, "commit": self.commit, "timings": dict(self.timings),
            "peak_memory_mb": self.peak_memory_mb, "artifacts": self.artifacts, "error": self.error,
            "started_at": self.started_at, "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        if d.get("schema_version", 1) > SCHEMA_VERSION:
            from .errors import DDBenchError

            raise DDBenchError(f"record {d.get('run_id')} has schema {d['schema_version']}; upgrade ddbench to read it")
        return cls(
            run_id=d["run_id"], method=d["method"], task=d["task"], source=d.get("source", ""), preset=d.get("preset"),
            config=d.get("config", {}), config_hash=d.get("config_hash", ""), seeds=list(d.get("seeds", [])),
            status=d.get("status", "finished"), metrics=[Metric.from_dict(m) for m in d.get("metrics", [])],
            per_seed=d.get("per_seed", {}), env=d.get("env", {}), commit=d.get("commit"),
            timings=dict(d.get("timings", {})), peak_memory_mb=d.get("peak_memory_mb"),
            artifacts=d.get("artifacts", {}), error=d.get("error"), started_at=d.get("started_at", ""),
            finished_at=d.get("finished_at"), schema_version=d.get("schema_version", SCHEMA_VERSION),
        )
