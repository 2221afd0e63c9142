"""The leaderboard is derived data: records in, Markdown/CSV/PNG out, never edited by hand.

Records are JSON files (one ``RunRecord`` each) under ``leaderboard/records/``; ``ddbench
leaderboard add`` exports them from the local run store, ``ddbench leaderboard build``
turns them into one table per (task, source, preset, budget, split).

Everything shown comes from what the plugins declared and the records carry: the
task's metric declarations (name, direction, unit, split, diagnostic), the method's
role (reference rows, control rows), the facts plugins reported (``ctx.report``) and the
reasons they gave for diagnostic rows (``ctx.mark_diagnostic``). No plugin is known
here by name.
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
from .types import MetricSpec


def load_records(folder: Path) -> list[RunRecord]:
    if not folder.exists():
        return []
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            out.append(RunRecord.from_dict(json.loads(p.read_text())))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DDBenchError(f"leaderboard record {p} is not a valid run record ({e}); remove it or re-export it") from None
    return out


def metric_specs(rec: RunRecord) -> list[MetricSpec]:
    """The record's declared metrics, in declaration order, limited to those it has; a metric
    without a declaration (records from before declarations) gets a plain one."""
    out = [s for s in rec.config.metrics if rec.metric(s.name) is not None]
    for m in rec.metrics:
        if rec.config.metric_spec(m.name) is None:
            out.append(MetricSpec(m.name, higher_is_better=m.higher_is_better))
    return out


def split_of(rec: RunRecord) -> str:
    """"val" for sizing runs (every headline metric on a validation split), else "test"."""
    heads = [s for s in metric_specs(rec) if not s.diagnostic]
    return "val" if heads and all(s.split == "val" for s in heads) else "test"


def row_label(rec: RunRecord) -> str:
    """The method, plus every option the user changed on top of the preset, except those the
    task declares as choosing what is measured (they pick the table instead)."""
    skip = set(rec.config.measurement_options)
    overrides = {k: v for k, v in rec.config.overrides.items() if k.split(".", 1)[-1] not in skip and k not in skip}
    label = rec.method
    if overrides:
        label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) + ")"
    return label


def diagnostic_reason(rec: RunRecord) -> str | None:
    """Why a row is a diagnostic, not a contender: the reasons plugins gave with
    ``RunContext.mark_diagnostic``; None for an entry."""
    reasons: list[str] = []
    for r in rec.seed_results():
        for why in r.diagnostic:
            if why not in reasons:
                reasons.append(why)
    return "; ".join(reasons) or None


def reported(rec: RunRecord) -> dict[str, Any]:
    """The facts plugins reported beside the result (the first seed's value of each)."""
    out: dict[str, Any] = {}
    for r in rec.seed_results():
        for label, item in r.reported.items():
            out.setdefault(label, item.get("value") if isinstance(item, dict) else item)
    return out


def cost(rec: RunRecord) -> tuple[float | None, float | None]:
    """(mean seconds, largest peak memory in MiB) of making the run's distilled sets, over the
    seeds that recorded it (``SeedResult.distill_cost``); None where no seed did."""
    secs = [r.distill_cost.get("seconds") for r in rec.seed_results()]
    secs = [float(x) for x in secs if x is not None]
    mems = [r.distill_cost.get("peak_memory_mb") for r in rec.seed_results()]
    mems = [float(x) for x in mems if x is not None]
    return (sum(secs) / len(secs) if secs else None), (max(mems) if mems else None)


def _cost_cells(rec: RunRecord) -> list[str]:
    secs, mem = cost(rec)
    return ["–" if secs is None else (f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.0f} s"),
            "–" if mem is None else f"{mem:.0f}"]


def budget_label(rec: RunRecord) -> str:
    if rec.config.method_info.reference or not rec.config.method_info.takes_budget:
        return "any"
    images, ipc = rec.budget.get("images"), rec.budget.get("ipc")
    if images is None:
        return "?"
    return f"{images} images" + (f" (ipc {ipc})" if ipc else "")


class Table:
    def __init__(self, task: str, source: str, preset: str | None, budget: str, split: str = "test") -> None:
        self.task, self.source, self.preset, self.budget, self.split = task, source, preset, budget, split
        self.rows: "OrderedDict[str, RunRecord]" = OrderedDict()

    @property
    def key(self) -> str:
        budget = self.budget.split(" ")[0] + "img"
        return f"{self.task}__{self.source}__{self.preset}__{budget}" + ("__val" if self.split == "val" else "")

    def specs(self) -> list[MetricSpec]:
        """Every metric of the table: headline columns first, diagnostics last, each in the
        order its task declared it."""
        seen: dict[str, MetricSpec] = {}
        for rec in self.rows.values():
            for s in metric_specs(rec):
                seen.setdefault(s.name, s)
        specs = list(seen.values())
        return sorted(specs, key=lambda s: (s.diagnostic, specs.index(s)))

    def columns(self) -> list[str]:
        return [s.name for s in self.specs()]

    def spec(self, col: str) -> MetricSpec:
        return next(s for s in self.specs() if s.name == col)

    def reported_columns(self) -> list[str]:
        cols: list[str] = []
        for rec in self.rows.values():
            for label in reported(rec):
                if label not in cols:
                    cols.append(label)
        return cols

    def contenders(self) -> list[str]:
        """Rows that may be best: not references, not diagnostics."""
        return [label for label, rec in self.rows.items()
                if not rec.config.method_info.reference and diagnostic_reason(rec) is None]

    def best(self, col: str) -> str | None:
        spec = self.spec(col)
        vals = [(self.rows[label].metric(col).mean, label) for label in self.contenders()
                if self.rows[label].metric(col) is not None and self.rows[label].metric(col).mean is not None]
        if not vals:
            return None
        return (max(vals) if spec.higher_is_better else min(vals))[1]

    def notes(self) -> list[str]:
        out = []
        n_seeds = max((m.n for r in self.rows.values() for m in r.metrics), default=0)
        for spec in self.specs():
            if spec.detail:
                continue
            n_eval = None
            for rec in self.rows.values():
                for r in rec.seed_results():
                    n_eval = n_eval or r.n_examples.get(spec.name)
            if n_eval and spec.unit.endswith("%"):
                pts = 100.0 / n_eval
                if pts >= 0.2:
                    out.append(f"`{spec.name}`: {n_eval} {spec.split} examples, one example = {pts:.2f} points; "
                               f"with n={n_seeds} seeds gaps under ~{5 * pts:.1f} points are not resolvable.")
        return out


def _table_key(rec: RunRecord) -> tuple:
    return (rec.task, rec.source, rec.preset, split_of(rec))


def build_tables(records: Iterable[RunRecord]) -> list[Table]:
    finished = [r for r in sorted(records, key=lambda r: r.started_at) if r.status == "finished"]
    tables: dict[tuple, Table] = {}
    for rec in finished:
        if rec.config.method_info.reference:
            continue
        task, source, preset, split = _table_key(rec)
        k = (task, source, preset, budget_label(rec), split)
        t = tables.setdefault(k, Table(*k[:4], split=k[4]))
        t.rows[row_label(rec)] = rec  # the newest finished record of a row wins
    # a reference row (e.g. no pre-training) spends no budget: it belongs to every budget's table
    for rec in finished:
        if not rec.config.method_info.reference:
            continue
        homes = [t for t in tables.values() if (t.task, t.source, t.preset, t.split) == _table_key(rec)]
        if not homes:
            task, source, preset, split = _table_key(rec)
            homes = [tables.setdefault((task, source, preset, "any", split), Table(task, source, preset, "any", split))]
        for t in homes:
            t.rows[row_label(rec)] = rec
    for t in tables.values():
        # references first, then entries, then the diagnostics (ablations, oracles); alphabetical within
        t.rows = OrderedDict(sorted(t.rows.items(), key=lambda kv: (
            0 if kv[1].config.method_info.reference else 2 if diagnostic_reason(kv[1]) else 1, kv[0])))
    return sorted(tables.values(), key=lambda t: (t.split == "val", t.task, t.source, str(t.preset), t.budget))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"
    return "–" if value is None else str(value)


def _cell(rec: RunRecord, col: str, bold: bool) -> str:
    m = rec.metric(col)
    if m is None or m.mean is None:
        return "–"
    s = f"{m.mean:.2f} ± {m.std:.2f}" if abs(m.mean) >= 0.1 or m.mean == 0 else f"{m.mean:.4f} ± {m.std:.4f}"
    return f"**{s}**" if bold else s


def to_markdown(t: Table) -> str:
    specs = [s for s in t.specs() if not s.detail]  # breakdowns (``MetricSpec.detail``) live in the CSV
    best = {s.name: t.best(s.name) for s in specs}
    rep = t.reported_columns()
    title = f"### {t.task} — source `{t.source}`, preset `{t.preset}`, budget {t.budget}"
    if t.split == "val":
        title += " — validation splits (for sizing; not results)"
    lines = [title, ""]
    head = ["method", *[f"{s.name} {'↑' if s.higher_is_better else '↓'}" for s in specs], "n", *rep,
            "budget (images / bytes)", "distill time / seed", "distill peak MiB", "run"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for label, rec in t.rows.items():
        n = max((m.n for m in rec.metrics), default=0)
        facts = reported(rec)
        cells = [label, *[_cell(rec, s.name, best[s.name] == label) for s in specs], str(n),
                 *[_fmt(facts.get(c)) for c in rep],
                 f"{rec.budget.get('images', '–')} / {rec.budget.get('bytes', '–')}", *_cost_cells(rec),
                 f"`{rec.run_id}`"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    varied: dict[str, list[str]] = {}
    for label, r in t.rows.items():
        for v in sorted({m.varied for m in r.metrics if m.varied}):
            varied.setdefault(v, []).append(label)
    parts = [v if len(labels) == len(t.rows) or i == 0 else f"{v} for " + ", ".join(f"`{x}`" for x in labels)
             for i, (v, labels) in enumerate(sorted(varied.items(), key=lambda kv: -len(kv[1])))]
    lines.append("Mean ± std over seeds (n); what varies between seeds: " + ("; ".join(parts) or "the seed")
                 + ". Seeds are shared by all rows (paired). Bold: best per column among the entries "
                 "(reference and diagnostic rows excluded).")
    for s in specs:
        lines.append(f"- `{s.name}` ({s.unit or 'value'}, {'higher' if s.higher_is_better else 'lower'} is better"
                     f"{', diagnostic' if s.diagnostic else ''}): {s.description}")
    explained = set()
    for label, rec in t.rows.items():
        for control in rec.config.method_info.controls:
            present = [other for other, o in t.rows.items() if o.method == control.method
                       and all(o.config.overrides.get(k, o.config.overrides.get(f"method.{k}")) == v
                               for k, v in control.overrides.items())]
            if present and control.note and (rec.method, control.note) not in explained:
                explained.add((rec.method, control.note))
                lines.append(f"- Control of `{rec.method}`: {control.note}.")
    references = [label for label, rec in t.rows.items() if rec.config.method_info.reference]
    if references:
        lines.append("- Reference rows, never ranked: " + ", ".join(f"`{r}`" for r in references) + ".")
    diagnostics = [label for label, rec in t.rows.items() if diagnostic_reason(rec)]
    if diagnostics:
        lines.append("- Diagnostic rows, not contenders (never bold): "
                     + ", ".join(f"`{d}` ({diagnostic_reason(t.rows[d])})" for d in diagnostics)
                     + ". They answer a question about a method (an ablation, an oracle) and are not entries.")
    for label in rep:
        desc = next((item.get("description") for rec in t.rows.values() for r in rec.seed_results()
                     for lab, item in r.reported.items() if lab == label and isinstance(item, dict)
                     and item.get("description")), "")
        if desc:
            lines.append(f"- {label}: {desc}")
    for note in t.notes():
        lines.append(f"- {note}")
    lines.append("- distill time / seed, distill peak MiB: what making the distilled set cost when it was made "
                 "(mean seconds over seeds; the distilling process's peak resident memory, or peak CUDA memory "
                 "on a GPU, which includes data loading); '–' for records made before ddbench recorded it. "
                 "Times depend on the machine and its load: compare rows made on the same machine.")
    details = [s.name for s in t.specs() if s.detail]
    if details:
        lines.append(f"- The CSV beside this table also holds {len(details)} breakdown columns (e.g. "
                     f"`{details[0]}`): the per-part numbers behind the columns above.")
    if any(rec.config.scaled for rec in t.rows.values()):
        lines.append(f"- Preset `{t.preset}` scales widths, budgets and steps down from the paper; each record's config "
                     "holds the exact values and how they were scaled.")
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    cols = t.columns()
    rep = t.reported_columns()
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["method"]
    for c in cols:
        header += [c, f"{c}_std"]
    w.writerow(header + rep + ["budget_images", "budget_ipc", "budget_bytes", "n", "distill_seconds",
                               "distill_peak_memory_mb", "run_id"])
    for label, rec in t.rows.items():
        row: list[Any] = [label]
        for c in cols:
            m = rec.metric(c)
            row += [None if m is None else m.mean, None if m is None else m.std]
        facts = reported(rec)
        row += [facts.get(c) for c in rep]
        secs, mem = cost(rec)
        w.writerow(row + [rec.budget.get("images"), rec.budget.get("ipc"), rec.budget.get("bytes"),
                          max((m.n for m in rec.metrics), default=0),
                          None if secs is None else round(secs, 1), mem, rec.run_id])
    return buf.getvalue()


def to_png(t: Table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [s for s in t.specs() if not s.diagnostic and not s.detail and s.higher_is_better]
    if not specs:
        return
    cols = [s.name for s in specs]
    units = {s.unit for s in specs}
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
    ax.set_ylabel(units.pop() if len(units) == 1 else "value")
    ax.set_title(f"{t.task}: source {t.source}, preset {t.preset}, budget {t.budget}")
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
