"""Checkpoints: one `.pt` file per model, readable with `torch.load(weights_only=True)` only.

Layout: {"format": FORMAT, "meta_json": str, "state_dict": {...}, "train_state": {...}?}.
Metadata is a JSON string so nothing but tensors and plain containers is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from .models import UnitModel, create_model

FORMAT = "unitlens-checkpoint-v1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def bundled_dir() -> Path:
    """checkpoints/ (UNITLENS_CHECKPOINTS overrides it, e.g. for tests)."""
    return Path(os.environ.get("UNITLENS_CHECKPOINTS", PROJECT_ROOT / "checkpoints"))


def runs_dir() -> Path:
    """Where runs started from the app write (UNITLENS_RUNS overrides runs/)."""
    return Path(os.environ.get("UNITLENS_RUNS", PROJECT_ROOT / "runs"))


REQUIRED_META = ("arch", "dataset", "class_names", "channels", "input_size", "mean", "std", "method")


class CheckpointError(RuntimeError):
    """A file cannot be used as a model; the message is one line."""


def save_checkpoint(path: Path | str, model: UnitModel, meta: dict, train_state: dict | None = None,
                    trajectory: dict | None = None) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    payload = {"format": FORMAT, "meta_json": json.dumps(meta, allow_nan=False),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if train_state is not None:
        payload["train_state"] = train_state
    if trajectory is not None:
        payload["trajectory"] = trajectory
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_payload(path: Path | str) -> dict:
    """The raw checkpoint dict, or CheckpointError. Never unpickles arbitrary objects."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise CheckpointError(f"{path.name}: broken link")
    if path.is_dir():
        raise CheckpointError(f"{path.name}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name}: empty file")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; we report in one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = first if "Unsupported global" in first or "GLOBAL" in first else "not a weights-only file"
        raise CheckpointError(f"{path.name}: refused, contains objects we will not unpickle ({detail[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name}: not a readable checkpoint (truncated or corrupt: {text[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: not a Unit Lens checkpoint")
    return payload


def parse_meta(payload: dict, name: str = "checkpoint") -> dict:
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{name}: metadata missing or not JSON") from None
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise CheckpointError(f"{name}: metadata lacks {missing[0]!r}")
    return meta


def build_model(meta: dict, state_dict: dict, name: str = "checkpoint") -> UnitModel:
    try:
        model = create_model(meta["arch"], len(meta["class_names"]), int(meta["channels"]))
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    if "gate" in state_dict:
        model.add_gate()
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{name}: weights do not fit {meta['arch']} with "
                              f"{len(meta['class_names'])} classes ({detail[:160]})") from None
    return model.eval()


def load_checkpoint(path: Path | str) -> tuple[UnitModel, dict]:
    """`(model in eval mode on the CPU, meta)` or CheckpointError with a one-line reason."""
    path = Path(path)
    payload = read_payload(path)
    meta = parse_meta(payload, path.name)
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path.name}: no state dict")
    model = build_model(meta, state_dict, path.name)
    meta["path"] = str(path)
    meta["content_hash"] = file_hash(path)
    return model, meta


def file_hash(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def discover(extra_dirs=(), include_runs: bool = True) -> list[Path]:
    """Every `*.pt` in checkpoints/, runs/ and folders the user names (not recursive into
    hidden or temporary files), sorted, de-duplicated."""
    folders = [bundled_dir(), *(Path(d).expanduser() for d in extra_dirs)]
    if include_runs:
        folders.append(runs_dir())
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.pt")):
            if path.name.startswith("."):
                continue
            found.setdefault(str(path.resolve()) if path.exists() else str(path), path)
    return list(found.values())


def model_label(meta: dict) -> str:
    """Short display name: the file stem."""
    return Path(meta.get("path", meta.get("method", "model"))).stem
