"""Run records in SQLite (WAL mode) under DDBENCH_HOME. Safe for many writer processes."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from . import paths
from .errors import DDBenchError
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


class RunStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else paths.home() / "runs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=60000")
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
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))
        raise DDBenchError(f"could not write run {record.run_id} to {self.path}: the database stayed locked")

    def get(self, run_id: str) -> RunRecord:
        con = self._connect()
        try:
            rows = con.execute("SELECT record FROM runs WHERE run_id = ? OR run_id LIKE ?", (run_id, run_id + "%")).fetchall()
        finally:
            con.close()
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
        con = self._connect()
        try:
            rows = con.execute(q, args).fetchall()
        finally:
            con.close()
        for (blob,) in rows:
            yield RunRecord.from_dict(json.loads(blob))

    def count(self) -> int:
        con = self._connect()
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
