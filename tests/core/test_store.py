import multiprocessing as mp

from ddbench.records import Metric, RunRecord
from ddbench.store import RunStore


def _rec(i, j=0):
    # through from_dict, so the helper does not depend on the record's constructor
    return RunRecord.from_dict({"run_id": f"r{i}-{j}", "method": "m", "task": "t", "source": "s", "preset": "smoke",
                                "config": {"i": i}, "config_hash": "h", "seeds": [0, 1], "status": "finished",
                                "metrics": [Metric("acc", [float(i), float(j)]).to_dict()],
                                "started_at": f"2026-01-01T00:00:{i:02d}"})


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


# ---- a damaged or unusable DDBENCH_HOME: one clear line (exit 2), the bad file untouched ----

import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from tests.clihelp import one_line  # noqa: E402

RUN = ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke"]


def _home():
    from pathlib import Path

    return Path(os.environ["DDBENCH_HOME"])


def _snapshot(path):
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


def _assert_one_clean_line(args, *needles):
    return one_line(args, *needles)


def _random_bytes(path):
    path.write_bytes(random.Random(0).randbytes(8192))


def _truncated(path):
    store = RunStore(path)
    for i in range(40):
        store.save(_rec(i, 0))
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every record into the main file, so cutting it loses pages
    con.close()
    data = path.read_bytes()
    assert len(data) > 8192
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_random_bytes, _truncated], ids=["random bytes", "truncated"])
@pytest.mark.parametrize("args", [["runs", "--json"], ["show", "r1"], RUN], ids=["runs", "show", "run"])
def test_corrupt_run_database_is_reported_and_left_untouched(fake_plugin, damage, args):
    db = _home() / "runs.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    damage(db)
    before = _snapshot(db)
    _assert_one_clean_line(args, f"the run database {db} is corrupt", f"mv {db} {db}.bad", "DDBENCH_HOME")
    assert _snapshot(db) == before


def test_run_database_that_is_a_folder(fake_plugin):
    db = _home() / "runs.sqlite"
    db.mkdir(parents=True)
    (db / "note.txt").write_text("mine")
    for args in (["runs", "--json"], RUN):
        _assert_one_clean_line(args, f"the run database {db} is a folder", "move it away")
    assert _snapshot(db) == {"note.txt": b"mine"}


def test_home_that_is_a_file(fake_plugin, monkeypatch, tmp_path):
    home = tmp_path / "home-file"
    home.write_bytes(b"not a folder")
    monkeypatch.setenv("DDBENCH_HOME", str(home))
    for args in (["runs", "--json"], RUN):
        _assert_one_clean_line(args, f"DDBENCH_HOME {home} is a file", "point DDBENCH_HOME at a folder")
    assert home.read_bytes() == b"not a folder"


def test_cache_folder_that_is_a_file(fake_plugin):
    cache = _home() / "cache"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"in the way")
    _assert_one_clean_line(RUN, f"the cache folder {cache} is a file", "move it away")
    assert cache.read_bytes() == b"in the way"


def _as_unprivileged(cmd):
    """``cmd`` so that file permissions apply to it: as root (CI containers), drop the
    capabilities that bypass them."""
    if os.geteuid() != 0:
        return cmd
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    if not shutil.which("setpriv") or subprocess.run(drop + ["true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return drop + cmd


@pytest.mark.parametrize("existing", [False, True], ids=["new database", "existing database"])
def test_unwritable_home(tmp_path, existing):
    home = tmp_path / "readonly-home"
    home.mkdir()
    db = home / "runs.sqlite"
    if existing:
        RunStore(db).save(_rec(1, 1))
        import sqlite3

        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm left, so reading needs to create them
        con.close()
    before = _snapshot(home)
    home.chmod(0o500)
    try:
        cmd = _as_unprivileged([sys.executable, "-m", "ddbench.cli", "runs", "--json"])
        env = dict(os.environ, DDBENCH_HOME=str(home))
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    finally:
        home.chmod(0o700)
    err = out.stderr.strip()
    assert out.returncode == 2, (out.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"the run database {db}" in err and "not writable" in err and "DDBENCH_HOME" in err
    assert _snapshot(home) == before
