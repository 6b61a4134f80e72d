"""The DuckDB store: round trip, two processes at once, a damaged file."""
import os
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from core.progress import summarize
from core.store import Store, StoreError

from .conftest import ROOT


def test_round_trip_and_params_are_part_of_the_key(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.put_result("h", "a", {"k": 1}, "test", 1, {"x": [1, 2.5, None]})
    assert store.get_result("h", "a", {"k": 1}, "test", 1) == {"x": [1, 2.5, None]}
    assert store.get_result("h", "a", {"k": 2}, "test", 1) is None
    assert store.get_result("h", "a", {"k": 1}, "test", 2) is None


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from core.store import Store
    store = Store({path!r})
    for i in range(40):
        store.put_result("proc{tag}", "a", {{"i": i}}, "test", 1, {{"i": i}})
        assert store.get_result("proc{tag}", "a", {{"i": i}}, "test", 1) == {{"i": i}}
""")


@pytest.mark.slow
def test_two_processes_write_at_once_without_lock_errors_or_lost_results(tmp_path):
    path = tmp_path / "shared.duckdb"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(path), tag=t)],
                              stderr=subprocess.PIPE, text=True) for t in (1, 2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    rows = Store(path).query("SELECT model_hash, count(*) FROM results GROUP BY 1 ORDER BY 1")
    assert rows == [("proc1", 40), ("proc2", 40)]


def held_cache(tmp_path, seconds: float | None):
    """A cache holding one result, then another process holding its file for `seconds` (None:
    until the test ends); returns (path, that process)."""
    path = tmp_path / "held.duckdb"
    Store(path).put_result("h", "a", {}, "test", 1, {"v": 1})
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        c = duckdb.connect({str(path)!r})
        print("held", flush=True)
        {f"time.sleep({seconds})" if seconds is not None else "sys.stdin.read()"}
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return path, holder


@pytest.mark.slow  # a second process by nature
def test_waits_while_another_process_holds_the_file(tmp_path):
    path, holder = held_cache(tmp_path, 1.5)
    assert Store(path).get_result("h", "a", {}, "test", 1) == {"v": 1}  # waited, then read
    holder.communicate("", timeout=30)


@pytest.mark.slow  # a second process by nature
def test_a_lock_held_on_is_said_once_then_refused_in_one_line(tmp_path):
    path, holder = held_cache(tmp_path, None)
    try:
        said = []
        start = time.monotonic()
        with pytest.raises(StoreError, match="stayed locked by another process for 3 s"):
            Store(path, lock_timeout=3, on_wait=said.append).get_result("h", "a", {}, "test", 1)
        assert time.monotonic() - start >= 3
        assert len(said) == 1 and "another process is using it" in said[0] and str(path) in said[0], said
    finally:
        holder.communicate("", timeout=30)


def test_damaged_duckdb_file_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "broken.duckdb"
    store = Store(path)
    store.put_result("h", "a", {}, "test", 1, {"ok": False})
    header = path.read_bytes()[:4096]                    # a DuckDB header, then garbage
    path.write_bytes(header + b"\x00garbage" * 5000)
    store = Store(path)
    assert store.get_result("h", "a", {}, "test", 1) is None
    store.put_result("h", "a", {}, "test", 1, {"ok": True})
    assert store.get_result("h", "a", {}, "test", 1) == {"ok": True}
    assert store.notices and "moved" in store.notices[0]
    assert list(tmp_path.glob("broken.duckdb.corrupt-*"))


def test_a_wrong_query_keeps_the_cache(tmp_path):
    """A query DuckDB cannot bind, parse or convert is a fault of ours, not damage: it raises, and
    the cache and its results stay (before, the whole cache was moved aside as corrupt)."""
    path = tmp_path / "c.duckdb"
    store = Store(path)
    store.put_result("h", "a", {}, "test", 1, {"ok": True})
    for query, params in [("SELECT octet_length(payload) FROM results", []), ("SELEC payload FROM results", []),
                          ("SELECT * FROM results WHERE split=?", ["a", "b"]),
                          ("SELECT CAST(payload AS INTEGER) FROM results", [])]:
        with pytest.raises((duckdb.ProgrammingError, duckdb.DataError)):  # binder, parser, input, conversion
            store._run(lambda c: c.execute(query, params).fetchall())
    assert not list(tmp_path.glob("*corrupt*")) and not store.notices
    assert Store(path).get_result("h", "a", {}, "test", 1) == {"ok": True}


def test_a_cache_of_an_earlier_version_is_ours_and_two_damaged_copies_never_overwrite_each_other(tmp_path):
    """A cache written before the marker table (our tables only) is used and marked; a file damaged
    twice in one second is moved aside twice, to two names (a retry overwrote the first copy)."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as c:
        c.execute("CREATE TABLE results (model_hash VARCHAR, analysis VARCHAR, params VARCHAR, split VARCHAR, "
                  "version INTEGER, created TIMESTAMP, seconds DOUBLE, payload VARCHAR)")
        c.execute("INSERT INTO results VALUES ('h', 'a', '{}', 'test', 1, now(), 0, '{\"v\": 7}')")
    assert Store(path).get_result("h", "a", {}, "test", 1) == {"v": 7}
    with duckdb.connect(str(path), read_only=True) as c:
        assert c.execute("SELECT * FROM unitlens_cache").fetchall() == [("Unit Lens analysis cache",)]
    copies = []
    for _ in range(2):
        path.write_bytes(path.read_bytes()[:4096] + b"\x00garbage" * 5000)
        copies.append(path.read_bytes())
        store = Store(path)
        assert store.get_result("h", "a", {}, "test", 1) is None and "moved" in store.notices[0]
    kept = sorted(p.read_bytes() for p in tmp_path.glob("old.duckdb.corrupt-*"))
    assert len(kept) == 2 and kept == sorted(copies)


@pytest.mark.parametrize("kind", ["text file", "directory", "under a file", "other database",
                                  "another program's results table", "a damaged database we did not make"])
def test_what_is_not_ours_is_never_moved_or_changed(tmp_path, kind):
    path = tmp_path / "cache.duckdb"
    if kind == "text file":
        path.write_text("my notes, not a cache\n")
    elif kind == "directory":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    elif kind == "under a file":
        (tmp_path / "afile").write_text("x")
        path = tmp_path / "afile" / "cache.duckdb"
    elif kind == "another program's results table":  # a user's own database, named by --cache
        with duckdb.connect(str(path)) as c:
            c.execute("CREATE TABLE results (id INTEGER, amount DOUBLE)")
            c.execute("CREATE TABLE customers (name VARCHAR)")
    elif kind == "a damaged database we did not make":
        with duckdb.connect(str(path)) as c:
            c.execute("CREATE TABLE mine (x INTEGER)")
        path.write_bytes(path.read_bytes()[:4096] + b"\x00garbage" * 5000)
    else:
        with duckdb.connect(str(path)) as c:
            c.execute("CREATE TABLE mine (x INTEGER)")
    before = sorted((p.name, p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError) as info:
        Store(path).get_result("h", "a", {}, "test", 1)
    assert "\n" not in str(info.value)
    assert sorted((p.name, p.read_bytes() if p.is_file() else b"") for p in tmp_path.rglob("*")) == before


def test_read_only_cache_is_read_not_moved(tmp_path):
    """A cache we may not write is opened read-only: stored results are read, new ones are not
    saved, nothing is moved. (Permissions decide it; as root they cannot, so it is asked for.)"""
    path = tmp_path / "cache.duckdb"
    Store(path).put_result("h", "a", {}, "test", 1, {"v": 1})
    store = Store(path, read_only=True)
    assert store.get_result("h", "a", {}, "test", 1) == {"v": 1}
    store.put_result("h", "b", {}, "test", 1, {"v": 2})      # skipped, no error
    assert store.get_result("h", "b", {}, "test", 1) is None
    assert store.read_only and "read-only" in store.notices[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.duckdb", "cache.duckdb.unitlens"]
    if os.getuid() != 0:  # a real read-only folder, where permissions can say so
        tmp_path.chmod(0o555)
        try:
            assert Store(path).get_result("h", "a", {}, "test", 1) == {"v": 1}
        finally:
            tmp_path.chmod(0o755)


FULL_WRITER = textwrap.dedent("""
    import os, resource, signal, sys
    sys.path.insert(0, {root!r})
    from core.store import Store
    store = Store({path!r})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG, as a full disk fails
    room = os.path.getsize({path!r}) + 4096
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))
    store.put_result("h", "big", {{}}, "test", 1, {{"x": list(range(200_000))}})
    print(store.notices)
""")


def test_a_cache_that_cannot_grow_keeps_its_results_and_is_never_moved(tmp_path):
    """Issue 32: a write that found no room (here a file-size limit, the same failure a full disk
    gives) was taken for damage: the good cache was moved aside and every stored result lost."""
    path = tmp_path / "c.duckdb"
    Store(path).put_result("h", "kept", {}, "test", 1, {"x": 1})
    done = subprocess.run([sys.executable, "-c", FULL_WRITER.format(root=str(ROOT), path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cannot grow (File too large): new results are computed but not saved" in done.stdout
    assert not list(tmp_path.glob("*corrupt*"))
    store = Store(path)
    assert store.get_result("h", "kept", {}, "test", 1) == {"x": 1}
    assert store.get_result("h", "big", {}, "test", 1) is None
    store.put_result("h", "later", {}, "test", 1, {"y": 2})  # with room again, it writes
    assert store.get_result("h", "later", {}, "test", 1) == {"y": 2} and not store.notices


def test_deleted_file_is_recreated(tmp_path):
    path = tmp_path / "gone.duckdb"
    store = Store(path)
    store.put_result("h", "a", {}, "test", 1, {"v": 1})
    path.unlink()
    assert store.get_result("h", "a", {}, "test", 1) is None
    store.put_result("h", "a", {}, "test", 1, {"v": 2})
    assert store.get_result("h", "a", {}, "test", 1) == {"v": 2}


@pytest.mark.slow
def test_training_progress_is_ingested_into_the_runs_table(tmp_path, data_root):
    from core import runs
    run = runs.start_runs([("ce", {})], epochs=1, limit=200, batch_size=100, folder=tmp_path)[0]
    deadline = time.time() + 180
    while runs.load_run(tmp_path / f"{run.run_id}.run.json").status == "running":
        assert time.time() < deadline
        time.sleep(0.5)
    finished = runs.list_runs(tmp_path)
    assert [r.status for r in finished] == ["done"]
    store = Store(tmp_path / "runs.duckdb")
    runs.ingest(store, finished)
    rows = store.query("SELECT run_id, method, status, epoch, epochs, test_accuracy FROM runs")
    assert rows[0][:5] == (run.run_id, "ce", "done", 1, 1) and 0 <= rows[0][5] <= 1
    assert runs.active_run(tmp_path) is None


def test_on_cpu_runs_queue_one_after_another_and_cancel_stops_one(tmp_path, data_root):
    """On the CPU, runs started while one trains wait (`--after`) for every run started before
    them; the waiting runs say so; a run cancelled in the middle of the queue does not let the
    one behind it start beside the first; when the first ends, the last trains and finishes."""
    from core import runs
    first = runs.start_runs([("ce", {})], epochs=30, limit=3000, batch_size=50, device="cpu",
                             folder=tmp_path)[0]  # cancelled

    def load(run):
        return runs.load_run(tmp_path / f"{run.run_id}.run.json")

    def wait_until(condition, what):
        deadline = time.time() + 150
        while not condition():
            assert time.time() < deadline, what
            time.sleep(0.2)

    wait_until(lambda: any(e.get("event") == "step" for e in load(first).events), "the first run's first step")
    second, third = runs.start_runs([("minimax", {}), ("ce", {})], epochs=1, limit=100, batch_size=50,
                                    device="cpu", folder=tmp_path)
    assert second.args[-2:] == ["--after", str(first.pid)]
    assert third.args[-4:] == ["--after", str(first.pid), "--after", str(second.pid)]
    try:
        for queued in (second, third):
            wait_until(lambda q=queued: summarize(load(q).events).phase.startswith("queued"), "the queued phase")
        runs.cancel_run(load(second))  # the middle of the queue
        wait_until(lambda: load(second).status == "cancelled", "the second run to stop")
        time.sleep(2)
        assert load(first).status == "running" and summarize(load(third).events).phase.startswith("queued")
    finally:
        runs.cancel_run(load(first))
    wait_until(lambda: load(third).status != "running", "the last run to train and finish")
    assert [load(r).status for r in (first, second, third)] == ["cancelled", "cancelled", "done"]
    first_ended = max(e["time"] for e in load(first).events)
    assert first_ended <= min(e["time"] for e in load(third).events if e["event"] == "step")  # one at a time
    assert not any(e["event"] == "step" for e in load(second).events)


def test_memory_store_keeps_results_as_a_duckdb_round_trip_would(tiny_checkpoints):
    from core.analysis.engine import Analyzer
    from core.store import MemoryStore
    store = MemoryStore()
    store.put_result("h", "a", {"k": 1}, "test", 1, {"x": (1, 2.5)})
    assert store.get_result("h", "a", {"k": 1}, "test", 1) == {"x": [1, 2.5]}  # JSON: a tuple comes back a list
    assert store.get_result("h", "a", {"k": 2}, "test", 1) is None
    assert store.results_for("h", "test") == {("a", '{"k":1}', 1): {"x": [1, 2.5]}}
    with pytest.raises(ValueError):
        store.put_result("h", "a", {}, "test", 1, {"x": float("nan")})
    first = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200, use_cache=False)
    first.run("selectivity")
    assert first.feature_dir is None and first.computed == ["selectivity"]
    again = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200)
    assert again.run("selectivity") == first.run("selectivity") and again.computed == []


def test_stored_results_are_parsed_only_when_asked_for(tiny_checkpoints, tmp_path):
    """One query fetches a model's results as JSON text; the engine parses the one a page asks
    for (a 1000-class model's results are 220 MB of JSON, 4 s to parse all) and keeps it parsed."""
    from core.analysis.engine import Analyzer
    store = Store(tmp_path / "c.duckdb")
    store.put_result("h", "a", {"k": 1}, "test", 1, {"x": [1, 2.5]})
    assert store.results_for("h", "test") == {("a", '{"k":1}', 1): '{"x": [1, 2.5]}'}
    first = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200)
    computed = {name: first.run(name) for name in ("selectivity", "accuracy")}
    again = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200)
    assert again.cached("selectivity") == computed["selectivity"]
    waiting = {key[0]: value for key, value in again._prefetched.items()}
    assert isinstance(waiting["accuracy"], str) and "selectivity" not in waiting  # parsed, its text let go
    assert again.cached("accuracy") == computed["accuracy"] and again.computed == []


def test_a_record_reads_through_its_listing(tiny_checkpoints, tmp_path):
    """The app's model record and the model's listing share their results: what one computes the
    other has, parsed once; analyzers of other limits may not share."""
    from core.analysis.engine import Analyzer
    store = Store(tmp_path / "c.duckdb")
    listing = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200)
    record = Analyzer.from_path(tiny_checkpoints["ce"], store, limit=200, train_limit=200)
    record.read_through(listing)
    computed = record.run("selectivity")
    assert listing.cached("selectivity") is computed and listing.computed == []
    with pytest.raises(ValueError):
        Analyzer.from_path(tiny_checkpoints["ce"], store, limit=100, train_limit=200).read_through(listing)


@pytest.mark.slow
def test_the_engine_runs_where_duckdb_is_not_installed(tiny_checkpoints):
    """The GPU image has no DuckDB: the engine must import and run on a MemoryStore there."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["duckdb"] = None  # import duckdb now fails, as where it is not installed
        sys.path.insert(0, {str(ROOT)!r})
        from core.analysis.engine import Analyzer
        from core.store import MemoryStore
        result = Analyzer.from_path({str(tiny_checkpoints["ce"])!r}, MemoryStore(), limit=100, train_limit=100,
                                    use_cache=False).run("accuracy")
        print(result["accuracy"])
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    assert 0.0 <= float(child.stdout.strip()) <= 1.0


def test_a_training_process_is_named_by_its_pid_and_start_time():
    """The queue waits for a process as it was when the wait began: its start time from /proc
    (the same as `ps` reads), which a reused pid would not share; not a training process: None."""
    from core import processes
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "core.train"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.time() + 10
        while processes.training_process_start(child.pid) is None:
            assert time.time() < deadline
            time.sleep(0.05)
        ticks = int(processes.training_process_start(child.pid))
        since_boot = float(open("/proc/uptime").read().split()[0])
        assert 0 <= since_boot - ticks / os.sysconf("SC_CLK_TCK") < 10  # started in the last seconds
        assert processes.training_process_start(other.pid) is None
    finally:
        for process in (child, other):
            process.kill()
            process.wait()
    assert processes.training_process_start(child.pid) is None


def test_cancel_while_pytorch_still_loads_is_a_cancelled_run(tmp_path, data_root):
    """Cancel pressed in the first second, before the trainer can catch SIGTERM (it is still
    importing PyTorch): the run is 'cancelled', not 'failed ... ended without a word'."""
    from core import runs
    run = runs.start_runs([("ce", {})], epochs=1, limit=100, batch_size=50, device="cpu", folder=tmp_path)[0]
    runs.cancel_run(run)
    deadline = time.time() + 60
    while (loaded := runs.load_run(tmp_path / f"{run.run_id}.run.json")).status == "running":
        assert time.time() < deadline
        time.sleep(0.1)
    assert (loaded.status, loaded.message) in {("cancelled", "cancelled before training began"),
                                               ("cancelled", "cancelled by signal")}
    assert not any(e.get("event") == "step" for e in loaded.events)
