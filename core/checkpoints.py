"""Checkpoints: one `.pt` file per model, readable with `torch.load(weights_only=True)` only.

Layout: {"format": FORMAT, "meta_json": str, "state_dict": {...}, "train_state": {...}?}.
Metadata is a JSON string so nothing but tensors and plain containers is ever unpickled.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import pickle
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import trajectory
from .catalog import file_hash, model_label
from .errors import UserError
from .values import is_count, is_number, is_whole
from .models import MODELS, UnitModel, all_finite, arch_options, create_model, resolve_arch

FORMAT = "unitlens-checkpoint-v1"
REQUIRED_META = ("arch", "dataset", "class_names", "channels", "input_size", "mean", "std", "method")
TOP_KEYS = {"format", "meta_json", "state_dict", "train_state", "trajectory"}
MAX_FILE_BYTES = 1024 * 2**20    # above the largest model we build (VGG-19: 548 MB in float32)
MAX_PICKLE_BYTES = 16 * 2**20    # the pickled structure and metadata, without tensor data
MAX_CLASSES = 1000
MAX_INPUT_SIZE = 512
MAX_TEXT = 200                   # characters in a class name


class CheckpointError(UserError):
    """A file cannot be used as a model; the message is one line."""


@dataclass
class LoadedCheckpoint:
    """Everything one checkpoint file gives: the model (eval mode, CPU), its metadata (with
    `path` and `content_hash`), and its per-epoch trajectory if the run kept one."""
    model: UnitModel
    meta: dict
    trajectory: dict | None = None

    @property
    def label(self) -> str:
        return model_label(self.meta)


def save_checkpoint(path: Path | str, model: UnitModel, meta: dict, train_state: dict | None = None,
                    trajectory: dict | None = None) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over `path`.
    Refuses non-finite weights: a checkpoint on disk is always usable."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if not all_finite(state):
        raise CheckpointError(f"{path.name}: not saved, the weights hold NaN or infinite values")
    payload = {"format": FORMAT, "meta_json": json.dumps(meta, allow_nan=False), "state_dict": state}
    if train_state is not None:
        payload["train_state"] = train_state
    if trajectory is not None:
        payload["trajectory"] = trajectory
    save_atomically(payload, path)


def save_atomically(payload: dict, path: Path) -> None:
    """torch.save to a temporary beside `path`, fsync, then rename over it: a reader never sees half
    a file, and a failed write leaves the previous one as it was. PyTorch's zip writer reports a
    write the disk cut short (full, or a file-size limit) as a RuntimeError: here it is an OSError,
    as any other refused write (its other errors stay what they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                torch.save(payload, f)
            except RuntimeError as exc:
                if not any(writer in str(exc) for writer in ("inline_container", "PytorchStreamWriter")):
                    raise  # not the zip writer's: not a write the disk refused
                raise OSError(errno.ENOSPC, "the disk took only part of the file (full, or a "
                                            "file-size limit)") from exc
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


STALE_TMP_S = 24 * 3600  # a write never takes a day: an older temporary is a killed writer's


def remove_stale_temporaries(path: Path) -> None:
    """The temporaries a writer of `path` killed mid-write left (SIGKILL skips the clean-up): files
    named as ours (`.NAME.<random>.tmp`, made by mkstemp beside `path`), regular, and a day old."""
    now = time.time()
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if stale.is_file() and not stale.is_symlink() and now - stale.stat().st_mtime > STALE_TMP_S:
                stale.unlink()
        except OSError:
            pass  # another writer's, or gone: never a reason to fail a save


def check_archive(path: Path) -> None:
    """Read the zip directory first: refuse what would inflate or what we never write before any
    byte of tensor data is read; then check every entry against its CRC."""
    name = path.name
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{name}: refused, {size / 2**20:.0f} MB is larger than any checkpoint "
                              f"(limit {MAX_FILE_BYTES // 2**20} MB)")
    try:
        with zipfile.ZipFile(path) as archive:
            check_entries(name, archive.infolist())
            # bounded and stored, so now every byte against its CRC: PyTorch never checks them, and a
            # flipped weight loaded silently
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        raise CheckpointError(f"{name}: not a Unit Lens checkpoint (not a PyTorch archive, or truncated)") from None
    if damaged is not None:
        raise CheckpointError(f"{name}: damaged, {damaged.split('/')[-1]} fails its checksum; the file was "
                              "changed or corrupted after it was saved")


def check_entries(name: str, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse, from the zip directory alone, what would inflate or what we never write."""
    if not any(e.filename.endswith("data.pkl") for e in entries):
        raise CheckpointError(f"{name}: not a Unit Lens checkpoint (no data.pkl in the archive)")
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{name}: refused, its archive entries are compressed "
                                  "(PyTorch stores tensors uncompressed; this one could inflate)")
        if entry.filename.endswith("data.pkl") and entry.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{name}: refused, its structure takes {entry.file_size / 2**20:.0f} MB")
    if sum(e.file_size for e in entries) > MAX_FILE_BYTES:
        raise CheckpointError(f"{name}: refused, its entries add up to more than {MAX_FILE_BYTES // 2**20} MB")


def read_payload(path: Path | str) -> dict:
    """The raw checkpoint dict, or CheckpointError. Never unpickles arbitrary objects and never
    reads tensor data before the archive's directory has been checked (tensors are memory-mapped,
    so one that is refused is never read)."""
    path = Path(path)
    name = path.name
    try:
        if path.is_symlink() and not path.exists():
            raise CheckpointError(f"{name}: broken link")
        if path.is_dir():
            raise CheckpointError(f"{name}: is a directory, not a checkpoint file")
        if not path.is_file():
            raise CheckpointError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise CheckpointError(f"{name}: empty file")
        check_archive(path)
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; we report in one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        detail = first if "Unsupported global" in first or "GLOBAL" in first else "not a weights-only file"
        raise CheckpointError(f"{name}: refused, contains objects we will not unpickle ({detail[:160]})") from None
    except MemoryError:
        raise CheckpointError(f"{name}: refused, reading it ran out of memory") from None
    except Exception as exc:  # noqa: BLE001 - whatever a hostile file makes torch raise is one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: not a readable checkpoint (truncated or corrupt: {text[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        plain = isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values())
        raise CheckpointError(f"{name}: not a Unit Lens checkpoint" + (
            " but a state dict: make it one with python -m core.import_weights (or the sidebar's "
            "'Add a model from a weights file')" if plain else ""))
    unknown = set(payload) - TOP_KEYS
    if unknown:
        raise CheckpointError(f"{name}: refused, it carries an entry a checkpoint does not have "
                              f"({str(sorted(map(str, unknown))[0])[:40]!r})")
    return payload


def parse_meta(payload: dict, name: str = "checkpoint") -> dict:
    """The metadata, checked for types and ranges, or CheckpointError."""
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, ValueError, RecursionError):
        raise CheckpointError(f"{name}: metadata missing or not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}: metadata is not a JSON object")
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise CheckpointError(f"{name}: metadata lacks {missing[0]!r}")
    if isinstance(meta["arch"], str) and isinstance(payload.get("state_dict"), dict):
        meta["arch"] = resolve_arch(meta["arch"], payload["state_dict"])  # an old name of our CIFAR-style networks
    problem = meta_problem(meta)
    if problem:
        raise CheckpointError(f"{name}: metadata: {problem}")
    return meta


def meta_problem(meta: dict) -> str | None:
    """Why the metadata cannot describe a model we can show, or None."""
    for key in ("arch", "dataset", "method"):
        if not isinstance(meta[key], str) or not meta[key] or len(meta[key]) > MAX_TEXT:
            return f"{key} must be a short text"
    if meta["arch"] not in MODELS:
        return f"unknown arch {meta['arch'][:40]!r}"
    names = meta["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "class names must be a list of texts"
    if not 2 <= len(names) <= MAX_CLASSES:
        return f"{len(names)} classes; Unit Lens shows 2 to {MAX_CLASSES}"
    if any(not n.strip() or len(n) > MAX_TEXT for n in names) or len(set(names)) != len(names):
        return f"class names must be distinct, non-empty and at most {MAX_TEXT} characters"
    channels, size = meta["channels"], meta["input_size"]
    if not is_whole(channels) or channels not in (1, 3):
        return "channels must be 1 or 3"
    if channels not in MODELS[meta["arch"]].channels:
        return f"{meta['arch']} takes colour images (3 channels), not {channels}"
    if not is_whole(size) or not 8 <= size <= MAX_INPUT_SIZE:
        return f"input size must be a whole number from 8 to {MAX_INPUT_SIZE}"
    for key in ("mean", "std"):
        values = meta[key]
        if (not isinstance(values, list) or len(values) != channels
                or not all(is_number(v) for v in values)):
            return f"{key} must be a list of {channels} finite numbers"
    if not all(v > 0 for v in meta["std"]):
        return "std must be positive"
    for key in ("epochs", "epochs_completed"):
        if key in meta and (not is_whole(meta[key]) or not 0 <= meta[key] <= 100_000):
            return f"{key} must be a whole number"
    if "options" in meta and not isinstance(meta["options"], dict):
        return "options must be a JSON object"
    accuracy = meta.get("test_accuracy")
    if accuracy is not None and not (is_number(accuracy) and 0 <= accuracy <= 1):
        return "test accuracy must be a number from 0 to 1"
    for key in ("test_images", "limit"):
        if meta.get(key) is not None and not is_count(meta[key]):
            return f"{key.replace('_', ' ')} must be a whole number"
    if "whole_test_split" in meta and not isinstance(meta["whole_test_split"], bool):
        return "whole_test_split must be true or false"
    if "no_bn" in meta and not isinstance(meta["no_bn"], bool):
        return "no_bn must be true or false"
    dropout = meta.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1):
        return "dropout must be a number from 0 to below 1"
    for key, kind in (("data_split", dict), ("source", dict), ("init", str), ("preprocess", str),
                      ("command", str), ("label", str)):
        if key in meta and not isinstance(meta[key], kind):
            return f"{key} must be a {'JSON object' if kind is dict else 'text'}"
    return None


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def build_model(meta: dict, state_dict: dict, name: str = "checkpoint") -> UnitModel:
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{name}: the state dict must map names to tensors")
    try:
        model = create_model(meta["arch"], len(meta["class_names"]), int(meta["channels"]),
                             **arch_options(meta.get("no_bn", False), meta.get("dropout", 0.0)))
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
    if not all_finite(model.state_dict()):
        raise CheckpointError(f"{name}: refused, its weights hold NaN or infinite values")
    return model.eval()


def load(path: Path | str) -> LoadedCheckpoint:
    """One checkpoint file, read once, checked whole; CheckpointError with a one-line reason."""
    path = Path(path)
    payload = read_payload(path)
    meta = parse_meta(payload, path.name)
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path.name}: no state dict")
    model = build_model(meta, state_dict, path.name)
    train_state = payload.get("train_state")
    if train_state is not None and tensor_bytes(train_state) > 3 * tensor_bytes(state_dict) + 2**20:
        raise CheckpointError(f"{path.name}: refused, its training state is larger than the model needs")
    history = payload.get("trajectory")
    if history is not None:
        try:
            problem = trajectory.check(history, model.num_classes, model.num_features,
                                       int(meta.get("epochs", trajectory.MAX_EPOCHS)))
        except Exception as exc:  # noqa: BLE001 - whatever a crafted entry makes torch raise: this file only
            problem = f"its trajectory is malformed ({type(exc).__name__})"
        if problem:
            raise CheckpointError(f"{path.name}: refused, {problem}")
        history = {k: v.clone() for k, v in history.items()}  # off the memory map
    meta["path"] = str(path)
    meta["content_hash"] = file_hash(path)
    return LoadedCheckpoint(model, meta, history)
