"""Training runs launched from the app: `python -m core.train` subprocesses that outlive a page
reload, described by a small JSON file each under runs/ and followed through their progress file."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .catalog import PROJECT_ROOT, runs_dir
from .data import ImageFolderSource, get_source
from .processes import training_process_start
from .progress import read_events, summarize
from .errors import UserError
from .losses import OBJECTIVES, create_objective
from .losses.base import cast_option

_CHILDREN: dict[int, "object"] = {}  # Popen objects of this process, so finished ones are reaped


class RunError(UserError):
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
    folder: str = ""
    cancelled_at: float = 0.0  # when Cancel was pressed: a process killed before it could say so was cancelled

    def files(self) -> list[Path]:
        """The files this run made (and only those): named after the run, in its runs folder, so a
        record that names other files never reaches here (`record_problem`)."""
        folder = runs_dir_of(self)
        return [folder / f"{self.run_id}{suffix}" for suffix in (".run.json", *RUN_FILES)]


RUN_FILES = (".pt", ".progress.jsonl", ".log")  # out, progress, log: what a run writes beside its record
RECORD_TYPES = {"run_id": str, "pid": int, "method": str, "out": str, "progress": str, "log": str,
                "args": list, "started": (int, float), "cancelled_at": (int, float)}


def record_problem(record, path: Path) -> str | None:
    """Why a run record cannot be trusted, or None. Its fields have their types, its id is its file's
    name, and the files it names are the ones `start_runs` makes beside it: Delete removes those, so
    a crafted record naming files elsewhere must never pass."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in RECORD_TYPES.items():
        value = record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{key} missing or of the wrong type"
    if not all(isinstance(a, str) for a in record["args"]) or record["pid"] <= 0:
        return "malformed args or pid"
    if path.name != f"{record['run_id']}.run.json":
        return "its id is not its file's name"
    folder = path.parent.resolve()
    for key, suffix in zip(("out", "progress", "log"), RUN_FILES):
        if Path(record[key]).resolve() != folder / f"{record['run_id']}{suffix}":
            return f"its {key} file is not beside it"
    return None


def process_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    return training_process_start(pid) is not None


def tail(path: Path | str, lines: int = 5) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def load_run(path: Path) -> Run | None:
    """The run a record describes, or None for a record that is unreadable or fails `record_problem`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if record_problem(record, path) or path.is_symlink():
        return None
    run = Run(**{key: record[key] for key in RECORD_TYPES})
    run.folder = str(path.parent)
    run.events = read_events(run.progress)
    progress = summarize(run.events)
    if progress.status != "running":
        run.status, run.message = progress.status, progress.message
    elif not process_alive(run.pid):
        if run.cancelled_at >= run.started:  # Cancel reached it while PyTorch still loaded
            run.status, run.message = "cancelled", "cancelled before training began"
        else:
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
    """The newest running run: training, or on a CPU queued behind others."""
    return next((r for r in list_runs(folder) if r.status == "running"), None)


def run_option(run: Run, flag: str, default: str) -> str:
    """An option the run was started with (`--device`, `--dataset`), as given."""
    return run.args[run.args.index(flag) + 1] if flag in run.args[:-1] else default


def run_device(run: Run) -> str:
    return run_option(run, "--device", "auto")


def on_the_cpu(device: str) -> bool:
    """Whether a run started with --device `device` trains on this machine's CPU. Runs on the
    CPU share its cores, so they train one after another; on a GPU, at once."""
    return device == "cpu" or not torch.cuda.is_available()


def sharing_the_cpu(folder: Path | None = None) -> list[Run]:
    """Running runs (training or queued) that train on the CPU."""
    return [r for r in list_runs(folder) if r.status == "running" and on_the_cpu(run_device(r))]


MAX_SWEEP_RUNS = 50  # from the sidebar; python -m core.sweep takes more


def sweepable(method: str) -> list[str]:
    """The method's options a sweep can vary: the numbers (not the switches)."""
    return [key for key, (default, _) in OBJECTIVES[method].options.items()
            if isinstance(default, (int, float)) and not isinstance(default, bool)]


def sweep_choices(method: str, options: dict, option: str, values: str, seeds: str) -> tuple[list, list[int]]:
    """A sweep asked for in words ("0.6, 0.7, 0.9"; seeds "0, 1, 2"): the (method, options) of each
    value, the other options as they are, and the seeds each is trained with; RunError (one line)
    for a value the option cannot take or a plan too large."""
    if option not in sweepable(method):
        raise RunError(f"{method} has no numeric option {option[:40]!r} to sweep")
    default = OBJECTIVES[method].options[option][0]
    try:
        chosen = [cast_option(default, v.strip()) for v in values.split(",") if v.strip()]
        seed_list = [int(v.strip()) for v in seeds.split(",") if v.strip()]
    except ValueError:
        raise RunError(f"give {option}'s values and the seeds as numbers separated by commas "
                       f"(values {values[:40]!r}, seeds {seeds[:40]!r})") from None
    if len(set(chosen)) < 2 or not seed_list:
        raise RunError(f"a sweep needs at least two values of {option} and one seed")
    if len(set(chosen)) * len(set(seed_list)) > MAX_SWEEP_RUNS:
        raise RunError(f"{len(set(chosen)) * len(set(seed_list))} runs; a sweep from here holds at most "
                       f"{MAX_SWEEP_RUNS} (python -m core.sweep takes more)")
    return [(method, {**options, option: v}) for v in dict.fromkeys(chosen)], list(dict.fromkeys(seed_list))


def start_runs(choices: list[tuple[str, dict]], dataset: str = "fashion-mnist", arch: str = "resnet20",
               epochs: int = 1, limit: int | None = None, batch_size: int = 256, lr: float = 0.1,
               seed: int = 0, device: str = "auto", folder: Path | None = None, init: str = "",
               input_size: int | None = None, head_only_epochs: int = 0, seeds: list[int] | None = None) -> list[Run]:
    """Launch one run per (method, options) and seed (`seeds`, or `seed`), on the same data. On a
    GPU they all train at once (their start-ups overlap; bench/RESULTS.md); on a CPU one at a
    time: each process waits
    (`--after`, once per process) until every CPU run started before it has ended, so a run
    cancelled or failing in the middle of the queue lets no two train at once."""
    source = get_source(dataset)
    if isinstance(source, ImageFolderSource) and not source.path.is_absolute():
        raise RunError("give the image folder's full path (as /home/me/photos or ~/photos): a relative one "
                       "would be read from the server's working folder")
    source.check()  # a missing dataset or folder is said now, not after launch
    if init and not Path(init).is_absolute():
        raise RunError("give the weights file's full path: a relative one would be read from the server's folder")
    if init and not Path(init).is_file():
        raise RunError(f"{init}: no such file")
    if input_size and not dataset.startswith("imagefolder:"):
        raise RunError(f"the input size applies to an image folder; {dataset}'s images have their own size")
    if not 0 <= head_only_epochs <= epochs:
        raise RunError(f"the head-only epochs ({head_only_epochs}) are more than the epochs ({epochs})")
    for method, options in choices:  # and so are options that cannot work (before any run starts)
        try:
            create_objective(method, **options).validate_run(epochs)
        except ValueError as exc:
            raise RunError(str(exc)) from None
    folder = Path(folder or runs_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(folder, exc, "no run was started") from None
    queue = on_the_cpu(device)
    before = [r.pid for r in sharing_the_cpu(folder)] if queue else []
    started = []
    try:  # a folder that took the first runs may take no more: those train on, and are named
        for (method, options), seed in ((choice, s) for choice in choices for s in (seeds or [seed])):
            run_id = claim_run_id(folder, f"{method}-{time.strftime('%Y%m%d-%H%M%S')}")
            out, progress, log = (folder / f"{run_id}{suffix}" for suffix in (".pt", ".progress.jsonl", ".log"))
            args = [sys.executable, "-m", "core.train", "--method", method, "--dataset", dataset, "--arch", arch,
                    "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", str(lr), "--seed", str(seed),
                    "--device", device, "--out", str(out), "--progress", str(progress)]
            if limit:
                args += ["--limit", str(limit)]
            if init:
                args += ["--init", init]
            if input_size:
                args += ["--input-size", str(input_size)]
            if head_only_epochs:
                args += ["--head-only-epochs", str(head_only_epochs)]
            for key, value in options.items():
                args += [f"--{key.replace('_', '-')}", str(value)]
            for pid in before:
                args += ["--after", str(pid)]
            run = launch(Run(run_id, 0, method, str(out), str(progress), str(log), args, time.time()), folder)
            started.append(run)
            if queue:
                before.append(run.pid)
    except OSError as exc:
        raise unwritable(folder, exc, f"{len(started)} run(s) started ({', '.join(r.run_id for r in started)}) "
                                      "and train on; the others were not" if started else "no run was started") from None
    return started


def claim_run_id(folder: Path, base: str) -> str:
    """`base`, or `base` with x's added, whose record file this process created: two tabs pressing
    Start in the same second both saw the name free and wrote one run (one checkpoint, two trainers)."""
    run_id = base
    while True:
        try:
            with open(folder / f"{run_id}.run.json", "x"):
                return run_id
        except FileExistsError:
            run_id += "x"


def unwritable(folder: Path, exc: OSError, outcome: str) -> RunError:
    return RunError(f"cannot write to the runs folder {folder} ({exc.strerror or exc}): {outcome}")


def launch(run: Run, folder: Path) -> Run:
    """Start the trainer and write its record. A folder that takes no more (full, read-only) stops
    it here, as an OSError: a trainer without a record could be neither followed nor cancelled
    from the app, so it is killed and the files claimed for it are removed."""
    import subprocess
    run.folder = str(folder)
    try:
        with open(run.log, "a") as log_file:
            proc = subprocess.Popen(run.args, cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    except OSError:
        remove_claimed(run)
        raise
    _CHILDREN[proc.pid] = proc
    run.pid, run.started, run.status, run.cancelled_at = proc.pid, time.time(), "running", 0.0
    try:
        save_record(run)
    except OSError:
        proc.kill()
        proc.wait()
        remove_claimed(run)
        raise
    return run


def remove_claimed(run: Run) -> None:
    """The record and log claimed for a run that never started, where still empty (a resumed run's
    are not, and stay)."""
    for path in (runs_dir_of(run) / f"{run.run_id}.run.json", Path(run.log)):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                path.unlink()


def save_record(run: Run) -> None:
    """Written whole or not at all (a temporary renamed over it): a full disk never leaves a cut
    record, which would hide the run."""
    record = {k: v for k, v in run.__dict__.items() if k not in ("events", "status", "message", "folder")}
    path = runs_dir_of(run) / f"{run.run_id}.run.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # two tabs: two files
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def can_resume(run: Run) -> bool:
    """A cancelled or failed run whose last finished epoch is on disk."""
    return run.status in ("cancelled", "failed") and Path(run.out).exists() and summarize(run.events).resumable


def resume_run(run: Run) -> Run:
    """Start the run again from its checkpoint (`--resume`), with the same options (on a CPU
    after every CPU run running or queued)."""
    if not can_resume(run):
        raise RunError(f"run {run.run_id} has no finished epoch to resume from")
    args = without_option(without_option(run.args, "--resume", 0), "--after", 1) + ["--resume"]
    if on_the_cpu(run_device(run)):
        for other in sharing_the_cpu(runs_dir_of(run)):
            args += ["--after", str(other.pid)]
    try:
        return launch(Run(run.run_id, 0, run.method, run.out, run.progress, run.log, args, time.time()),
                      runs_dir_of(run))
    except OSError as exc:
        raise unwritable(runs_dir_of(run), exc, f"run {run.run_id} was not resumed") from None


def without_option(args: list[str], name: str, values: int) -> list[str]:
    """`args` without any `name` and the `values` arguments that follow each."""
    args = list(args)
    while name in args:
        at = args.index(name)
        args[at:at + 1 + values] = []
    return args


def delete_run(run: Run) -> None:
    """Remove the files this run made; a running run must be cancelled first."""
    if run.status == "running" and process_alive(run.pid):
        raise RunError(f"run {run.run_id} is still training; cancel it first")
    for path in run.files():
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RunError(f"could not delete {path.name}: {exc.strerror or exc}") from None


def runs_dir_of(run: Run) -> Path:
    return Path(run.folder or runs_dir())


def cancel_run(run: Run) -> None:
    """SIGTERM to the run's process group: the trainer writes a 'cancelled' event and exits."""
    if not process_alive(run.pid):
        raise RunError(f"run {run.run_id} is not running")
    run.cancelled_at = time.time()
    with contextlib.suppress(OSError):  # a full disk loses only the note that Cancel was pressed
        save_record(run)
    try:
        os.killpg(run.pid, signal.SIGTERM)
    except ProcessLookupError:
        raise RunError(f"run {run.run_id} had already ended") from None


def run_row(run: Run) -> dict:
    """The run as a row of the store's `runs` table."""
    progress = summarize(run.events)
    return {"run_id": run.run_id, "checkpoint": run.out, "method": run.method, "status": run.status,
            "epoch": progress.epochs_completed, "epochs": progress.epochs, "loss": progress.loss,
            "accuracy": progress.accuracy, "test_accuracy": progress.test_accuracy,
            "images_per_s": progress.images_per_s, "eta_s": progress.eta_s, "message": run.message or None}


_INGESTED: dict[str, tuple] = {}


def ingest(store, all_runs: list[Run]) -> None:
    """Copy runs into the DuckDB `runs` table when their status changes (the app is its one
    writer; a refresh while a run trains writes nothing)."""
    for run in all_runs:
        row = run_row(run)
        signature = (row["status"], row["epoch"] if row["status"] != "running" else None)
        if _INGESTED.get(run.run_id) != signature:
            store.put_run(row)
            _INGESTED[run.run_id] = signature
