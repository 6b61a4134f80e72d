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


def random_resized_crop(x: torch.Tensor, generator: torch.Generator | None = None,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """torchvision's RandomResizedCrop for a whole batch at once, as ImageNet classifiers are
    trained: per image a box of a random share of the area (`scale`) and aspect (`ratio`, drawn on
    a log scale) at a random place, resized bilinearly to the image's size. A box wider or taller
    than the image is clipped to it (torchvision draws again, then falls back to the centre)."""
    n, _, h, w = x.shape
    device = x.device
    area = torch.empty(n, device=device).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n, device=device).uniform_(*torch.tensor(ratio).log().tolist(), generator=generator)
    aspect = log_ratio.exp()
    width, height = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)  # of the sides
    centre_x = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(n, generator=generator, device=device) * 2 - 1) * (1 - height)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width, centre_x, height, centre_y
    grid = torch.nn.functional.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
