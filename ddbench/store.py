"""Run records in SQLite (WAL mode) under DDBENCH_HOME. Safe for many writer processes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import paths
from .errors import DDBenchError, StoreError
from .records import RunRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    task TEXT NOT NULL,
    source TEXT,
    preset TEXT,
    status TEXT NOT NULL,
    config_hash TEXT,
    started_at TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_method_task ON runs(method, task);
"""


_SQLITE_MAGIC = b"SQLite format 3\x00"


class RunStore:
    """The run database. It is checked before anything is written to it: a damaged file is
    reported and left exactly as it was, never repaired or replaced."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else paths.home() / "runs.sqlite"
        if self.path.is_dir():
            raise StoreError(f"the run database {self.path} is a folder, not a file; move it away (ddbench creates the "
                             "database there) or point DDBENCH_HOME at another folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder {self.path.parent} for the run database ({e.strerror}); point "
                             "DDBENCH_HOME at a folder you can write to") from None
        self._check_header()
        try:
            with closing(self._open()) as con:
                # before the WAL switch, the first write: a damaged file must stay as it is
                problems = [row[0] for row in con.execute("PRAGMA quick_check").fetchall()]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError(problems[0] if problems else "quick_check gave no answer")
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise self._error(e) from None

    def _check_header(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"cannot read the run database {self.path} ({e.strerror}); fix its permissions or point "
                             "DDBENCH_HOME at another folder") from None
        if head and head != _SQLITE_MAGIC:  # an empty file is a new, empty database to SQLite
            raise self._error(sqlite3.DatabaseError("it is not an SQLite database"))

    def _error(self, e: sqlite3.Error) -> StoreError:
        text = str(e)
        if (isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError)) or "malformed" in text:
            return StoreError(f"the run database {self.path} is corrupt ({text}); ddbench left it untouched: move it away "
                              f"(mv {self.path} {self.path}.bad) to start a new one, or point DDBENCH_HOME at another folder")
        folder = self.path.parent
        locked_out = [str(p) for p in (folder, self.path) if p.exists() and not os.access(p, os.W_OK)]
        if locked_out or "readonly" in text:
            which = " ".join(locked_out) or str(self.path)
            return StoreError(f"cannot write the run database {self.path} ({text}): {which} is not writable; fix the "
                              f"permissions (chmod u+w {which}) or point DDBENCH_HOME at a writable folder")
        return StoreError(f"cannot open the run database {self.path} ({text}); check that {folder} is a writable local "
                          "folder, or point DDBENCH_HOME at another folder")

    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA busy_timeout=60000")
        return con

    def _connect(self) -> sqlite3.Connection:
        con = self._open()
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def save(self, record: RunRecord) -> None:
        blob = json.dumps(record.to_dict(), sort_keys=True, default=str)
        for attempt in range(20):
            try:
                con = self._connect()
                try:
                    con.execute("BEGIN IMMEDIATE")
                    con.execute(
                        "INSERT OR REPLACE INTO runs (run_id, method, task, source, preset, status, config_hash, started_at, record)"
                        " VALUES (?,?,?,?,?,?,?,?,?)",
                        (record.run_id, record.method, record.task, record.source, record.preset, record.status,
                         record.config_hash, record.started_at, blob),
                    )
                    con.execute("COMMIT")
                    return
                finally:
                    con.close()
            except sqlite3.Error as e:
                if not _locked(e):
                    raise self._error(e) from None
                time.sleep(0.05 * (attempt + 1))
        raise DDBenchError(f"could not write run {record.run_id} to {self.path}: the database stayed locked")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        try:
            with closing(self._connect()) as con:
                return con.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise self._error(e) from None

    def get(self, run_id: str) -> RunRecord:
        rows = self._query("SELECT record FROM runs WHERE run_id = ? OR run_id LIKE ?", (run_id, run_id + "%"))
        if not rows:
            raise DDBenchError(f"no run {run_id!r} in {self.path}; `ddbench runs` lists the recorded runs")
        if len(rows) > 1:
            raise DDBenchError(f"{run_id!r} matches {len(rows)} runs; give more characters of the run id")
        return RunRecord.from_dict(json.loads(rows[0][0]))

    def all(self, method: str | None = None, task: str | None = None) -> Iterator[RunRecord]:
        q, args = "SELECT record FROM runs", []
        cond = []
        if method:
            cond.append("method = ?"); args.append(method)
        if task:
            cond.append("task = ?"); args.append(task)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY started_at"
        for (blob,) in self._query(q, args):
            yield RunRecord.from_dict(json.loads(blob))

    def count(self) -> int:
        return self._query("SELECT COUNT(*) FROM runs")[0][0]


def _locked(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e))
