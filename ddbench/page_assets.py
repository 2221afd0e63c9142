"""The leaderboard page's inline style and script (``leaderboard.to_html``): no network at
view time, so nothing here loads from anywhere."""

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dde6; --ref: #eef3fb; --diag: #fbf5e9; --best: #0b6b3a;
        --head: #f5f7fa; --accent: #2454a6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.6rem; margin: 0 0 .4rem; }
h2 { font-size: 1.15rem; margin: 2.2rem 0 .6rem; padding-top: .6rem; border-top: 2px solid var(--line); }
header p, .lead, .notes { color: var(--muted); }
nav ol { padding-left: 1.4rem; margin: .4rem 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.scroll { overflow-x: auto; }
table.lb { border-collapse: collapse; min-width: 60%; }
table.lb th, table.lb td { padding: .32rem .6rem; border-bottom: 1px solid var(--line); text-align: right;
                           white-space: nowrap; }
table.lb th:first-child, table.lb td:first-child { text-align: left; }
table.lb thead th { background: var(--head); cursor: pointer; user-select: none; position: sticky; top: 0;
                    border-bottom: 2px solid #b9c1cf; }
table.lb thead th:hover { background: #e8edf5; }
table.lb thead th .arrow { display: inline-block; width: 1em; color: var(--accent); }
table.lb thead th[aria-sort="ascending"] .arrow::after { content: "\\25B2"; }
table.lb thead th[aria-sort="descending"] .arrow::after { content: "\\25BC"; }
table.lb tbody + tbody { border-top: 3px solid #b9c1cf; }
table.lb tr.group th { text-align: left; font-weight: 600; font-size: .82em; text-transform: uppercase;
                       letter-spacing: .04em; color: var(--muted); background: #fff; cursor: default; }
table.lb tr.reference td { background: var(--ref); }
table.lb tr.diagnostic td { background: var(--diag); color: #4b4536; }
table.lb strong { color: var(--best); }
.tag { font-size: .75em; border: 1px solid #b9c1cf; border-radius: 3px; padding: 0 .3em; margin-left: .4em;
       color: var(--muted); }
.verified { color: var(--best); cursor: help; }
.notes { font-size: .9em; max-width: 1100px; }
figure { margin: 1rem 0; }
figure img { max-width: min(100%, 820px); border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .85em; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    if (!cell) return null;
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  function compare(a, b, numeric) {
    if (a === null || a === "" || a === "\\u2013") return (b === null || b === "" || b === "\\u2013") ? 0 : 1;
    if (b === null || b === "" || b === "\\u2013") return -1;
    if (numeric) { var x = parseFloat(a), y = parseFloat(b); if (!isNaN(x) && !isNaN(y)) return x - y; }
    return String(a).localeCompare(String(b));
  }
  function sortBy(table, th, index) {
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
    if (!th.hasAttribute("aria-sort") && th.getAttribute("data-type") !== "num") dir = "ascending";
    table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var numeric = th.getAttribute("data-type") === "num";
    table.querySelectorAll("tbody").forEach(function (tb) {
      var rows = Array.prototype.slice.call(tb.querySelectorAll("tr:not(.group)"));
      rows.sort(function (r1, r2) {
        var a = key(r1.cells[index]), b = key(r2.cells[index]);
        var empty1 = a === null || a === "" || a === "\\u2013", empty2 = b === null || b === "" || b === "\\u2013";
        if (empty1 || empty2) return compare(a, b, numeric);  // missing values last either way
        var c = compare(a, b, numeric);
        return dir === "ascending" ? c : -c;
      });
      rows.forEach(function (r) { tb.appendChild(r); });
    });
  }
  document.querySelectorAll("table.lb").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, index) {
      th.addEventListener("click", function () { sortBy(table, th, index); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, index); }
      });
    });
  });
})();
"""
