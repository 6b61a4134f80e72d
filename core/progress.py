"""Training progress events: the one format the trainer writes and the run monitor reads.

A run's progress file holds one JSON object per line, each with an `event` (one of EVENTS) and
a wall-clock `time`. `summarize` turns the lines into the few numbers a progress bar needs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .values import is_count, is_number

# phase: what the run is doing before its first step (loading data, building the model)
EVENTS = ("start", "phase", "step", "epoch", "done", "error", "cancelled")
FINAL = {"done": "done", "error": "failed", "cancelled": "cancelled"}


class ProgressLog:
    """Appends events to a JSON-lines file; a no-op without a path (e.g. a non-main DDP rank)."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        """A log the disk no longer takes stops the run in one line: the app could not follow it."""
        assert event in EVENTS, event
        if self.path is None:
            return
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        except OSError as exc:
            path, self.path = self.path, None  # and the error event that follows is not tried again
            raise UserError(f"could not write the progress log {path} ({exc.strerror or exc}): "
                            "the run stops here") from None


# What each field an event may carry must be, checked where the file is read: a progress file is
# data on disk (a crafted one, with a string time or a negative count, broke the sidebar). The
# fields a run may not know yet (a resumed finished run's accuracy, the first step's pace) may be null.
NUMBERS = ("time", "loss", "accuracy", "test_accuracy", "images_per_s", "elapsed_s", "eta_s", "lr")
COUNTS = ("epoch", "epochs", "step", "steps_per_epoch", "global_step", "total_steps", "start_epoch",
          "test_images", "pid")
MAY_BE_NULL = {"loss", "accuracy", "test_accuracy", "images_per_s", "elapsed_s", "eta_s", "lr", "epochs",
               "steps_per_epoch", "total_steps", "test_images"}
TEXTS = ("phase", "message")
FLAGS = ("queued", "cuda_graphs")


def well_formed(event: dict) -> bool:
    """Whether every field the summary and the pages read is of its kind: finite numbers, whole
    counts from 0 (null where allowed), texts, flags, and a config that is an object with a count
    of epochs."""
    def fits(key, kind) -> bool:
        value = event[key]
        return (value is None and key in MAY_BE_NULL) or kind(value)
    config = event.get("config", {})
    return (event.get("event") in EVENTS
            and all(fits(k, is_number) for k in NUMBERS if k in event)
            and all(fits(k, is_count) for k in COUNTS if k in event)
            and all(isinstance(event[k], str) for k in TEXTS if k in event)
            and all(isinstance(event[k], bool) for k in FLAGS if k in event)
            and isinstance(config, dict) and is_count(config.get("epochs", 0)))


def read_events(path: Path | str) -> list[dict]:
    """Every complete, well-formed JSON line of a progress file (a half-written last line, or one
    whose fields are not of their kind, is skipped)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and well_formed(record):
            events.append(record)
    return events


def is_progress_log(path: Path | str) -> bool:
    """Whether the file begins as a progress file does (one this module wrote)."""
    try:
        with open(path, errors="replace") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and first.get("event") in EVENTS


def steps_of(events: list[dict]) -> list[dict]:
    """The step events, in order: the points of a run's training curve."""
    return [e for e in events if e.get("event") == "step"]


@dataclass
class Summary:
    """Where a run stands, from its events alone (None: not known yet)."""
    status: str = "running"            # running, done, failed, cancelled
    phase: str = ""                    # before the first step: what it is doing
    epoch: int = 0                     # epochs begun
    epochs: int | None = None
    step: int = 0                      # step within the epoch
    steps_per_epoch: int | None = None
    global_step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    test_accuracy: float | None = None
    images_per_s: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    epochs_completed: int = 0
    resumable: bool = False           # a checkpoint of a finished epoch was written
    queued: bool = False               # waiting for the runs before it (elapsed_s: the time waited)
    message: str = ""
    test_images: int | None = None     # what test_accuracy is over (fewer than the split with --limit)

    @property
    def how_far(self) -> str:
        """How far a run that ended early got: "after 1 of 3 epochs", or "before training began"
        when it never took a step (its data could not be read, say)."""
        if self.epochs and (self.epochs_completed or self.global_step):
            return f"after {self.epochs_completed} of {self.epochs} epochs"
        return "before training began"

    @property
    def fraction(self) -> float:
        if self.status == "done":
            return 1.0
        return min(1.0, self.global_step / self.total_steps) if self.total_steps else 0.0


def summarize(events: list[dict], now: float | None = None) -> Summary:
    """Where the run stands; a later `start` (a resumed run) begins a new summary. While a run
    waits in the queue, elapsed_s is the time waited; once it trains, the wait is not part of it."""
    summary, started, queued = Summary(), None, False
    for e in events:
        kind = e["event"]
        if kind == "start":
            before, summary, started, queued = summary, Summary(), e.get("time"), False
            summary.epochs = e.get("epochs", (e.get("config") or {}).get("epochs"))
            if (e.get("config") or {}).get("resume"):  # until it trains, what the last attempt saved
                summary.epochs_completed, summary.resumable = before.epochs_completed, before.resumable
        elif kind == "phase":
            if queued and not e.get("queued"):  # the clock starts when the wait in the queue ends
                started = e.get("time", started)
            queued = summary.queued = bool(e.get("queued"))
            summary.phase = e.get("phase", "")
            for key in ("total_steps", "steps_per_epoch"):
                if key in e:
                    setattr(summary, key, e[key])
            if "start_epoch" in e:
                summary.epochs_completed = e["start_epoch"]
                summary.resumable = summary.resumable or e["start_epoch"] > 0
        elif kind == "step":
            summary.phase, summary.queued = "", False
            for key in ("epoch", "epochs", "step", "steps_per_epoch", "global_step", "total_steps", "loss",
                        "accuracy", "images_per_s", "eta_s"):
                if key in e:
                    setattr(summary, key, e[key])
        elif kind == "epoch":
            summary.epochs_completed = e.get("epoch", summary.epochs_completed)
            summary.test_accuracy = e.get("test_accuracy")
            summary.resumable = True
        elif kind in FINAL:
            summary.status = FINAL[kind]
            summary.message = e.get("message", "")
            if kind == "done":
                summary.test_accuracy = e.get("test_accuracy", summary.test_accuracy)
                summary.test_images = e.get("test_images")
                summary.resumable = False
        if started is None:
            started = e.get("time")
    if started is not None:
        end = events[-1].get("time", started) if summary.status != "running" else (now or time.time())
        summary.elapsed_s = max(0.0, end - started)
    if summary.status == "running" and summary.eta_s is None and summary.global_step and summary.total_steps:
        summary.eta_s = summary.elapsed_s * (summary.total_steps - summary.global_step) / summary.global_step
    return summary


def format_seconds(seconds: float | None) -> str:
    """1m05s or 2h03m; "?" when not known yet."""
    if seconds is None:
        return "?"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
