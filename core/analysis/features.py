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


def batch_size_for(model, pixels: int) -> int:
    """Images a forward pass takes at once: 250 on the CPU keeps allocations small enough to be
    reused (larger ones spend their time in page faults on 2 cores), 2500 on a GPU; as many
    fewer as an image has more pixels than 64 x 64 (a 224 px ResNet-50 batch of 250 wants 4 GB)."""
    device = next(model.parameters()).device
    base = 2500 if device.type == "cuda" else 250
    return max(8, int(base * min(1.0, 64 * 64 / max(1, pixels))))


@torch.inference_mode()
def forward_batches(model, batches, count: int, progress=None, autocast: bool = False):
    """Features (count, K), logits (count, C) and readable (count,) of every image that
    `batches` yields as (images, readable) pairs, in order, run where the model is (eval mode,
    inference mode); `autocast` runs it in bf16 (the trainer's per-epoch test on a GPU), else it
    is exact float32. An unreadable image's rows are left zero."""
    model.eval()
    device = next(model.parameters()).device
    features = torch.zeros(count, model.num_features)
    logits = torch.zeros(count, model.num_classes)
    readable = torch.zeros(count, dtype=torch.bool)
    done = 0
    with exact_float32(device):
        for images, ok in batches:
            readable[done:done + len(images)] = ok
            if readable[done:done + len(images)].any():  # a batch of unreadable files costs no pass
                x = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    _, a, z = model.forward_parts(x)
                features[done:done + len(x)] = a.float().cpu()
                logits[done:done + len(x)] = z.float().cpu()
            done += len(images)
            if progress:
                progress(done, count)
    return features, logits, readable


def extract(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int | None = None,
            progress=None, autocast: bool = False) -> FeatureCache:
    """One pass over images held in memory."""
    batch_size = batch_size or batch_size_for(model, images.shape[-1] * images.shape[-2])
    batches = ((images[s:s + batch_size], True) for s in range(0, len(labels), batch_size))
    features, logits, _ = forward_batches(model, batches, len(labels), progress, autocast)
    return FeatureCache(features, logits, labels.cpu().clone())


def extract_rows(model, dataset, positions=None, progress=None):
    """(features, logits, readable) of a dataset's images at `positions` (all by default), held
    or streamed (`core.data.load_dataset`): a shard of a split when several processes share it."""
    side = dataset.info.input_size
    batch_size = batch_size_for(model, side * side)
    on_gpu = next(model.parameters()).device.type == "cuda"
    count = len(dataset) if positions is None else len(positions)
    return forward_batches(model, dataset.batches(batch_size, positions, pin_memory=on_gpu), count, progress)


def kept(dataset, features, logits, readable) -> FeatureCache:
    """The FeatureCache of the readable images (all of them, for a dataset held in memory); where
    some were not, `index` says which of the dataset's images each row is."""
    if bool(readable.all()):
        return FeatureCache(features, logits, dataset.labels.clone())
    if not bool(readable.any()):
        raise UserError("none of the split's images could be read")
    index = torch.nonzero(readable).flatten()
    return FeatureCache(features[index], logits[index], dataset.labels[index].clone(), index)
