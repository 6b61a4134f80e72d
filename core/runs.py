"""Training runs launched from the app: `python -m core.train` subprocesses that outlive a page
reload, described by a small JSON file each under runs/ and followed through their progress file."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import PROJECT_ROOT, runs_dir

_CHILDREN: dict[int, "object"] = {}  # Popen objects of this process, so finished ones are reaped


class RunError(RuntimeError):
    """A run cannot be started or cancelled; one line for the user."""


@dataclass
class Run:
    run_id: str
    pid: int
    method: str
    out: str
    progress: str
    log: str
    args: list
    started: float
    status: str = "running"
    events: list = field(default_factory=list)
    message: str = ""

    @property
    def last_step(self) -> dict | None:
        steps = [e for e in self.events if e.get("event") in ("step", "epoch")]
        return steps[-1] if steps else None

    @property
    def fraction(self) -> float:
        start = next((e for e in self.events if e.get("event") == "start"), None)
        step = next((e for e in reversed(self.events) if e.get("event") == "step"), None)
        if self.status == "done":
            return 1.0
        if not start or not step:
            return 0.0
        return min(1.0, step["global_step"] / max(1, start["total_steps"]))


def read_progress(path: Path | str) -> list[dict]:
    """Every complete JSON line of a progress file (a half-written last line is skipped)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def process_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z" and b"core.train" in cmdline


def tail(path: Path | str, lines: int = 5) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def load_run(path: Path) -> Run | None:
    try:
        run = Run(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    run.events = read_progress(run.progress)
    final = next((e for e in reversed(run.events) if e.get("event") in ("done", "error", "cancelled")), None)
    if final is not None:
        run.status = {"done": "done", "error": "failed", "cancelled": "cancelled"}[final["event"]]
        run.message = final.get("message", "")
    elif not process_alive(run.pid):
        run.status = "failed"
        run.message = tail(run.log) or "the process ended without a word"
    if run.status == "failed" and not run.message:
        run.message = tail(run.log)
    return run


def list_runs(folder: Path | None = None) -> list[Run]:
    folder = folder or runs_dir()
    runs = [load_run(p) for p in sorted(Path(folder).glob("*.run.json"))]
    return sorted((r for r in runs if r), key=lambda r: -r.started)


def active_run(folder: Path | None = None) -> Run | None:
    return next((r for r in list_runs(folder) if r.status == "running"), None)


def start_run(method: str, options: dict, dataset: str = "fashion-mnist", arch: str = "resnet20",
              epochs: int = 1, limit: int | None = None, batch_size: int = 256, lr: float = 0.1,
              seed: int = 0, device: str = "auto", folder: Path | None = None) -> Run:
    """Launch one run; on a machine without CUDA only one at a time."""
    import subprocess
    current = active_run(folder)
    if current is not None and not torch.cuda.is_available():
        raise RunError(f"run {current.run_id} is still training; on a CPU machine one run at a time")
    folder = Path(folder or runs_dir())
    folder.mkdir(parents=True, exist_ok=True)
    run_id = f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    while (folder / f"{run_id}.run.json").exists():
        run_id += "x"
    out, progress, log = (folder / f"{run_id}{suffix}" for suffix in (".pt", ".progress.jsonl", ".log"))
    args = [sys.executable, "-m", "core.train", "--method", method, "--dataset", dataset, "--arch", arch,
            "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", str(lr), "--seed", str(seed),
            "--device", device, "--out", str(out), "--progress", str(progress)]
    if limit:
        args += ["--limit", str(limit)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    _CHILDREN[proc.pid] = proc
    run = Run(run_id, proc.pid, method, str(out), str(progress), str(log), args, time.time())
    record = {k: v for k, v in run.__dict__.items() if k not in ("events", "status", "message")}
    (folder / f"{run_id}.run.json").write_text(json.dumps(record))
    return run


def cancel_run(run: Run) -> None:
    """SIGTERM to the run's process group: the trainer writes a 'cancelled' event and exits."""
    if not process_alive(run.pid):
        raise RunError(f"run {run.run_id} is not running")
    try:
        os.killpg(run.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise RunError(f"run {run.run_id} had already ended") from None


def run_row(run: Run) -> dict:
    """The run as a row of the store's `runs` table."""
    step = run.last_step or {}
    done = next((e for e in reversed(run.events) if e.get("event") in ("epoch", "done") and "test_accuracy" in e), {})
    return {"run_id": run.run_id, "checkpoint": run.out, "method": run.method, "status": run.status,
            "epoch": step.get("epoch"), "epochs": step.get("epochs") or _planned_epochs(run),
            "loss": step.get("loss", step.get("train_loss")), "accuracy": step.get("accuracy", step.get("train_accuracy")),
            "test_accuracy": done.get("test_accuracy"), "images_per_s": step.get("images_per_s"),
            "eta_s": step.get("eta_s"), "message": run.message or None}


def _planned_epochs(run: Run) -> int | None:
    start = next((e for e in run.events if e.get("event") == "start"), None)
    return start["config"]["epochs"] if start else None


_INGESTED: dict[str, tuple] = {}


def ingest(store, all_runs: list[Run]) -> None:
    """Copy runs whose state changed into the DuckDB `runs` table (the app is its one writer)."""
    for run in all_runs:
        row = run_row(run)
        signature = (row["status"], row["epoch"], row["test_accuracy"])
        if _INGESTED.get(run.run_id) != signature:
            store.put_run(row)
            _INGESTED[run.run_id] = signature
