import multiprocessing as mp

from ddbench.records import Metric, RunRecord
from ddbench.store import RunStore


def _rec(i, j=0):
    return RunRecord(run_id=f"r{i}-{j}", method="m", task="t", source="s", preset="smoke", config={"i": i},
                     config_hash="h", seeds=[0, 1], status="finished", metrics=[Metric("acc", [float(i), float(j)])],
                     started_at=f"2026-01-01T00:00:{i:02d}")


def _writer(path, i, n):
    store = RunStore(path)
    for j in range(n):
        store.save(_rec(i, j))


def test_round_trip(tmp_path):
    s = RunStore(tmp_path / "db.sqlite")
    r = _rec(1, 3)
    s.save(r)
    back = s.get("r1-3")
    assert back.to_dict() == r.to_dict()
    m = back.metrics[0]
    assert m.mean == 2.0 and m.n == 2 and abs(m.std - 1.4142135) < 1e-6


def test_many_writer_processes_lose_nothing(tmp_path):
    path = tmp_path / "db.sqlite"
    RunStore(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), i, 25)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = RunStore(path)
    assert store.count() == 8 * 25
    assert len(list(store.all())) == 200
    import sqlite3

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_prefix_lookup_and_errors(tmp_path):
    import pytest

    from ddbench.errors import DDBenchError

    s = RunStore(tmp_path / "db.sqlite")
    s.save(_rec(1, 1))
    s.save(_rec(1, 2))
    assert s.get("r1-1").run_id == "r1-1"
    with pytest.raises(DDBenchError, match="matches 2 runs"):
        s.get("r1")
    with pytest.raises(DDBenchError, match="ddbench runs"):
        s.get("nope")
