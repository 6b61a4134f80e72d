"""One forward pass over a split: the features, logits and labels every analysis uses."""
from __future__ import annotations

import torch

from .base import FeatureCache


@torch.inference_mode()
def extract(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250,
            progress=None, autocast: bool = False) -> FeatureCache:
    """Run the network once (eval mode, inference mode). Batch 250 keeps allocations small
    enough to be reused (larger batches spend their time in page faults on 2 cores); `autocast`
    runs it in bf16 (the trainer's per-epoch test on a GPU)."""
    model.eval()
    device = next(model.parameters()).device
    n = len(labels)
    features = torch.empty(n, model.num_features)
    logits = torch.empty(n, model.num_classes)
    for start in range(0, n, batch_size):
        x = images[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            a = model.pool(model.forward_features(x))
            z = model.fc(a)
        features[start:start + len(x)] = a.float().cpu()
        logits[start:start + len(x)] = z.float().cpu()
        if progress:
            progress(min(n, start + batch_size), n)
    return FeatureCache(features, logits, labels.clone())
