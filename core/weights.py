"""Weight files from elsewhere: one small class per format, listed in WEIGHT_FORMATS, each reading
a file into a plain state dict (names to tensors) and nothing else.

- `.pth`, `.pt`, `.bin`: PyTorch's zip archive read with `torch.load(weights_only=True)` only, so
  a pickled class or function is refused, never built; a TorchScript archive is refused from its
  zip directory before anything is read.
- `.safetensors`: the format timm and Hugging Face publish: a JSON header and raw tensors.

`matched_state_dict` then fits the dict to an architecture, refusing with one line the first
missing, unexpected or mis-shaped key and a head of another class count.
"""
from __future__ import annotations

import hashlib
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from .errors import UserError

MAX_WEIGHTS_BYTES = 2 * 2**30     # above any torchvision classifier (VGG-19: 548 MB)
WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "net")  # {"state_dict": {...}, "epoch": 3}
PREFIXES = ("module.", "model.")  # DataParallel's and Lightning's names
LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # torch.save before 1.6: a pickled 10-byte magic number first


class WeightsError(UserError):
    """A weights file cannot become a model; one line naming the cause."""


class WeightFormat:
    name = ""
    suffixes: tuple[str, ...] = ()

    def read(self, path: Path) -> dict:
        raise NotImplementedError


class TorchStateDict(WeightFormat):
    name, suffixes = "PyTorch state dict", (".pth", ".pt", ".bin", ".ckpt")

    def read(self, path):
        try:
            with zipfile.ZipFile(path) as archive:
                names, zipped = archive.namelist(), True
        except OSError as exc:
            raise WeightsError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
        except (zipfile.BadZipFile, NotImplementedError, ValueError):
            with open(path, "rb") as f:
                if f.read(4) != LEGACY_MAGIC:
                    raise WeightsError(f"{path.name}: not a PyTorch weights file (neither its zip archive nor "
                                       "its format before 1.6); save it with torch.save(model.state_dict())") from None
            names, zipped = [], False  # PyTorch's legacy format, which weights_only reads too
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise WeightsError(f"{path.name}: a TorchScript archive, refused; save its state_dict() instead "
                               "(torch.save(torch.jit.load(f).state_dict(), 'weights.pth'))")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except pickle.UnpicklingError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            what = first.split("GLOBAL ")[-1].split(" ")[0] if "GLOBAL" in first else "a Python object"
            raise WeightsError(f"{path.name}: refused, it holds {what[:80]} (a pickled whole model, not a "
                               "state dict); save model.state_dict() instead") from None
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes torch raise is one line
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WeightsError(f"{path.name}: not a readable PyTorch file ({text[:160]})") from None


class SafetensorsFile(WeightFormat):
    name, suffixes = "safetensors", (".safetensors",)

    def read(self, path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WeightsError(f"{path.name}: not a readable safetensors file ({text[:160]})") from None


WEIGHT_FORMATS = {cls.name: cls() for cls in (TorchStateDict, SafetensorsFile)}


def format_of(path: Path) -> WeightFormat:
    for fmt in WEIGHT_FORMATS.values():
        if path.suffix.lower() in fmt.suffixes:
            return fmt
    known = ", ".join(s for fmt in WEIGHT_FORMATS.values() for s in fmt.suffixes)
    raise WeightsError(f"{path.name}: unknown kind of weights file; Unit Lens reads {known}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_weights(path: Path | str) -> dict[str, torch.Tensor]:
    """The file's state dict, unwrapped from a training checkpoint's dict and DataParallel's
    `module.` prefix; WeightsError (one line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{path.name}: empty file")
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{path.name}: refused, {size / 2**30:.1f} GB is larger than any model Unit Lens builds")
    state = format_of(path).read(path)
    for _ in range(2):  # {"model": {"state_dict": ...}} at most
        if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            inner = [state[k] for k in WRAPPERS if isinstance(state.get(k), dict)]
            if inner:
                state = inner[0]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"{path.name}: holds no state dict (a mapping of parameter names to tensors)")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def initial_state(path: Path | str, model: torch.nn.Module) -> tuple[dict, bool]:
    """The weights a run starts from (`core.train --init`): a weights file or a Unit Lens
    checkpoint of the same architecture, fitted to `model`; a head of another class count is left
    out, so the model's new one trains. Returns (state, whether the head was kept)."""
    from .checkpoints import CheckpointError, read_payload
    path = Path(path).expanduser()
    try:
        payload = read_payload(path)  # one of ours: its state dict, the LSG gate left to the objective
        state = {k: v for k, v in payload["state_dict"].items() if k != "gate"}
    except CheckpointError:
        state = read_weights(path)
    head = [f"{model.head_path}.weight", f"{model.head_path}.bias"]
    expected = model.state_dict()
    kept = all(k in state and state[k].shape == expected[k].shape for k in head)
    if not kept:
        state = {**{k: v for k, v in state.items() if k not in head}, **{k: expected[k] for k in head}}
    return matched_state_dict(state, model, path.name), kept


def matched_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, name: str) -> dict:
    """`state` as `model` takes it, float32; WeightsError naming the first key that does not fit."""
    expected = model.state_dict()
    state = type(model).adapt_state_dict(state)
    # batch norm's step counters: absent from older files, never read in eval mode
    state = {**{k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in state}, **state}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing, the first {missing[0]!r}" if missing else "",
            f"{len(unexpected)} unexpected, the first {unexpected[0]!r}" if unexpected else "") if part)
        raise WeightsError(f"{name}: not a state dict of {model.arch} ({detail[:200]})")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise WeightsError(f"{name}: {key} is {tuple(state[key].shape)} where {model.arch} has {tuple(tensor.shape)}")
    return {k: (v.float() if v.is_floating_point() else v).clone() for k, v in state.items()}
