"""Verifying a submission bundle: check it (``bundle.read_bundle``), check the plugins it
names are installed, then re-score its distilled sets with the named task and compare.

The re-score calls ``task.evaluate`` fresh, exactly as the runner does after a set is made
(same options from the record, same source, ``ctx.seed_everything(1)``), and never reads the
evaluation cache. Verdicts: ``verified`` (exit 0), ``not reproduced`` (exit 1: a number
differs by more than the tolerance), ``malformed`` (exit 2: the bundle is broken, tampered,
or cannot be re-scored here).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import math
import tempfile
from pathlib import Path
from typing import Any

from . import __version__
from .bundle import DEFAULT_LIMITS, Bundle, BundleError, Limits, read_bundle
from .errors import DDBenchError, OptionError
from .records import RunRecord

#: the default tolerance: absolute difference, in the metric's own unit (e.g. percentage points);
#: holds for a re-score on the same device kind and torch version
DEFAULT_TOLERANCE = 1e-4

VERIFIED, NOT_REPRODUCED, MALFORMED = "verified", "not reproduced", "malformed"
EXIT_CODES = {VERIFIED: 0, NOT_REPRODUCED: 1, MALFORMED: 2}


@dataclasses.dataclass
class Comparison:
    run_id: str
    seed: int
    metric: str
    submitted: float | None
    rescored: float | None
    tolerance: float

    @property
    def diff(self) -> float | None:
        a, b = self.submitted, self.rescored
        if a is None or b is None:
            return None
        if math.isnan(a) and math.isnan(b):
            return 0.0
        return abs(a - b)

    @property
    def ok(self) -> bool:
        d = self.diff
        return d is not None and not math.isnan(d) and d <= self.tolerance


@dataclasses.dataclass
class Report:
    bundle: str
    tolerance: float
    device: str
    #: (what was checked, "ok" / "failed", detail)
    checks: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    verdict: str = MALFORMED
    reason: str = ""
    bundle_sha256: str = ""
    records: list[RunRecord] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def check(self, what: str, detail: str, status: str = "ok") -> None:
        self.checks.append((what, status, detail))

    def seeds(self, run_id: str) -> list[int]:
        return sorted({c.seed for c in self.comparisons if c.run_id == run_id})

    def verification(self, rec: RunRecord) -> dict[str, Any]:
        """The block ``accept`` writes into the record: the verifier's numbers beside the
        submitted ones."""
        import platform

        mine = [c for c in self.comparisons if c.run_id == rec.run_id]
        metrics: dict[str, dict[str, Any]] = {}
        for c in mine:
            metrics.setdefault(c.metric, {})[str(c.seed)] = c.rescored
        return {"verified_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "ddbench": __version__, "verdict": self.verdict, "seeds": self.seeds(rec.run_id),
                "tolerance": self.tolerance, "tolerance_kind": "absolute, in the metric's unit",
                "max_abs_diff": max((c.diff for c in mine if c.diff is not None), default=None),
                "metrics": metrics, "bundle_sha256": self.bundle_sha256,
                "environment": {"device": self.device, "torch": _torch_version(), "python": platform.python_version()}}

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "bundle_sha256": self.bundle_sha256, "verdict": self.verdict,
                "exit_code": self.exit_code, "reason": self.reason, "tolerance": self.tolerance,
                "device": self.device, "notes": self.notes,
                "checks": [{"check": w, "status": s, "detail": d} for w, s, d in self.checks],
                "comparisons": [{"run_id": c.run_id, "seed": c.seed, "metric": c.metric, "submitted": c.submitted,
                                 "rescored": c.rescored, "diff": c.diff, "ok": c.ok} for c in self.comparisons]}


def _torch_version() -> str | None:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return None


def parse_seed_choice(text: str | None) -> str | list[int]:
    """``first`` (the default: each record's first seed), ``all``, or a list such as ``0,2``."""
    if text is None or text.strip() in ("", "first"):
        return "first"
    if text.strip() == "all":
        return "all"
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"--seeds {text!r}: give first, all, or a comma-separated list of seeds such as 0,1") from None


def _chosen(rec: RunRecord, choice: str | list[int]) -> list[int]:
    if choice == "first":
        return rec.seeds[:1]
    if choice == "all":
        return list(rec.seeds)
    missing = [s for s in choice if s not in rec.seeds]
    if missing:
        raise OptionError(f"--seeds asks for seed {missing[0]}, but run {rec.run_id} has seeds "
                          f"{', '.join(map(str, rec.seeds))}")
    return list(choice)


def check_plugins(bundle: Bundle) -> None:
    """Every method, task and dataset the records name must be installed; the error names the
    missing ones and the distribution the submitter had them from."""
    from . import plugins

    missing: list[str] = []
    for rec in bundle.records:
        for kind, name, key in (("method", rec.method, "method"), ("task", rec.task, "task"),
                                ("dataset", rec.source, "source")):
            if name not in plugins.registry(kind):
                origin = rec.config.origins.get(key) or "an unknown distribution"
                entry = f"{kind} {name!r} (the submitter's came from {origin})"
                if entry not in missing:
                    missing.append(entry)
    if missing:
        raise BundleError(f"the bundle needs plugins that are not installed here: {'; '.join(missing)}; install "
                          "them (pip install …) and verify again")


def _local_artifacts(saved: Any) -> dict[str, Any]:
    """The artifacts the method recorded, kept only where they point into this machine's
    DDBENCH_HOME (``$DDBENCH_HOME/...``); a bundle never names arbitrary local paths."""
    from . import paths

    out: dict[str, Any] = {}
    if not isinstance(saved, dict):
        return out
    home = paths.home().resolve()
    for name, art in saved.items():
        p = art.get("path") if isinstance(art, dict) else None
        if not isinstance(p, str) or not p.startswith("$DDBENCH_HOME/"):
            continue
        local = (home / p[len("$DDBENCH_HOME/"):]).resolve()
        if home in local.parents:
            out[name] = {**art, "path": str(local)}
    return out


def rescore(bundle: Bundle, rec: RunRecord, seed: int, device: str, cache: Any) -> dict[str, float | None]:
    """The task's metrics of ``rec``'s ``seed``, computed here from the bundle's distilled set."""
    from . import plugins
    from .context import RunContext
    from .data import prepare
    from .types import Budget

    cfg = rec.config
    method, task = plugins.get_method(cfg.method), plugins.get_task(cfg.task)
    if str(task.version) != str(cfg.task_version):
        raise DDBenchError(f"run {rec.run_id} was scored by task {task.name} version {cfg.task_version}, the installed "
                           f"one is version {task.version}; install the task version the bundle names to re-score it")
    try:
        m_opts = method.Options.resolve(cfg.method_options, where=f"method {method.name}")
        t_opts = task.Options.resolve(cfg.task_options, where=f"task {task.name}")
    except OptionError as e:
        raise DDBenchError(f"run {rec.run_id}'s recorded options do not fit the installed plugins ({e}); install "
                           "the versions the bundle names") from None
    source = prepare(cfg.source, method.source_resolution(m_opts), cache=cache)
    want = rec.source_info.get("content_hash")
    if want and want != source.content_hash:
        raise DDBenchError(f"run {rec.run_id} was scored on a {cfg.source} whose content hash is {want[:12]}…; the "
                           f"copy here hashes to {source.content_hash[:12]}…: verify with the same data")
    budget = cfg.budget.resolve(source.num_classes) if method.takes_budget else Budget()
    distilled = bundle.distilled(rec.run_id, seed)
    if distilled.source != cfg.source or (distilled.method and distilled.method != cfg.method):
        raise BundleError(f"run {rec.run_id} seed {seed}: the distilled set says it was made by {distilled.method!r} "
                          f"from {distilled.source!r}, the record says {cfg.method!r} from {cfg.source!r}")
    saved = bundle.extras(rec.run_id, seed)
    ctx = RunContext(seed=seed, device=device, preset=cfg.preset, run_id=rec.run_id, cache=cache, budget=budget)
    ctx.extras = copy.deepcopy(saved.get("extras") if isinstance(saved.get("extras"), dict) else {})
    ctx.artifacts = _local_artifacts(saved.get("artifacts"))
    with tempfile.TemporaryDirectory(prefix="ddbench-verify-") as tmp:
        ctx.checkpoint_dir = ctx.output_dir = Path(tmp)
        ctx.seed_everything(1)
        metrics = task.evaluate(ctx, distilled, source, t_opts)
    return {k: (None if v.value is None else float(v.value)) for k, v in metrics.items()}


def _env_notes(bundle: Bundle, device: str) -> list[str]:
    notes = []
    here = _torch_version()
    for rec in bundle.records:
        theirs = rec.env or {}
        kind = str(theirs.get("device", rec.config.device or "cpu")).split(":")[0]
        diffs = []
        if kind != device.split(":")[0]:
            diffs.append(f"device {kind} there, {device} here")
        if theirs.get("torch") and theirs.get("torch") != here:
            diffs.append(f"torch {theirs.get('torch')} there, {here} here")
        if diffs:
            note = (f"run {rec.run_id} was made with {', '.join(diffs)}: numbers may differ by more than rounding; "
                    "the tolerance may need loosening (--tolerance)")
            if note not in notes:
                notes.append(note)
    return notes


def verify(path: Path, seeds: str | list[int] = "first", tolerance: float = DEFAULT_TOLERANCE,
           device: str = "cpu", limits: Limits = DEFAULT_LIMITS, cache: Any = None) -> Report:
    """Check and re-score a bundle. Never raises for a bad bundle: the report's verdict is
    ``malformed`` with the reason. Raises DDBenchError for problems of the verifier's own
    setup (an unknown device, a bad ``--seeds``)."""
    from .cache import ArtifactCache

    if tolerance < 0 or math.isnan(tolerance):
        raise OptionError(f"--tolerance must be a non-negative number, got {tolerance}")
    report = Report(bundle=str(path), tolerance=tolerance, device=device)
    try:
        bundle = read_bundle(Path(path), limits, checked=report.check)
        report.bundle_sha256 = bundle.sha256
        report.records = bundle.records
        check_plugins(bundle)
        report.check("plugins installed", ", ".join(sorted({f"{r.method} → {r.task} on {r.source}"
                                                             for r in bundle.records})))
        report.notes = _env_notes(bundle, device)
        plan = [(rec, s) for rec in bundle.records for s in _chosen(rec, seeds)]
    except BundleError as e:
        report.check("bundle", str(e), "failed")
        report.verdict, report.reason = MALFORMED, str(e)
        return report
    from .runner import check_device

    check_device(device)
    cache = cache or ArtifactCache()
    try:
        for rec, seed in plan:
            got = rescore(bundle, rec, seed, device, cache)
            names = [m.name for m in rec.metrics] + [k for k in got if rec.metric(k) is None]
            for name in names:
                spec = rec.config.metric_spec(name)
                if name not in got and spec is not None and spec.diagnostic:
                    # e.g. an imitation error that needs the set's target model, which the bundle
                    # does not carry: the verifier lacks it, the headline numbers do not need it
                    note = (f"run {rec.run_id} seed {seed}: the diagnostic {name} was not re-scored (the task "
                            "did not return it here: it may need an artifact the bundle does not carry, such as "
                            "the set's target model; the headline numbers do not depend on it)")
                    report.notes.append(note)
                    continue
                m = rec.metric(name)
                submitted = None
                if m is not None and seed in rec.seeds and rec.seeds.index(seed) < len(m.per_seed):
                    submitted = m.per_seed[rec.seeds.index(seed)]
                report.comparisons.append(Comparison(rec.run_id, seed, name, submitted, got.get(name), tolerance))
    except DDBenchError as e:
        report.check("re-score", str(e), "failed")
        report.verdict, report.reason = MALFORMED, str(e)
        return report
    bad = [c for c in report.comparisons if not c.ok]
    report.check("re-score", f"{len(plan)} run seed(s) re-scored, {len(report.comparisons)} numbers compared "
                 f"(tolerance {tolerance:g} absolute)", "ok" if not bad else "failed")
    if bad:
        worst = max(bad, key=lambda c: c.diff if c.diff is not None else math.inf)
        report.verdict = NOT_REPRODUCED
        report.reason = (f"{len(bad)} of {len(report.comparisons)} numbers do not reproduce within {tolerance:g}: "
                         f"e.g. run {worst.run_id} seed {worst.seed} {worst.metric}: submitted {worst.submitted}, "
                         f"re-scored {worst.rescored}")
    else:
        report.verdict = VERIFIED
        report.reason = f"{len(report.comparisons)} numbers reproduce within {tolerance:g}"
    return report
