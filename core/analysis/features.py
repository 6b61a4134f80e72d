"""One forward pass over a split: the features, logits and labels every analysis uses, on the
analysis device (the GPU when there is one)."""
from __future__ import annotations

import contextlib
import copy
import os
import threading

import torch

from ..errors import UserError
from .base import FeatureCache

_FLOAT32 = threading.Lock()  # cuDNN's TF32 switch is process-wide: one exact pass at a time


def analysis_device() -> torch.device:
    """Where the engine's forward passes run: the GPU when there is one; UNITLENS_DEVICE=cpu
    (or cuda) decides otherwise."""
    name = os.environ.get("UNITLENS_DEVICE", "auto").strip().lower() or "auto"
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"UNITLENS_DEVICE is {name!r}; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("UNITLENS_DEVICE is cuda, but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def describe_analysis_device() -> str:
    try:
        device = analysis_device()
    except UserError as exc:
        return f"nowhere ({exc})"
    return f"GPU ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "CPU"


def on_device(model, device: torch.device | str | None):
    """The model itself when it is already on `device`, else a copy there without any hook the
    original holds at the moment (the app's model stays on the CPU for its per-image work)."""
    if device is None:
        return model
    device, where = torch.device(device), next(model.parameters()).device
    if where.type == device.type and (device.index is None or where.index == device.index):
        return model
    moved = copy.deepcopy(model)
    for module in moved.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        module._backward_hooks.clear()
    return moved.to(device)


@contextlib.contextmanager
def exact_float32(device: torch.device):
    """cuDNN convolutions in true float32 (PyTorch lets them use TF32 by default on recent GPUs,
    which moves features in the third digit); nothing to do on the CPU."""
    if device.type != "cuda":
        yield
        return
    with _FLOAT32:
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


@torch.inference_mode()
def extract(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int | None = None,
            progress=None, autocast: bool = False) -> FeatureCache:
    """Run the network once (eval mode, inference mode) where the model is. Batches of 250 on
    the CPU keep allocations small enough to be reused (larger ones spend their time in page
    faults on 2 cores), 2500 on a GPU; `autocast` runs it in bf16 (the trainer's per-epoch test
    on a GPU), else it is exact float32."""
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or (2500 if device.type == "cuda" else 250)
    n = len(labels)
    features = torch.empty(n, model.num_features)
    logits = torch.empty(n, model.num_classes)
    with exact_float32(device):
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                _, a, z = model.forward_parts(x)
            features[start:start + len(x)] = a.float().cpu()
            logits[start:start + len(x)] = z.float().cpu()
            if progress:
                progress(min(n, start + batch_size), n)
    return FeatureCache(features, logits, labels.cpu().clone())
