import csv
import io
import json

from click.testing import CliRunner

from ddbench.cli import main
from ddbench.leaderboard import build, build_tables, split_of, to_csv, to_markdown
from ddbench.records import MethodInfo, Metric, RunConfig, RunRecord, SeedResult
from ddbench.types import Budget, ControlRow, MetricSpec

SPECS = [MetricSpec("cifar", unit="top-1 %", description="accuracy on cifar"),
         MetricSpec("flowers", unit="top-1 %", description="accuracy on flowers"),
         MetricSpec("err", higher_is_better=False, unit="MSE", diagnostic=True, split="val",
                    description="an error that explains, not ranks")]


def rec(method, vals, started="2026-01-01T00:00:00", status="finished", n_test=240, overrides=None,
        reference=False, images=200, controls=(), specs=SPECS, reported=None, diagnostic=None):
    per_seed = {str(i): SeedResult(recipe="r", budget={"images": images, "bytes": 1000},
                                   n_examples={"flowers": n_test},
                                   extras={"reported": reported or {"probe (val %)": {"value": 12.5}},
                                           **({"diagnostic": [diagnostic]} if diagnostic else {})})
                for i in range(3)}
    config = RunConfig(method=method, task="transfer", source="tin", preset="quick", budget=Budget(images=images),
                       overrides=dict(overrides or {}), metrics=list(specs), measurement_options=["eval_split"],
                       method_info=MethodInfo(reference=reference, takes_budget=not reference,
                                              controls=list(controls)))
    return RunRecord(run_id=f"{method}-{started}-{len(overrides or {})}", config=config, config_hash="h",
                     seeds=[0, 1, 2], status=status, started_at=started,
                     budget={"images": 0 if reference else images, "ipc": None, "bytes": 1000},
                     metrics=[Metric("cifar", vals), Metric("flowers", [v + 1 for v in vals]),
                              Metric("err", [0.5, 0.6, 0.7] if method != "b" else [0.1, 0.1, 0.1],
                                     higher_is_better=False)],
                     per_seed=per_seed)


def test_table_layout_best_and_rows():
    recs = [rec("b", [60, 61, 62]), rec("ref", [70, 70, 70], reference=True), rec("a", [50, 52, 54]),
            rec("a", [58, 58, 58], overrides={"recipe": "x"}), rec("c", [1, 1, 1], status="failed")]
    (t,) = build_tables(recs)
    assert list(t.rows) == ["ref", "a", "a (recipe=x)", "b"]  # references first; failed runs never shown
    assert t.best("cifar") == "b"  # the reference's 70 is higher but it is never ranked
    assert t.best("err") == "b"  # lower is better, as declared
    assert t.columns() == ["cifar", "flowers", "err"]  # declared order, diagnostics last
    md = to_markdown(t)
    assert "**61.00 ± 1.00**" in md and "| 3 |" in md and "one example = 0.42 points" in md
    assert "| probe (val %) |" in md.splitlines()[2] and "| 12.5 |" in md
    assert "`err` (MSE, lower is better, diagnostic): an error that explains, not ranks" in md
    assert "Reference rows, never ranked: `ref`" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert rows[-1]["method"] == "b" and float(rows[-1]["cifar"]) == 61.0 and float(rows[-1]["cifar_std"]) == 1.0
    assert rows[-1]["budget_images"] == "200"


def test_budgets_make_separate_tables_and_the_reference_joins_each():
    recs = [rec("a", [50, 50, 50], images=200), rec("a", [60, 60, 60], images=1000),
            rec("ref", [40, 40, 40], reference=True)]
    tables = build_tables(recs)
    assert [t.budget for t in tables] == ["1000 images", "200 images"]
    assert all(list(t.rows) == ["ref", "a"] for t in tables)
    assert tables[0].rows["a"].metric("cifar").mean == 60 and tables[1].rows["a"].metric("cifar").mean == 50
    assert tables[0].key != tables[1].key


def test_newest_record_wins():
    recs = [rec("b", [1, 1, 1], started="2026-01-01T00:00:00"), rec("b", [2, 2, 2], started="2026-01-02T00:00:00")]
    (t,) = build_tables(recs)
    assert t.rows["b"].metric("cifar").mean == 2


def test_build_writes_files_from_records_only(tmp_path):
    (tmp_path / "records").mkdir()
    for r in (rec("b", [60, 61, 62]), rec("a", [50, 52, 54])):
        (tmp_path / "records" / f"{r.run_id}.json").write_text(json.dumps(r.to_dict()))
    files = build(tmp_path / "records", tmp_path)
    names = {p.name for p in files}
    assert {"README.md", "transfer__tin__quick__200img.csv", "transfer__tin__quick__200img.png"} <= names
    first = (tmp_path / "README.md").read_text()
    build(tmp_path / "records", tmp_path)
    assert (tmp_path / "README.md").read_text() == first  # rebuilding is deterministic


def test_cli_add_build_show(fake_plugin, tmp_path):
    r = CliRunner()
    out = json.loads(r.invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json"]).stdout)
    lb = tmp_path / "lb"
    res = r.invoke(main, ["leaderboard", "add", out["run_id"], "--dir", str(lb)])
    assert res.exit_code == 0, res.output
    import os

    exported = (lb / "records" / f"{out['run_id']}.json").read_text()
    assert os.environ["DDBENCH_HOME"] not in exported and "$DDBENCH_HOME/cache/distilled/" in exported
    res = r.invoke(main, ["leaderboard", "build", "--dir", str(lb), "--no-png"])
    assert res.exit_code == 0 and (lb / "README.md").exists()
    readme = (lb / "README.md").read_text()
    assert "| pick |" in readme and "nearest-class-mean accuracy on test" in readme  # the task's declaration
    res = r.invoke(main, ["leaderboard", "show", "--dir", str(lb)])
    assert res.exit_code == 0 and "pick" in res.stderr


def test_row_labels_from_overrides_and_val_tables_apart():
    val_specs = [MetricSpec("val/cifar", split="val"), SPECS[2]]
    a = rec("b", [60, 61, 62], overrides={"steps": "4000", "eval_split": "val"}, specs=val_specs)
    a.metrics = [Metric("val/cifar", [1.0, 2.0, 3.0]), Metric("err", [0.1, 0.1, 0.1], higher_is_better=False)]
    b = rec("a", [50, 52, 54], overrides={"recipe": "x"})
    c = rec("b", [60, 61, 62])
    assert split_of(a) == "val" and split_of(c) == "test"  # the diagnostic's split does not decide
    tables = build_tables([a, b, c])
    assert [t.split for t in tables] == ["test", "val"]
    assert list(tables[0].rows) == ["a (recipe=x)", "b"]
    assert list(tables[1].rows) == ["b (steps=4000)"]  # eval_split is a measurement option: no label
    assert "validation splits" in to_markdown(tables[1])


def test_rows_a_plugin_marks_diagnostic_are_apart_and_never_best():
    from ddbench.context import RunContext

    ctx = RunContext(seed=0)
    ctx.mark_diagnostic("ablation: learn=images")
    ctx.mark_diagnostic("ablation: learn=images")  # reasons are kept once
    assert ctx.extras["diagnostic"] == ["ablation: learn=images"]
    abl = rec("b", [90, 90, 90], overrides={"learn": "images"}, diagnostic="ablation: learn=images")
    (t,) = build_tables([abl, rec("a", [50, 50, 50]), rec("b", [60, 61, 62])])
    assert list(t.rows) == ["a", "b", "b (learn=images)"]  # diagnostics last
    assert t.best("cifar") == "b"  # the ablation's 90 is higher but not a contender
    md = to_markdown(t)
    assert "`b (learn=images)` (ablation: learn=images)" in md
    assert "**90.00" not in md and "**61.00 ± 1.00**" in md


def test_a_declared_control_is_explained_only_beside_its_method():
    control = ControlRow("a", {"recipe": "x"}, "the same images without the method's work")
    b = rec("b", [60, 61, 62], controls=[control])
    (t,) = build_tables([b, rec("a", [50, 50, 50], overrides={"recipe": "x"})])
    assert "Control of `b`: the same images without the method's work." in to_markdown(t)
    (t,) = build_tables([b, rec("a", [50, 50, 50])])  # a plain `a` is not the declared control
    assert "Control of" not in to_markdown(t)


def test_context_report_becomes_a_column():
    from ddbench.context import RunContext

    ctx = RunContext(seed=0)
    ctx.report("teacher acc (%)", 93.1, "the teacher's test accuracy")
    r = rec("a", [50, 50, 50], reported=ctx.extras["reported"])
    (t,) = build_tables([r])
    md = to_markdown(t)
    assert "| teacher acc (%) |" in md and "| 93.1 |" in md and "the teacher's test accuracy" in md


def test_cost_of_making_the_set_is_shown_and_missing_cost_is_a_dash():
    a = rec("a", [50, 52, 54])
    for i, r in enumerate(a.seed_results()):
        r.distill_cost = {"seconds": 100.0 + 20 * i, "peak_memory_mb": 900.0 + i}
    b = rec("b", [60, 61, 62])  # an older record: no cost recorded
    (t,) = build_tables([a, b])
    md = to_markdown(t)
    head = md.splitlines()[2]
    assert "| distill time / seed | distill peak MiB |" in head
    row_a = next(line for line in md.splitlines() if line.startswith("| a |"))
    row_b = next(line for line in md.splitlines() if line.startswith("| b |"))
    assert "| 2.0 min | 902 |" in row_a  # mean of 100/120/140 s; the largest peak
    assert "| – | – |" in row_b
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(to_csv(t)))}
    assert float(rows["a"]["distill_seconds"]) == 120.0 and float(rows["a"]["distill_peak_memory_mb"]) == 902.0
    assert rows["b"]["distill_seconds"] == ""


def test_runner_records_the_cost_also_when_the_set_comes_from_the_cache(fake_plugin):
    runs = []
    for _ in range(2):
        res = CliRunner().invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json"])
        assert res.exit_code == 0, res.output
        runs.append(json.loads(res.stdout))
    first, again = (r["per_seed"]["0"] for r in runs)
    assert not first["distilled_cached"] and again["distilled_cached"]
    assert first["distill_cost"]["seconds"] >= 0 and first["distill_cost"]["peak_memory_mb"] > 0
    assert again["distill_cost"] == first["distill_cost"]  # the cost of making it, not of reading it


def _html_tables(page: str) -> list[list[list[str]]]:
    """Every table of the page as rows of cell texts (thead first), via the stdlib parser."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.row, self.cell, self.skip = [], None, None, 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.row = [] if "group" not in (a.get("class") or "") else None
            elif tag in ("td", "th") and self.row is not None:
                self.cell = ""
            elif tag == "span" and a.get("class") in ("tag", "arrow"):
                self.skip += 1

        def handle_endtag(self, tag):
            if tag == "span" and self.skip:
                self.skip -= 1
            elif tag in ("td", "th") and self.row is not None and self.cell is not None:
                self.row.append(self.cell.strip())
                self.cell = None
            elif tag == "tr" and self.row is not None:
                self.tables[-1].append(self.row)
                self.row = None

        def handle_data(self, data):
            if self.cell is not None and not self.skip:
                self.cell += data

    p = P()
    p.feed(page)
    return p.tables


def test_markdown_csv_and_html_agree():
    """The three renderings come from one view of the table: same rows, same order, same numbers."""
    from ddbench.leaderboard import metric_text, to_html, view

    abl = rec("b", [90, 90, 90], overrides={"learn": "images"}, diagnostic="ablation: learn=images")
    recs = [rec("b", [60, 61, 62]), rec("ref", [70, 70, 70], reference=True), rec("a", [50, 52, 54]), abl]
    recs[0].verification = {"verdict": "verified", "seeds": [0], "metrics": {"cifar": {"0": 60.0}}}
    (t,) = build_tables(recs)
    tv = view(t)
    md_rows = [[c.strip().strip("`").replace("**", "") for c in line.strip("|").split("|")]
               for line in to_markdown(tv).splitlines() if line.startswith("| ") and not line.startswith("| method")]
    csv_rows = list(csv.DictReader(io.StringIO(to_csv(tv))))
    (html_rows,) = _html_tables(to_html([t], plots=False))
    head, body = html_rows[0], html_rows[1:]
    assert [r[0] for r in md_rows] == [r["method"] for r in csv_rows] == [r[0] for r in body] == list(t.rows)
    md_head = [c.strip() for c in to_markdown(tv).splitlines()[2].strip("|").split("|")]
    assert head == md_head and "verified" in head
    for md, row, html in zip(md_rows, csv_rows, body):
        assert md == html  # same cells, same text
        for i, s in enumerate(tv.shown, start=1):
            mean = float(row[s.name]) if row[s.name] else None
            std = float(row[f"{s.name}_std"]) if row[f"{s.name}_std"] else None
            assert md[i] == metric_text(mean, std)
        assert md[-1] == row["run_id"] and md[len(tv.shown) + 1] == row["n"]
    assert csv_rows[-1]["verified_seeds"] == "" and next(r for r in csv_rows if r["method"] == "b")["verified_seeds"] == "0"


def test_page_sets_reference_and_diagnostic_rows_apart_and_links_records(tmp_path):
    from ddbench.leaderboard import to_html

    abl = rec("b", [90, 90, 90], overrides={"learn": "images"}, diagnostic="ablation: learn=images")
    (t,) = build_tables([rec("b", [60, 61, 62]), rec("ref", [70, 70, 70], reference=True), abl])
    page = to_html([t], links={r.run_id: f"records/{r.run_id}.json" for r in t.rows.values()}, plots=False)
    assert page.index('class="rows-reference"') < page.index('class="rows-entry"') < page.index('class="rows-diagnostic"')
    assert "<strong>61.00 ± 1.00</strong>" in page and "<strong>90.00" not in page and "<strong>70.00" not in page
    assert all(f'href="records/{r.run_id}.json"' in page for r in t.rows.values())
    assert "http://" not in page and "https://" not in page and "<script src" not in page  # self-contained


def test_heat_map_only_for_three_columns_of_one_unit():
    from ddbench.leaderboard import heatmap_png

    specs = SPECS + [MetricSpec("cars", unit="top-1 %")]  # the diagnostic "err" stays out
    r = rec("a", [50, 52, 54], specs=specs)
    r.metrics.append(Metric("cars", [1.0, 2.0, 3.0]))
    (t,) = build_tables([r, rec("b", [60, 61, 62], specs=specs)])
    png = heatmap_png(t)
    assert png and png[:8] == b"\x89PNG\r\n\x1a\n"
    (t,) = build_tables([rec("a", [50, 52, 54])])  # two headline columns
    assert heatmap_png(t) is None


def test_build_writes_the_page_with_plots_embedded(tmp_path):
    (tmp_path / "records").mkdir()
    for r in (rec("b", [60, 61, 62]), rec("a", [50, 52, 54])):
        (tmp_path / "records" / f"{r.run_id}.json").write_text(json.dumps(r.to_dict()))
    build(tmp_path / "records", tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 1 and "<style>" in page and "<script>" in page
