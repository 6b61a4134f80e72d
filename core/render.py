"""Pictures for the dashboard: feature-map grids, heat-map overlays, gate strips (PIL images)."""
from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

MAP_COLOURS = colormaps["viridis"]
HEAT_COLOURS = colormaps["jet"]


def colourise(values: np.ndarray, vmin: float, vmax: float, cmap=MAP_COLOURS) -> np.ndarray:
    scaled = (np.asarray(values, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12)
    return (cmap(np.clip(scaled, 0, 1))[..., :3] * 255).astype(np.uint8)


def feature_grid(maps: np.ndarray, vmin: float, vmax: float, marked=(), columns: int = 16, cell: int = 40,
                 gap: int = 2, numbered: bool = True, units=None) -> Image.Image:
    """The maps in one picture with one colour scale, each with its unit number in the corner
    (`units`: the numbers of the maps given, when they are not all K in order); marked units get a
    red frame."""
    k = len(maps)
    units = range(k) if units is None else units
    rows = -(-k // columns)
    grid = Image.new("RGB", (columns * (cell + gap) + gap, rows * (cell + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    marked = set(marked)
    for place, (unit, m) in enumerate(zip(units, maps)):
        tile = Image.fromarray(colourise(m, vmin, vmax)).resize((cell, cell), Image.Resampling.NEAREST)
        x, y = gap + (place % columns) * (cell + gap), gap + (place // columns) * (cell + gap)
        grid.paste(tile, (x, y))
        if unit in marked:
            draw.rectangle([x - 1, y - 1, x + cell, y + cell], outline=(230, 30, 30), width=2)
        if numbered:
            draw.text((x + 2, y + 1), str(unit), fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return grid


def most_active(maps: np.ndarray, count: int) -> list[int]:
    """The `count` units whose maps are largest on average, in unit order (a grid of all 2048 of a
    ResNet-50 would be 256 rows)."""
    means = np.asarray(maps, dtype=np.float32).reshape(len(maps), -1).mean(axis=1)
    return sorted(np.argsort(-means, kind="stable")[:count].tolist())


def grey_or_rgb(image: np.ndarray) -> np.ndarray:
    """[0, 1] float (H, W) or (H, W, 3) -> uint8 RGB."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def input_picture(image, size: int = 168) -> Image.Image:
    """A model input as a picture, pixels kept sharp. `image`: a PIL image, floats in [0, 1] as
    (H, W) or (H, W, 3), or bytes 0-255 as (C, H, W) (how IAM keeps its images)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image, dtype=np.float32) / 255.0
    elif np.issubdtype(np.asarray(image).dtype, np.integer):
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        image = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    return Image.fromarray(grey_or_rgb(image)).resize((size, size), Image.Resampling.NEAREST)


def heat_overlay(image: np.ndarray, heat01: np.ndarray, size: int = 168, alpha: float = 0.5) -> Image.Image:
    base = grey_or_rgb(image).astype(np.float32)
    heat = (HEAT_COLOURS(np.clip(heat01, 0, 1))[..., :3] * 255).astype(np.float32)
    mixed = ((1 - alpha) * base + alpha * heat).astype(np.uint8)
    return Image.fromarray(mixed).resize((size, size), Image.Resampling.BILINEAR)


def overlays_on(image: Image.Image, maps, size: int = 168) -> list[Image.Image]:
    """Maps (G, h, w) upsampled over one picture, all on one scale (core.cam.scaled_together)."""
    import torch
    from .cam import scaled_together
    array = np.asarray(image, dtype=np.float32) / 255.0
    heats = scaled_together(torch.as_tensor(maps, dtype=torch.float64), array.shape[:2])
    return [heat_overlay(array, heat, size) for heat in heats]


def colour_bar(width: int = 240, height: int = 12, cmap=HEAT_COLOURS) -> Image.Image:
    """The heat-map colours from the low end (left) to the high end (right)."""
    ramp = np.linspace(0, 1, width)[None, :].repeat(height, axis=0)
    return Image.fromarray((cmap(ramp)[..., :3] * 255).astype(np.uint8))


def gate_strip(row: np.ndarray, cell: int = 10, height: int = 18) -> Image.Image:
    """One gate row (K values in [0, 1]) as a strip of cells."""
    colours = colourise(np.asarray(row)[None, :], 0.0, 1.0, colormaps["Greys"])
    return Image.fromarray(colours).resize((len(row) * cell, height), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def altair_png(chart, scale: float = 2.0) -> bytes:
    """An Altair chart as PNG bytes (vl-convert renders Vega-Lite without a browser)."""
    import vl_convert
    return vl_convert.vegalite_to_png(chart.to_json(), scale=scale)
