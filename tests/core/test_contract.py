"""docs/bad-inputs.md stays honest: every test a row names exists, and the rows for the
plugin contract, the distilled-set rules and ddbench's own state are there."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8")


def _named_tests():
    """(file, test) for every ``tests/….py::name`` and ``::name`` (same file) in a table row."""
    out = []
    for line in DOC.splitlines():
        if not line.startswith("|"):
            continue
        current = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)", line):
            current = path or current
            out.append((current, name))
    return out


def test_every_named_test_exists():
    named = _named_tests()
    assert len(named) > 30
    missing = [f"{f}::{n}" for f, n in named
               if f is None or not (ROOT / f).exists() or not re.search(rf"^def {n}\b", (ROOT / f).read_text(), re.M)]
    assert not missing, f"docs/bad-inputs.md names tests that do not exist: {missing}"


ROWS = [
    # plugins: (what the row is about, words of the message the row must show)
    "failed to import", "which is not a ddbench hook", "without @hookimpl", "as a hook wrapper",
    "failed in hook ddbench_register_methods", "failed in hook ddbench_environment_info",
    "returned list from ddbench_environment_info", "failed in hook ddbench_before_run",
    "failed in hook ddbench_after_run", "failed in method 'pick' (distill)",
    # the distilled set
    "looks like 0-255 pixels: divide by 255", "convert with .float()/255", "channels-last: permute to (N, C, H, W)",
    "distill at the source's resolution", "NaN or infinite", "outside its value_range",
    "hard labels must be int64 class indices", "soft targets must be float32", "is invalid (method",
    # DDBENCH_HOME
    "is a file, not a folder; point DDBENCH_HOME at a folder", "is not writable; fix the permissions",
    "is corrupt (it is not an SQLite database / database disk image is malformed); ddbench left it untouched",
    "runs.sqlite is a folder, not a file", "the cache folder …/cache is a file",
]


@pytest.mark.parametrize("needle", ROWS)
def test_contract_rows_documented(needle):
    assert needle in DOC, f"docs/bad-inputs.md has no row showing {needle!r}"
