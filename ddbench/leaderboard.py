"""The leaderboard is derived data: records in, Markdown/CSV/PNG out, never edited by hand.

Records are JSON files (one ``RunRecord`` each) under ``leaderboard/records/``; ``ddbench
leaderboard add`` exports them from the local run store, ``ddbench leaderboard build``
turns them into one table per (task, source, preset).
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

from .errors import DDBenchError
from .records import RunRecord

#: the row order of the paper's tables; others follow alphabetically
ROW_ORDER = ("none", "gaussian", "random", "kmeans", "dsa", "dm", "mtt", "kip", "frepo", "krrst")


def load_records(folder: Path) -> list[RunRecord]:
    if not folder.exists():
        return []
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            out.append(RunRecord.from_dict(json.loads(p.read_text())))
        except (json.JSONDecodeError, KeyError) as e:
            raise DDBenchError(f"leaderboard record {p} is not a valid run record ({e}); remove it or re-export it") from None
    return out


#: overrides that choose what is measured, not what is evaluated: never part of a row label
_NOT_IN_LABEL = {"eval_split", "task.eval_split"}


def split_of(rec: RunRecord) -> str:
    """"val" for sizing runs (every metric on a validation split), else "test"."""
    names = [m.name for m in rec.metrics]
    return "val" if names and all(n.startswith("val/") or n == "imitation_mse" for n in names) else "test"


def row_label(rec: RunRecord) -> str:
    """The method, plus the recipe and any other option changed on top of the preset."""
    label = rec.method
    overrides = {k: v for k, v in (rec.config.get("overrides") or {}).items() if k not in _NOT_IN_LABEL}
    recipe = overrides.pop("recipe", None) or overrides.pop("method.recipe", None)
    if recipe is None and "overrides" not in rec.config and rec.method in ("random", "kmeans"):
        # records from before overrides were kept: the recipe is the only variant they had
        recipes = {v.get("recipe") for v in rec.per_seed.values() if isinstance(v, dict) and "recipe" in v}
        recipe = "/".join(sorted(r for r in recipes - {"hard_ce_dsa", None})) or None
    if recipe and recipe != "hard_ce_dsa":
        label += " + " + recipe
    if overrides:
        label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) + ")"
    return label


def _target_models(rec: RunRecord) -> list[dict[str, Any]]:
    return [v["extras"]["target_model"] for v in rec.per_seed.values()
            if isinstance(v, dict) and isinstance(v.get("extras", {}).get("target_model"), dict)]


#: target-model objectives that a method's paper uses; any other makes a row a diagnostic
PAPER_TARGET_OBJECTIVES = (None, "barlow_twins")


def diagnostic_reason(rec: RunRecord) -> str | None:
    """Why a row is a diagnostic, not a contender, or None: the reasons plugins gave with
    ``RunContext.mark_diagnostic`` (``extras["diagnostic"]``), or a target model whose objective
    is not a paper's (records made before ``mark_diagnostic`` existed)."""
    reasons: list[str] = []
    for v in rec.per_seed.values():
        for r in (v.get("extras", {}).get("diagnostic") or []) if isinstance(v, dict) else []:
            if str(r) not in reasons:
                reasons.append(str(r))
    if not reasons:
        for tm in _target_models(rec):
            if tm.get("objective") not in PAPER_TARGET_OBJECTIVES:
                reasons.append(f"{tm.get('objective')} target")
                break
    return "; ".join(reasons) or None


def _target_quality(rec: RunRecord) -> str:
    vals = [tm.get("linear_probe_val") for tm in _target_models(rec)]
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    objective = next((tm.get("objective") for tm in _target_models(rec)
                      if tm.get("objective") not in PAPER_TARGET_OBJECTIVES), None)
    return f"{vals[0]:.1f}" + (f" ({objective} target)" if objective else "")


class Table:
    def __init__(self, task: str, source: str, preset: str | None, split: str = "test") -> None:
        self.task, self.source, self.preset, self.split = task, source, preset, split
        self.rows: "OrderedDict[str, RunRecord]" = OrderedDict()

    @property
    def key(self) -> str:
        return f"{self.task}__{self.source}__{self.preset}" + ("__val" if self.split == "val" else "")

    def columns(self) -> list[str]:
        cols: list[str] = []
        for rec in self.rows.values():
            for m in rec.metrics:
                if m.name not in cols:
                    cols.append(m.name)
        # accuracy columns first, diagnostics (lower is better) last
        return sorted(cols, key=lambda c: (not self._hib(c), cols.index(c)))

    def _hib(self, col: str) -> bool:
        for rec in self.rows.values():
            m = rec.metric(col)
            if m is not None:
                return m.higher_is_better
        return True

    def best(self, col: str) -> str | None:
        vals = [(rec.metric(col).mean, label) for label, rec in self.rows.items()
                if rec.metric(col) is not None and rec.metric(col).mean is not None and label != "none"
                and diagnostic_reason(rec) is None]
        if not vals:
            return None
        return (max(vals) if self._hib(col) else min(vals))[1]

    def notes(self) -> list[str]:
        out = []
        for col in self.columns():
            for rec in self.rows.values():
                ex = next((v.get("metrics_extra", {}).get(col, {}) for v in rec.per_seed.values()
                           if isinstance(v, dict) and v.get("metrics_extra", {}).get(col)), {})
                split = "val" if col.startswith("val/") else "test"
                n_eval = ex.get(f"n_{split}") or (ex.get("target") or {}).get(f"n_{split}")
                if n_eval:
                    pts = 100.0 / n_eval
                    if pts >= 0.2:
                        what = "validation" if split == "val" else "test"
                        n = max((m.n for r in self.rows.values() for m in r.metrics if m.name == col), default=0)
                        out.append(f"`{col}`: {n_eval} {what} images, one image = {pts:.2f} points; with n={n} seeds "
                                   f"gaps under ~{5 * pts:.1f} points are not resolvable.")
                    break
        return out


def build_tables(records: Iterable[RunRecord]) -> list[Table]:
    tables: dict[tuple, Table] = {}
    for rec in sorted(records, key=lambda r: r.started_at):
        if rec.status != "finished":
            continue
        k = (rec.task, rec.source, rec.preset, split_of(rec))
        t = tables.setdefault(k, Table(*k))
        t.rows[row_label(rec)] = rec  # the newest finished record of a row wins
    for t in tables.values():
        order = {n: i for i, n in enumerate(ROW_ORDER)}
        # entries first (in method order), then the diagnostics (ablations, oracles)
        t.rows = OrderedDict(sorted(t.rows.items(), key=lambda kv: (diagnostic_reason(kv[1]) is not None,
                                                                    order.get(kv[1].method, 99), kv[0])))
    return sorted(tables.values(), key=lambda t: (t.split == "val", t.key))


def _cell(rec: RunRecord, col: str, bold: bool) -> str:
    m = rec.metric(col)
    if m is None or m.mean is None:
        return "–"
    s = f"{m.mean:.2f} ± {m.std:.2f}" if abs(m.mean) >= 0.1 or m.mean == 0 else f"{m.mean:.4f} ± {m.std:.4f}"
    return f"**{s}**" if bold else s


def to_markdown(t: Table) -> str:
    cols = t.columns()
    best = {c: t.best(c) for c in cols}
    title = f"### {t.task} — source `{t.source}`, preset `{t.preset}`"
    if t.split == "val":
        title += " — validation splits (for sizing; not results)"
    lines = [title, ""]
    head = ["method", *[f"{c} {'↑' if t._hib(c) else '↓'}" for c in cols], "n", "target probe (val %)", "budget (images / bytes)", "run"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for label, rec in t.rows.items():
        n = max((m.n for m in rec.metrics), default=0)
        budget = next((v.get("budget") for v in rec.per_seed.values() if isinstance(v, dict) and v.get("budget")), {}) or {}
        cells = [label, *[_cell(rec, c, best[c] == label) for c in cols], str(n), _target_quality(rec),
                 f"{budget.get('images', '–')} / {budget.get('bytes', '–')}", f"`{rec.run_id}`"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± std over seeds (n); the seeds vary distillation and evaluation together and are shared by all rows "
                 "(paired). Bold: best per column among methods (the `none` reference excluded). "
                 "Rows `random + representation_mse` use KRR-ST's pre-training recipe on random real images: "
                 "the difference to `krrst` is what the distillation adds.")
    diagnostics = [label for label, rec in t.rows.items() if diagnostic_reason(rec)]
    if diagnostics:
        lines.append("- Diagnostic rows, not contenders (never bold): "
                     + ", ".join(f"`{d}` ({diagnostic_reason(t.rows[d])})" for d in diagnostics)
                     + ". They answer a question about a method (an ablation, an oracle) and are not entries."
                     + (" A supervised target is trained with the source's labels: it shows what a method would do "
                        "with a class-discriminative target, which the paper's setting does not provide; "
                        "imitation_mse is measured against each row's own target model, so it compares only among "
                        "rows with the same target." if any("supervised" in (diagnostic_reason(t.rows[d]) or "")
                                                            for d in diagnostics) else ""))
    for note in t.notes():
        lines.append(f"- {note}")
    scaled = any(rec.config.get("scaled") for rec in t.rows.values())
    if scaled:
        lines.append(f"- Preset `{t.preset}` scales widths, budgets and steps down from the paper; each record's config "
                     "holds the exact values.")
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    cols = t.columns()
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["method"]
    for c in cols:
        header += [c, f"{c}_std"]
    w.writerow(header + ["n", "run_id"])
    for label, rec in t.rows.items():
        row: list[Any] = [label]
        for c in cols:
            m = rec.metric(c)
            row += [None if m is None else m.mean, None if m is None else m.std]
        w.writerow(row + [max((m.n for m in rec.metrics), default=0), rec.run_id])
    return buf.getvalue()


def to_png(t: Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in t.columns() if t._hib(c) and not c.startswith("val/")]
    if not cols:
        return
    labels = list(t.rows)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(cols) * max(1, len(labels)) / 3), 4))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        rec = t.rows[label]
        means = [(rec.metric(c).mean if rec.metric(c) and rec.metric(c).mean is not None else 0) for c in cols]
        stds = [(rec.metric(c).std or 0) if rec.metric(c) else 0 for c in cols]
        ax.bar([j + i * width for j in range(len(cols))], means, width, yerr=stds, capsize=3, label=label)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(cols))])
    ax.set_xticklabels(cols)
    ax.set_ylabel("top-1 %")
    ax.set_title(f"{t.task}: source {t.source}, preset {t.preset}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build(records_dir: Path, out_dir: Path, png: bool = True) -> list[Path]:
    tables = build_tables(load_records(records_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md = ["# ddbench leaderboard", "",
          "Generated by `ddbench leaderboard build` from the records in `leaderboard/records/`; do not edit by hand.", ""]
    for t in tables:
        md.append(to_markdown(t))
        p = out_dir / f"{t.key}.csv"
        p.write_text(to_csv(t))
        written.append(p)
        if png:
            p = out_dir / f"{t.key}.png"
            to_png(t, p)
            if p.exists():
                md.append(f"![{t.key}]({p.name})\n")
                written.append(p)
    if not tables:
        md.append("(no finished records yet)")
    p = out_dir / "README.md"
    p.write_text("\n".join(md))
    written.insert(0, p)
    return written
