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
    flat: bool = False               # one colour throughout (within FLAT_RANGE): nothing to classify


FLAT_RANGE = 8  # of 255: a picture whose pixels all lie this close together shows nothing


def prepare(image: Image.Image, meta, invert: bool | None = None) -> Prepared:
    """Any PIL image -> the model's input with the list of steps taken. `meta` is a
    DatasetInfo or checkpoint metadata."""
    info = meta if isinstance(meta, DatasetInfo) else info_from_meta(meta)
    steps = [f"read {image.format or 'an image'} of {image.size[0]}x{image.size[1]} pixels, mode {image.mode}"]
    uint8, inverted, light = to_uint8(image, info, invert, steps)
    spread = uint8.amax(dim=(1, 2)).int() - uint8.amin(dim=(1, 2)).int()  # per channel: solid red is flat too
    flat = int(spread.max()) <= FLAT_RANGE
    if flat:
        steps.append("the picture is one flat colour: there is nothing in it to classify")
    steps.append(f"normalised with the training mean {info.mean} and std {info.std}")
    return Prepared(normalise(uint8.unsqueeze(0), info.mean, info.std), steps, inverted, light, flat)
