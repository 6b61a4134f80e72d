"""Batch augmentation on the training device: the whole batch at once, random numbers from the
run's own generator (on the GPU when training there), so a step never waits for the host."""
from __future__ import annotations

import torch


def augment_batch(x: torch.Tensor, padding: int, flip: bool = True,
                  generator: torch.Generator | None = None, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Random crop with zero-image padding and horizontal flip on a whole batch at once.

    `fill` is the per-channel value of a black pixel after normalisation (so padding looks
    like the dataset's own background); defaults to 0.
    """
    n, c, h, w = x.shape
    device = x.device
    if padding > 0:
        padded = x.new_empty((n, c, h + 2 * padding, w + 2 * padding))
        padded[:] = fill.view(1, c, 1, 1) if fill is not None else 0
        padded[:, :, padding:padding + h, padding:padding + w] = x
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=device)
        rows = offsets[0, :, None] + torch.arange(h, device=device)
        cols = offsets[1, :, None] + torch.arange(w, device=device)
        batch_idx = torch.arange(n, device=device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator, device=device) < 0.5).view(n, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x.contiguous()
