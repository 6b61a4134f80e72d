"""The DuckDB cache of analysis results, model summaries, per-unit rows and training runs.

DuckDB lets one process hold a file at a time, so every operation opens, works and closes at
once, retrying while another process holds the lock. A file that is not a DuckDB database
(truncated, overwritten) is moved aside and rebuilt: results are a cache, so nothing is lost
that cannot be recomputed; the move is reported in `notices`.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_path() -> Path:
    """cache/unitlens.duckdb, or UNITLENS_CACHE."""
    return Path(os.environ.get("UNITLENS_CACHE", PROJECT_ROOT / "cache" / "unitlens.duckdb"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    model_hash VARCHAR, analysis VARCHAR, params VARCHAR, split VARCHAR, version INTEGER,
    created TIMESTAMP DEFAULT current_timestamp, seconds DOUBLE, payload VARCHAR,
    PRIMARY KEY (model_hash, analysis, params, split, version));
CREATE TABLE IF NOT EXISTS models (
    model_hash VARCHAR PRIMARY KEY, name VARCHAR, path VARCHAR, method VARCHAR, arch VARCHAR,
    dataset VARCHAR, accuracy DOUBLE, median_selectivity DOUBLE, dead_units INTEGER,
    nontarget_entropy DOUBLE, nontarget_fraction DOUBLE, phi DOUBLE, gate_density DOUBLE,
    r_a DOUBLE, c_ic DOUBLE, updated TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS units (
    model_hash VARCHAR, unit INTEGER, selectivity DOUBLE, dead BOOLEAN, preferred_class INTEGER,
    assigned_class INTEGER, max_drop DOUBLE, max_drop_class INTEGER, overall_drop DOUBLE,
    l1_norm DOUBLE, PRIMARY KEY (model_hash, unit));
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, checkpoint VARCHAR, method VARCHAR, status VARCHAR, epoch INTEGER,
    epochs INTEGER, loss DOUBLE, accuracy DOUBLE, test_accuracy DOUBLE, images_per_s DOUBLE,
    eta_s DOUBLE, message VARCHAR, updated TIMESTAMP DEFAULT current_timestamp);
"""


class StoreError(RuntimeError):
    """The cache could not be used even after waiting and rebuilding; one line."""


class Store:
    def __init__(self, path: Path | str | None = None, lock_timeout: float = 60.0):
        self.path = Path(path) if path else default_path()
        self.lock_timeout = lock_timeout
        self.notices: list[str] = []
        self._thread_lock = threading.RLock()
        self._ready = False

    # ------------------------------------------------------------------ connection
    @contextmanager
    def connect(self):
        """A short-lived connection; waits for another process's lock, rebuilds a corrupt file."""
        with self._thread_lock:
            connection = self._open()
            try:
                if not self._ready:
                    connection.execute(SCHEMA)
                    self._ready = True
                yield connection
            finally:
                connection.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                message = str(exc)
                if "lock" in message.lower():
                    if time.monotonic() > deadline:
                        raise StoreError(f"the cache {self.path} stayed locked by another process "
                                         f"for {self.lock_timeout:.0f} s") from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.5)
                    continue
                self._quarantine(message)

    def _quarantine(self, reason: str) -> None:
        if not self.path.exists():
            raise StoreError(f"cannot open the cache {self.path}: {reason.splitlines()[0]}")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        os.replace(self.path, aside)
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            os.replace(wal, aside.with_name(aside.name + ".wal"))
        self._ready = False
        self.notices.append(f"The cache file was damaged ({reason.splitlines()[0][:120]}); "
                            f"it was moved to {aside.name} and results will be recomputed.")

    def _run(self, fn):
        """Run fn(connection); on a file that vanished or broke between calls, rebuild once."""
        try:
            with self.connect() as connection:
                return fn(connection)
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():
                raise StoreError(f"the cache is busy: {str(exc).splitlines()[0][:160]}") from None
            self._ready = False
            if self.path.exists():
                self._quarantine(str(exc))
            with self.connect() as connection:
                return fn(connection)

    # ------------------------------------------------------------------ results
    @staticmethod
    def params_key(params: dict) -> str:
        return json.dumps(params, sort_keys=True, separators=(",", ":"))

    def get_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int):
        key = self.params_key(params)

        def fetch(c):
            return c.execute("SELECT payload FROM results WHERE model_hash=? AND analysis=? AND params=? "
                             "AND split=? AND version=?", [model_hash, analysis, key, split, version]).fetchone()
        row = self._run(fetch)
        return json.loads(row[0]) if row else None

    def results_for(self, model_hash: str, split: str) -> dict[tuple, dict]:
        """Every stored result of a model and split in one query: (analysis, params, version) -> payload."""
        rows = self._run(lambda c: c.execute(
            "SELECT analysis, params, version, payload FROM results WHERE model_hash=? AND split=?",
            [model_hash, split]).fetchall())
        return {(a, p, v): json.loads(payload) for a, p, v, payload in rows}

    def put_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int,
                   payload: dict, seconds: float = 0.0) -> None:
        key = self.params_key(params)
        text = json.dumps(payload, allow_nan=False)
        self._run(lambda c: c.execute(
            "INSERT OR REPLACE INTO results (model_hash, analysis, params, split, version, seconds, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", [model_hash, analysis, key, split, version, seconds, text]))

    # ------------------------------------------------------------------ tables for SQL
    def put_model(self, row: dict) -> None:
        columns = list(row)
        self._run(lambda c: c.execute(
            f"INSERT OR REPLACE INTO models ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[k] for k in columns]))

    def put_units(self, model_hash: str, rows: list[dict]) -> None:
        if not rows:
            return
        columns = ["model_hash", *rows[0]]

        def write(c):
            c.execute("DELETE FROM units WHERE model_hash = ?", [model_hash])
            c.executemany(f"INSERT INTO units ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [[model_hash, *r.values()] for r in rows])
        self._run(write)

    def put_run(self, row: dict) -> None:
        columns = list(row)
        self._run(lambda c: c.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[k] for k in columns]))

    def query(self, sql: str, params=None) -> list[tuple]:
        return self._run(lambda c: c.execute(sql, params or []).fetchall())
