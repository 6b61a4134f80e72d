"""The DuckDB cache of analysis results, model summaries, per-unit rows and training runs.

DuckDB lets one process hold a file at a time, so every operation opens, works and closes at
once, retrying while another process holds the lock. The cache never touches what is not ours:
a path that holds anything but a DuckDB database is a one-line error, and so is a DuckDB database
without our marker table (`MARKER`; a cache of an earlier version, holding only our tables, gets
it). A file is ours when we created it or found our marker in it; we then leave `NAME.unitlens`
beside it, and only such a file is moved aside and rebuilt when it cannot be opened or read
(truncated, damaged), since results are a cache. A cache we may not write, or a disk that is full,
is used read-only (nothing new is saved, and `notices` says so once).
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from types import ModuleType

from .headline import HEADLINE
from .catalog import PROJECT_ROOT
from .errors import UserError

DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


def duckdb() -> ModuleType:
    """DuckDB, imported when a Store first opens its file (the engine runs without it, on a
    MemoryStore, where it is not installed)."""
    import duckdb as module
    return module


def default_path() -> Path:
    """cache/unitlens.duckdb, or UNITLENS_CACHE."""
    return Path(os.environ.get("UNITLENS_CACHE", PROJECT_ROOT / "cache" / "unitlens.duckdb"))


# Derived tables (models, units) are rebuilt when their columns change; results and runs keep.
TABLES = {
    "results": """model_hash VARCHAR, analysis VARCHAR, params VARCHAR, split VARCHAR, version INTEGER,
        created TIMESTAMP DEFAULT current_timestamp, seconds DOUBLE, payload VARCHAR,
        PRIMARY KEY (model_hash, analysis, params, split, version)""",
    "models": "model_hash VARCHAR PRIMARY KEY, name VARCHAR, path VARCHAR, method VARCHAR, arch VARCHAR, "
              "dataset VARCHAR, " + ", ".join(f"{f.key} {f.sql}" for f in HEADLINE)
              + ", updated TIMESTAMP DEFAULT current_timestamp",
    "units": """model_hash VARCHAR, unit INTEGER, selectivity DOUBLE, dead BOOLEAN, preferred_class INTEGER,
        assigned_class INTEGER, max_drop DOUBLE, max_drop_class INTEGER, overall_drop DOUBLE,
        l1_norm DOUBLE, filter_l1_norm DOUBLE, PRIMARY KEY (model_hash, unit)""",
    "runs": """run_id VARCHAR PRIMARY KEY, checkpoint VARCHAR, method VARCHAR, status VARCHAR, epoch INTEGER,
        epochs INTEGER, loss DOUBLE, accuracy DOUBLE, test_accuracy DOUBLE, images_per_s DOUBLE,
        eta_s DOUBLE, message VARCHAR, updated TIMESTAMP DEFAULT current_timestamp""",
}
DERIVED = ("models", "units")
MARKER = "unitlens_cache"   # a table of one row: which program's cache this database is
MARKER_TEXT = "Unit Lens analysis cache"


def ownership_file(path: Path) -> Path:
    """Left beside a cache we made: the proof, when it is damaged and its tables cannot be read,
    that moving it aside moves nothing of anyone else's."""
    return path.with_name(path.name + ".unitlens")


def is_out_of_space(message: str) -> bool:
    """The storage refused to grow the file (a full disk, a quota, a file-size limit): the cache is
    still good, only nothing new can be written, so it must never be moved aside for it."""
    text = message.lower()
    return any(cause in text for cause in ("no space left", "disk is full", "disk full", "file too large",
                                           "quota exceeded"))


def space_cause(message: str) -> str:
    """The operating system's words at the end of DuckDB's message ("No space left on device")."""
    return message.splitlines()[0].rsplit(": ", 1)[-1][:80]


def column_names(definition: str) -> list[str]:
    """The columns a table definition declares, in order (its PRIMARY KEY clause names no new one)."""
    columns = definition.replace("\n", " ").split("PRIMARY KEY (")[0]
    return [p.strip().split()[0] for p in columns.split(",") if p.strip()]


def is_lock_error(message: str) -> bool:
    """Another process holds the file (not a damaged "block")."""
    text = message.lower()
    return "could not set lock" in text or "conflicting lock" in text or "database is locked" in text


class StoreError(UserError):
    """The cache could not be used even after waiting and rebuilding; one line."""


class Store:
    WAIT_NOTICE_S = 1.0  # a lock held longer than this is said (on_wait), not waited out in silence

    def __init__(self, path: Path | str | None = None, lock_timeout: float = 60.0, read_only: bool | None = None,
                 on_wait=None):
        """`read_only`: None decides from the file's and folder's permissions; True never writes.
        `on_wait(text)`: told once per wait when another process holds the file for a while."""
        self.path = Path(path) if path else default_path()
        self.lock_timeout = lock_timeout
        self.on_wait = on_wait
        self.notices: list[str] = []
        self._thread_lock = threading.RLock()
        self._ready = False
        self.read_only = False
        if read_only:
            self._use_read_only()

    def _use_read_only(self) -> None:
        if not self.read_only:
            self.read_only = True
            self.notices.append(f"The cache {self.path.name} is read-only: results are read from it, "
                                "new ones are computed but not saved.")

    # ------------------------------------------------------------------ connection
    @contextmanager
    def connect(self):
        """A short-lived connection; waits for another process's lock, rebuilds a damaged cache."""
        with self._thread_lock:
            connection = self._open()
            try:
                if not self._ready:
                    self._prepare(connection)
                    self._ready = True
                yield connection
            finally:
                connection.close()

    def _check_path(self) -> None:
        """Refuse, in one line, a path we must not use; decide read-only use."""
        path = self.path
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"the cache path {path} lies under {parent}, which is a file")
                break
        if path.is_dir():
            raise StoreError(f"the cache path {path} is a folder; name a file (--cache or UNITLENS_CACHE)")
        if path.exists():
            if not path.is_file():
                raise StoreError(f"the cache path {path} is not a regular file")
            if path.stat().st_size and not self._is_duckdb(path):
                raise StoreError(f"{path} is not a Unit Lens cache (not a DuckDB file); it was left untouched: "
                                 "remove it or name another file (--cache or UNITLENS_CACHE)")
            writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the cache folder {path.parent}: {exc.strerror or exc}") from None
            if not os.access(path.parent, os.W_OK):
                raise StoreError(f"cannot create the cache {path}: its folder is not writable")
            writable = True
        if not writable:
            self._use_read_only()

    @staticmethod
    def _is_duckdb(path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                return f.read(12)[8:12] == DUCKDB_MAGIC
        except OSError:
            return False

    def _open(self):
        self._check_path()
        started, said = time.monotonic(), False
        delay = 0.02
        while True:
            try:
                return duckdb().connect(str(self.path), read_only=self.read_only)
            except duckdb().Error as exc:
                message = str(exc)
                if is_lock_error(message):
                    waited = time.monotonic() - started
                    if waited > self.lock_timeout:
                        raise StoreError(f"the cache {self.path} stayed locked by another process "
                                         f"for {self.lock_timeout:.0f} s") from None
                    if self.on_wait is not None and not said and waited >= self.WAIT_NOTICE_S:
                        said = True
                        self.on_wait(f"waiting for the cache {self.path}: another process is using it "
                                     f"(up to {self.lock_timeout:.0f} s; Ctrl-C stops)")
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.5)
                    continue
                self._quarantine(message)

    def _prepare(self, connection) -> None:
        """Our tables, created where missing; derived tables rebuilt when their columns changed.
        A database that holds other tables and none of ours is not ours: refused."""
        existing = {row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        earlier_version = ("results" in existing and existing <= set(TABLES)  # ours, before the marker
                           and self._columns(connection, "results") == column_names(TABLES["results"]))
        if existing and MARKER not in existing and not earlier_version:
            raise StoreError(f"{self.path} is a DuckDB database of something else (tables: "
                             f"{', '.join(sorted(existing))[:80]}); it was left untouched: name another file")
        if self.read_only:
            return
        if MARKER not in existing:
            connection.execute(f"CREATE TABLE {MARKER} (program VARCHAR)")
            connection.execute(f"INSERT INTO {MARKER} VALUES (?)", [MARKER_TEXT])
        try:
            ownership_file(self.path).touch()
        except OSError:
            pass  # then a damaged cache is refused rather than moved
        for table, definition in TABLES.items():
            if table in DERIVED and table in existing:
                if self._columns(connection, table) != column_names(definition):
                    connection.execute(f"DROP TABLE {table}")
            connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({definition})")

    @staticmethod
    def _columns(connection, table: str) -> list[str]:
        return [row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall()]

    def _quarantine(self, reason: str) -> None:
        """Move a damaged DuckDB cache aside (never anything else) so it can be rebuilt."""
        if not self.path.exists():
            raise StoreError(f"cannot open the cache {self.path}: {reason.splitlines()[0][:160]}")
        if not self._is_duckdb(self.path) and self.path.stat().st_size:
            raise StoreError(f"{self.path} is not a Unit Lens cache; it was left untouched")
        if self.read_only:
            raise StoreError(f"the read-only cache {self.path} cannot be read: {reason.splitlines()[0][:120]}")
        if is_out_of_space(reason):
            raise StoreError(f"the cache {self.path} cannot grow ({space_cause(reason)}); it was left as it was")
        if not ownership_file(self.path).exists():
            raise StoreError(f"cannot open the cache {self.path} ({reason.splitlines()[0][:100]}); it was not "
                             "made by Unit Lens here, so it was left untouched: name another file")
        stamp, aside = int(time.time()), None
        while aside is None or aside.exists():  # never over an earlier copy (a retry in the same second)
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            stamp += 1
        os.replace(self.path, aside)
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            os.replace(wal, aside.with_name(aside.name + ".wal"))
        self._ready = False
        self.notices.append(f"The cache file was damaged ({reason.splitlines()[0][:120]}); "
                            f"it was moved to {aside.name} and results will be recomputed.")

    def _run(self, fn, write: bool = False):
        """Run fn(connection); on a file that vanished or broke between calls, rebuild once.
        A write to a read-only cache is skipped."""
        if write and self.read_only:
            return None
        try:
            with self.connect() as connection:
                if write and self.read_only:
                    return None
                return fn(connection)
        except duckdb().Error as exc:
            if not is_damage(exc):
                raise  # a wrong query of ours, or no memory, says nothing of the file: it must not cost the cache
            if is_lock_error(str(exc)):
                raise StoreError(f"the cache is busy: {str(exc).splitlines()[0][:160]}") from None
            if is_out_of_space(str(exc)):
                if write:  # what is computed is still shown; it is only not kept
                    self.read_only = True
                    self.notices.append(f"The cache {self.path.name} cannot grow ({space_cause(str(exc))}): "
                                        "new results are computed but not saved.")
                    return None
                raise StoreError(f"the cache {self.path} cannot grow ({space_cause(str(exc))})") from None
            self._ready = False
            if self.path.exists():
                self._quarantine(str(exc))
            with self.connect() as connection:
                return fn(connection)

    # ------------------------------------------------------------------ results
    def feature_folder(self) -> Path:
        """Where the engine keeps its feature caches: beside the DuckDB file."""
        return self.path.parent / "features"

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

    def results_for(self, model_hash: str, split: str) -> dict[tuple, str]:
        """Every stored result of a model and split in one query: (analysis, params, version) ->
        its JSON text, parsed by the engine when a page asks for it (a 1000-class model's results
        are 220 MB of JSON: 1 s to fetch whole, 4 s more to parse all, and any query that reads a
        payload costs 0.5 s, so fetching them one by one costs more)."""
        rows = self._run(lambda c: c.execute(
            "SELECT analysis, params, version, payload FROM results WHERE model_hash=? AND split=?",
            [model_hash, split]).fetchall())
        return {(a, p, v): payload for a, p, v, payload in rows}

    def rows_for(self, model_hash: str) -> list[tuple]:
        """Every stored result of a model: (analysis, params, split, version, payload)."""
        rows = self._run(lambda c: c.execute(
            "SELECT analysis, params, split, version, payload FROM results WHERE model_hash=?", [model_hash]).fetchall())
        return [(a, p, s, v, json.loads(payload)) for a, p, s, v, payload in rows or []]

    def put_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int,
                   payload: dict, seconds: float = 0.0) -> None:
        key = self.params_key(params)
        text = json.dumps(payload, allow_nan=False)
        self._run(lambda c: c.execute(
            "INSERT OR REPLACE INTO results (model_hash, analysis, params, split, version, seconds, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", [model_hash, analysis, key, split, version, seconds, text]), write=True)

    # ------------------------------------------------------------------ tables for SQL
    def put_model(self, row: dict) -> None:
        columns = list(row)
        self._run(lambda c: c.execute(
            f"INSERT OR REPLACE INTO models ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[k] for k in columns]), write=True)

    def put_units(self, model_hash: str, rows: list[dict]) -> None:
        if not rows:
            return
        columns = ["model_hash", *rows[0]]

        def write(c):
            c.execute("DELETE FROM units WHERE model_hash = ?", [model_hash])
            c.executemany(f"INSERT INTO units ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [[model_hash, *r.values()] for r in rows])
        self._run(write, write=True)

    def put_run(self, row: dict) -> None:
        columns = list(row)
        self._run(lambda c: c.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[k] for k in columns]), write=True)

    def query(self, sql: str, params=None) -> list[tuple]:
        return self._run(lambda c: c.execute(sql, params or []).fetchall())


def is_damage(exc: Exception) -> bool:
    """Whether a DuckDB error can be the file's (moved aside and rebuilt), not a query's fault
    (syntax, a column, a parameter, a value, a key) or this moment's (out of memory, interrupted).
    A missing table is the file's: a cache deleted between calls comes back empty of them."""
    db = duckdb()
    if isinstance(exc, db.CatalogException):
        return True
    faults = (db.ProgrammingError, db.DataError, db.IntegrityError, db.OutOfMemoryException, db.InterruptException)
    return not isinstance(exc, faults)


class MemoryStore:
    """Results kept in this process only, with the part of Store's interface the analysis
    engine uses (ResultStore): for a machine without DuckDB (the GPU image) or a run that should
    leave no file. Nothing is shared between processes and no feature files are written."""
    params_key = staticmethod(Store.params_key)

    def __init__(self):
        self.notices: list[str] = []
        self._results: dict[tuple, dict] = {}

    def feature_folder(self) -> None:
        """No file of ours anywhere: feature caches stay in memory."""
        return None

    def get_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int):
        return self._results.get((model_hash, analysis, self.params_key(params), split, version))

    def results_for(self, model_hash: str, split: str) -> dict[tuple, dict]:
        return {(a, p, v): payload for (h, a, p, s, v), payload in self._results.items()
                if h == model_hash and s == split}

    def put_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int,
                   payload: dict, seconds: float = 0.0) -> None:
        self._results[(model_hash, analysis, self.params_key(params), split, version)] = \
            json.loads(json.dumps(payload, allow_nan=False))  # what a DuckDB round trip gives back

    def put_model(self, row: dict) -> None:
        """The SQL tables are DuckDB's: nothing to keep here."""

    def put_units(self, model_hash: str, rows: list[dict]) -> None:
        """The SQL tables are DuckDB's: nothing to keep here."""


class ResultStore(Protocol):
    """What the analysis engine needs of a cache; Store (DuckDB) and MemoryStore both have it."""
    notices: list[str]

    def feature_folder(self) -> Path | None: ...
    def params_key(self, params: dict) -> str: ...
    def get_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int): ...
    def results_for(self, model_hash: str, split: str) -> dict[tuple, dict | str]: ...
    def put_result(self, model_hash: str, analysis: str, params: dict, split: str, version: int,
                   payload: dict, seconds: float = 0.0) -> None: ...
    def put_model(self, row: dict) -> None: ...
    def put_units(self, model_hash: str, rows: list[dict]) -> None: ...
