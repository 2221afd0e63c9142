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
import dataclasses
import io
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

from .errors import DDBenchError
from .records import RunRecord
from .types import MetricSpec


def load_record_files(folder: Path) -> list[tuple[Path, RunRecord]]:
    """(file, record) for every ``*.json`` in ``folder``, by file name."""
    if not folder.exists():
        return []
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            out.append((p, RunRecord.from_dict(json.loads(p.read_text()))))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DDBenchError(f"leaderboard record {p} is not a valid run record ({e}); remove it or re-export it") from None
    return out


def load_records(folder: Path) -> list[RunRecord]:
    return [rec for _, rec in load_record_files(folder)]


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


def metric_text(mean: float | None, std: float | None) -> str:
    """How every rendering (Markdown, HTML, the terminal) shows a mean ± std."""
    if mean is None:
        return "–"
    std = std or 0.0
    return f"{mean:.2f} ± {std:.2f}" if abs(mean) >= 0.1 or mean == 0 else f"{mean:.4f} ± {std:.4f}"


def _cell(rec: RunRecord, col: str, bold: bool) -> str:
    m = rec.metric(col)
    if m is None or m.mean is None:
        return "–"
    s = metric_text(m.mean, m.std)
    return f"**{s}**" if bold else s


def verification_text(v: dict[str, Any] | None) -> str:
    """A record's verification (``ddbench leaderboard accept``) in one short cell."""
    if not v:
        return "–"
    seeds = ",".join(str(s) for s in v.get("seeds") or [])
    return f"✓ seed{'s' if len(v.get('seeds') or []) != 1 else ''} {seeds}" if v.get("verdict") == "verified" \
        else str(v.get("verdict", "?"))


@dataclasses.dataclass
class RowView:
    """One row of a table, as every rendering shows it."""

    label: str
    record: RunRecord
    #: "reference" (never ranked), "entry" or "diagnostic" (an ablation or oracle; never best)
    role: str
    reason: str | None
    #: metric name -> (mean, std); absent when the record has no value
    metrics: dict[str, tuple[float | None, float | None]]
    best: frozenset[str]
    n: int
    facts: dict[str, Any]
    budget: dict[str, Any]
    distill_seconds: float | None
    distill_peak_mb: float | None

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def verification(self) -> dict[str, Any] | None:
        return self.record.verification


@dataclasses.dataclass
class TableView:
    """A table's columns, rows and notes: the one source the Markdown, CSV and HTML renderings
    are made from, so the three always agree."""

    table: Table
    #: every metric: headline columns, then diagnostics; ``detail`` ones only in the CSV
    specs: list[MetricSpec]
    reported: list[str]
    rows: list[RowView]
    #: the paragraph under the table, then one line per note (Markdown inline syntax)
    notes: list[str]
    #: true when a row carries a verification (``ddbench leaderboard accept``)
    verified_column: bool

    @property
    def shown(self) -> list[MetricSpec]:
        """The metric columns of the Markdown and HTML tables (breakdowns stay in the CSV)."""
        return [s for s in self.specs if not s.detail]

    def title(self) -> str:
        t = self.table
        text = f"{t.task} — source `{t.source}`, preset `{t.preset}`, budget {t.budget}"
        return text + (" — validation splits (for sizing; not results)" if t.split == "val" else "")


def view(t: Table) -> TableView:
    specs = t.specs()
    best = {s.name: t.best(s.name) for s in specs}
    rows = []
    for label, rec in t.rows.items():
        reason = diagnostic_reason(rec)
        metrics = {}
        for s in specs:
            m = rec.metric(s.name)
            if m is not None:
                metrics[s.name] = (m.mean, m.std)
        secs, mem = cost(rec)
        rows.append(RowView(label=label, record=rec,
                            role="reference" if rec.config.method_info.reference else "diagnostic" if reason else "entry",
                            reason=reason, metrics=metrics,
                            best=frozenset(name for name, who in best.items() if who == label),
                            n=max((m.n for m in rec.metrics), default=0), facts=reported(rec),
                            budget={k: rec.budget.get(k) for k in ("images", "ipc", "bytes")},
                            distill_seconds=secs, distill_peak_mb=mem))
    tv = TableView(table=t, specs=specs, reported=t.reported_columns(), rows=rows, notes=[],
                   verified_column=any(r.verification for r in rows))
    tv.notes = _notes(tv)
    return tv


def _cost_text(secs: float | None, mem: float | None) -> list[str]:
    return ["–" if secs is None else (f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.0f} s"),
            "–" if mem is None else f"{mem:.0f}"]


def display_cells(tv: TableView) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of the Markdown/HTML table, as text (bold is the renderer's)."""
    head = ["method", *[f"{s.name} {'↑' if s.higher_is_better else '↓'}" for s in tv.shown], "n", *tv.reported,
            "budget (images / bytes)", "distill time / seed", "distill peak MiB", "run"]
    if tv.verified_column:
        head.insert(-1, "verified")
    out = []
    for r in tv.rows:
        cells = [r.label, *[metric_text(*r.metrics.get(s.name, (None, None))) for s in tv.shown], str(r.n),
                 *[_fmt(r.facts.get(c)) for c in tv.reported],
                 f"{'–' if r.budget['images'] is None else r.budget['images']} / "
                 f"{'–' if r.budget['bytes'] is None else r.budget['bytes']}",
                 *_cost_text(r.distill_seconds, r.distill_peak_mb), r.run_id]
        if tv.verified_column:
            cells.insert(-1, verification_text(r.verification))
        out.append(cells)
    return head, out


def _notes(tv: TableView) -> list[str]:
    t, specs = tv.table, tv.shown
    lines = []
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
        lines.append(f"`{s.name}` ({s.unit or 'value'}, {'higher' if s.higher_is_better else 'lower'} is better"
                     f"{', diagnostic' if s.diagnostic else ''}): {s.description}")
    explained = set()
    for label, rec in t.rows.items():
        for control in rec.config.method_info.controls:
            present = [other for other, o in t.rows.items() if o.method == control.method
                       and all(o.config.overrides.get(k, o.config.overrides.get(f"method.{k}")) == v
                               for k, v in control.overrides.items())]
            if present and control.note and (rec.method, control.note) not in explained:
                explained.add((rec.method, control.note))
                lines.append(f"Control of `{rec.method}`: {control.note}.")
    references = [r.label for r in tv.rows if r.role == "reference"]
    if references:
        lines.append("Reference rows, never ranked: " + ", ".join(f"`{r}`" for r in references) + ".")
    diagnostics = [r for r in tv.rows if r.reason]
    if diagnostics:
        lines.append("Diagnostic rows, not contenders (never bold): "
                     + ", ".join(f"`{d.label}` ({d.reason})" for d in diagnostics)
                     + ". They answer a question about a method (an ablation, an oracle) and are not entries.")
    for label in tv.reported:
        desc = next((item.get("description") for rec in t.rows.values() for r in rec.seed_results()
                     for lab, item in r.reported.items() if lab == label and isinstance(item, dict)
                     and item.get("description")), "")
        if desc:
            lines.append(f"{label}: {desc}")
    lines.extend(t.notes())
    lines.append("distill time / seed, distill peak MiB: what making the distilled set cost when it was made "
                 "(mean seconds over seeds; the distilling process's peak resident memory, or peak CUDA memory "
                 "on a GPU, which includes data loading); '–' for records made before ddbench recorded it. "
                 "Times depend on the machine and its load: compare rows made on the same machine.")
    if tv.verified_column:
        lines.append("verified: the seeds a maintainer re-scored from the submitted distilled sets "
                     "(`ddbench leaderboard verify`); the record holds the verifier's numbers beside the submitted ones.")
    details = [s.name for s in tv.specs if s.detail]
    if details:
        lines.append(f"The CSV beside this table also holds {len(details)} breakdown columns (e.g. "
                     f"`{details[0]}`): the per-part numbers behind the columns above.")
    if any(rec.config.scaled for rec in t.rows.values()):
        lines.append(f"Preset `{t.preset}` scales widths, budgets and steps down from the paper; each record's config "
                     "holds the exact values and how they were scaled.")
    return lines


def to_markdown(t: Table | TableView) -> str:
    tv = t if isinstance(t, TableView) else view(t)
    head, cells = display_cells(tv)
    lines = [f"### {tv.title()}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r, row in zip(tv.rows, cells):
        row = list(row)
        for i, s in enumerate(tv.shown, start=1):
            if s.name in r.best and row[i] != "–":
                row[i] = f"**{row[i]}**"
        row[-1] = f"`{row[-1]}`"
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(tv.notes[0])
    lines.extend(f"- {note}" for note in tv.notes[1:])
    return "\n".join(lines) + "\n"


def to_csv(t: Table | TableView) -> str:
    tv = t if isinstance(t, TableView) else view(t)
    buf = io.StringIO()
    w = csv.writer(buf)
    header = ["method"]
    for s in tv.specs:
        header += [s.name, f"{s.name}_std"]
    header += tv.reported + ["budget_images", "budget_ipc", "budget_bytes", "n", "distill_seconds",
                             "distill_peak_memory_mb"]
    if tv.verified_column:
        header.append("verified_seeds")
    w.writerow(header + ["run_id"])
    for r in tv.rows:
        row: list[Any] = [r.label]
        for s in tv.specs:
            row += list(r.metrics.get(s.name, (None, None)))
        row += [r.facts.get(c) for c in tv.reported]
        row += [r.budget["images"], r.budget["ipc"], r.budget["bytes"], r.n,
                None if r.distill_seconds is None else round(r.distill_seconds, 1), r.distill_peak_mb]
        if tv.verified_column:
            v = r.verification or {}
            row.append(" ".join(str(s) for s in v.get("seeds") or []) if v.get("verdict") == "verified" else None)
        w.writerow(row + [r.run_id])
    return buf.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path | None) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    # no timestamp in the PNG: rebuilding from the same records gives the same bytes
    fig.savefig(buf, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def bar_png(t: Table, path: Path | None = None) -> bytes | None:
    """Bars per headline column (higher-is-better, not diagnostic, not a breakdown), one per row,
    with the std as error bars; None when the table has no such column."""
    specs = [s for s in t.specs() if not s.diagnostic and not s.detail and s.higher_is_better]
    if not specs:
        return None
    plt = _pyplot()
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
    ax.set_title(f"{t.task}: source {t.source},\npreset {t.preset}, budget {t.budget}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def to_png(t: Table, path: Path) -> None:
    bar_png(t, path)


#: a table gets a heat map (rows x headline columns) from this many headline columns of one unit
HEATMAP_MIN_COLUMNS = 3


def heatmap_png(t: Table, path: Path | None = None) -> bytes | None:
    """A rows x columns heat map of the means when the table has at least
    ``HEATMAP_MIN_COLUMNS`` headline columns (not diagnostic, not breakdowns) of the same unit,
    e.g. one column per architecture; None otherwise."""
    specs = [s for s in t.specs() if not s.diagnostic and not s.detail]
    if len(specs) < HEATMAP_MIN_COLUMNS or len({s.unit for s in specs}) != 1 or not t.rows:
        return None
    import math

    plt = _pyplot()
    labels = list(t.rows)
    cols = [s.name for s in specs]
    grid = [[(m.mean if (m := t.rows[label].metric(c)) is not None and m.mean is not None else math.nan)
             for c in cols] for label in labels]
    longest = max(len(label) for label in labels)  # row labels take room on the left
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cols) + 3 + 0.08 * longest), max(2.5, 0.45 * len(labels) + 1.8)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    finite = [v for row in grid for v in row if not math.isnan(v)]
    mid = (min(finite) + max(finite)) / 2 if finite else 0
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if v > mid else "white")
    fig.colorbar(im, ax=ax, label=specs[0].unit or "value")
    ax.set_title(f"{t.task}: mean over seeds", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _inline_md(text: str) -> str:
    """The notes' Markdown inline syntax (`code`, **bold**) as HTML."""
    import html
    import re

    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def to_html(tables: list[Table], links: dict[str, str] | None = None, plots: bool = True,
            n_records: int | None = None, images: dict[str, dict[str, bytes | None]] | None = None) -> str:
    """The leaderboard as one self-contained page (inline CSS and script, plots as data URIs, no
    network at view time): one section per table, sortable columns, reference and diagnostic
    rows apart, each row linking to its record (``links``: run id -> relative URL). ``images``
    (table key -> {"bars": png, "heat map": png}) reuses plots already drawn."""
    import base64
    import html

    from .page_assets import CSS, SCRIPT

    links = links or {}
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">', "<title>ddbench leaderboard</title>", f"<style>{CSS}</style>",
           "</head>", "<body>", "<header>", "<h1>ddbench leaderboard</h1>",
           "<p>Generated by <code>ddbench leaderboard build</code> from the records in <code>leaderboard/records/</code>"
           + (f" ({n_records} records)" if n_records is not None else "")
           + "; do not edit by hand. Click a column header to sort (reference and diagnostic rows stay in their "
           "own groups). Each method links to its record.</p>"]
    views = [view(t) for t in tables]
    if views:
        out.append('<nav><ol>' + "".join(f'<li><a href="#{esc(tv.table.key)}">{_inline_md(tv.title())}</a></li>'
                                         for tv in views) + "</ol></nav>")
    else:
        out.append("<p>(no finished records yet)</p>")
    out.append("</header>")
    out.append("<main>")
    for tv in views:
        head, cells = display_cells(tv)
        out.append(f'<section id="{esc(tv.table.key)}">')
        out.append(f"<h2>{_inline_md(tv.title())}</h2>")
        out.append(f'<div class="scroll"><table class="lb" data-key="{esc(tv.table.key)}">')
        ths = []
        for i, (h, kind) in enumerate(zip(head, column_kinds(tv))):
            numeric = kind not in ("label", "run")
            desc = tv.shown[i - 1].description if kind == "metric" else ""
            title = f' title="{esc(desc)}"' if desc else ""
            ths.append(f'<th scope="col" tabindex="0" data-type="{"num" if numeric else "text"}"{title}>'
                       f'{esc(h)}<span class="arrow"></span></th>')
        out.append("<thead><tr>" + "".join(ths) + "</tr></thead>")
        groups = [("reference", "reference rows: never ranked"), ("entry", ""),
                  ("diagnostic", "diagnostic rows: ablations and oracles, not contenders (never bold)")]
        for role, caption in groups:
            members = [(r, c) for r, c in zip(tv.rows, cells) if r.role == role]
            if not members:
                continue
            out.append(f'<tbody class="rows-{role}">')
            if caption:
                out.append(f'<tr class="group"><th colspan="{len(head)}" scope="rowgroup">{esc(caption)}</th></tr>')
            for r, row in members:
                out.append(_html_row(tv, r, row, links.get(r.run_id)))
            out.append("</tbody>")
        out.append("</table></div>")
        out.append(f'<p class="lead">{_inline_md(tv.notes[0])}</p>')
        out.append('<ul class="notes">' + "".join(f"<li>{_inline_md(n)}</li>" for n in tv.notes[1:]) + "</ul>")
        if plots:
            drawn = (images or {}).get(tv.table.key) or {"bars": bar_png(tv.table), "heat map": heatmap_png(tv.table)}
            for kind, data in drawn.items():
                if data:
                    uri = "data:image/png;base64," + base64.b64encode(data).decode()
                    out.append(f'<figure class="{kind.replace(" ", "")}"><img alt="{esc(kind)}: {esc(tv.table.key)}" '
                               f'src="{uri}"><figcaption>{esc(kind)}: {_inline_md(tv.title())}</figcaption></figure>')
        out.append("</section>")
    out += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def column_kinds(tv: TableView) -> list[str]:
    """What each column of :func:`display_cells` holds."""
    kinds = ["label", *["metric"] * len(tv.shown), "n", *["reported"] * len(tv.reported), "budget", "seconds",
             "memory", "run"]
    if tv.verified_column:
        kinds.insert(-1, "verified")
    return kinds


def _html_row(tv: TableView, r: RowView, cells: list[str], link: str | None) -> str:
    import html

    esc = html.escape
    tds = []
    metric_i = reported_i = 0
    for text, kind in zip(cells, column_kinds(tv)):
        sort: Any = None
        inner = esc(text)
        if kind == "label":
            tag = {"reference": ' <span class="tag">reference</span>',
                   "diagnostic": f' <span class="tag" title="{esc(r.reason or "")}">diagnostic</span>'}.get(r.role, "")
            inner = (f'<a href="{esc(link)}">{inner}</a>' if link else inner) + tag
            sort = r.label
        elif kind == "metric":
            spec = tv.shown[metric_i]
            metric_i += 1
            sort = r.metrics.get(spec.name, (None, None))[0]
            if spec.name in r.best and sort is not None:
                inner = f"<strong>{inner}</strong>"
        elif kind == "n":
            sort = r.n
        elif kind == "reported":
            v = r.facts.get(tv.reported[reported_i])
            reported_i += 1
            sort = v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        elif kind == "budget":
            sort = r.budget["images"]
        elif kind == "seconds":
            sort = r.distill_seconds
        elif kind == "memory":
            sort = r.distill_peak_mb
        elif kind == "verified" and r.verification:
            v = r.verification
            detail = "; ".join(f"{name} seed {seed}: submitted {_submitted(r.record, name, seed)}, re-scored {val}"
                               for name, by_seed in (v.get("metrics") or {}).items() for seed, val in by_seed.items())
            inner = f'<span class="verified" title="{esc(detail)}">{inner}</span>'
            sort = 1
        elif kind == "run":
            inner = f"<code>{inner}</code>"
            if link:
                inner = f'<a href="{esc(link)}">{inner}</a>'
            sort = r.run_id
        attr = "" if sort is None else f' data-sort="{esc(str(sort))}"'
        tds.append(f"<td{attr}>{inner}</td>")
    return f'<tr class="{r.role}" data-run="{esc(r.run_id)}">' + "".join(tds) + "</tr>"


def _submitted(rec: RunRecord, name: str, seed: Any) -> Any:
    m = rec.metric(name)
    try:
        return m.per_seed[rec.seeds.index(int(seed))] if m is not None else None
    except (ValueError, IndexError):
        return None


def build(records_dir: Path, out_dir: Path, png: bool = True, html: bool = True) -> list[Path]:
    import os

    files = load_record_files(records_dir)
    tables = build_tables(rec for _, rec in files)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: dict[str, dict[str, bytes | None]] = {}
    md = ["# ddbench leaderboard", "",
          "Generated by `ddbench leaderboard build` from the records in `leaderboard/records/`; do not edit by hand.", ""]
    for t in tables:
        tv = view(t)
        md.append(to_markdown(tv))
        p = out_dir / f"{t.key}.csv"
        p.write_text(to_csv(tv))
        written.append(p)
        if png:
            p = out_dir / f"{t.key}.png"
            images[t.key] = {"bars": bar_png(t, p), "heat map": heatmap_png(t) if html else None}
            if p.exists():
                md.append(f"![{t.key}]({p.name})\n")
                written.append(p)
    if not tables:
        md.append("(no finished records yet)")
    p = out_dir / "README.md"
    p.write_text("\n".join(md))
    written.insert(0, p)
    if html:
        rel = Path(os.path.relpath(records_dir.resolve(), out_dir.resolve())).as_posix()
        links = {rec.run_id: f"{rel}/{path.name}" for path, rec in files}
        p = out_dir / "index.html"
        p.write_text(to_html(tables, links, plots=png, n_records=len(files), images=images), encoding="utf-8")
        written.insert(1, p)
    return written
