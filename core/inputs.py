"""An image from outside (an upload, a file on the command line) made into a model's normalised
input, with every step it took (core.images does the picture's part)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from .data import DatasetInfo, info_from_meta, normalise
from .images import to_uint8


@dataclass
class Prepared:
    """The model's input (1, C, H, W), normalised, and what was done to get it."""
    x: torch.Tensor
    steps: list[str] = field(default_factory=list)
    inverted: bool = False
    light_background: bool = False   # whether the picture's border was light (the toggle's subject)
    flat: bool = False               # one colour throughout (core.images.is_flat): nothing to classify


def prepare(image: Image.Image, meta, invert: bool | None = None) -> Prepared:
    """Any PIL image -> the model's input with the list of steps taken. `meta` is a
    DatasetInfo or checkpoint metadata."""
    info = meta if isinstance(meta, DatasetInfo) else info_from_meta(meta)
    steps = [f"read {image.format or 'an image'} of {image.size[0]}x{image.size[1]} pixels, mode {image.mode}"]
    picture = to_uint8(image, info, invert, steps)
    steps.append(f"normalised with the training mean {info.mean} and std {info.std}")
    return Prepared(normalise(picture.pixels.unsqueeze(0), info.mean, info.std), steps, picture.inverted,
                    picture.light_background, picture.flat)
