"""Pictures from outside, read safely and made into a model's uint8 input, every step said: the
frame used, orientation, colour, background, padding, size.

For a dataset of light objects on a black background (Fashion-MNIST), a picture with a light
background (a product photo) is inverted, since the model has only ever seen the other way round;
`invert=False` turns that off. Nothing is cropped away: a picture that is not square is padded
with its own background colour, then resized. No dataset code here (core.data reads image folders
with it; core.inputs adds the normalisation a checkpoint asks for).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

MAX_IMAGE_PIXELS = 40_000_000  # refuse larger uploads before decoding them
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # the app's upload limit too (maxUploadSize in .streamlit/config.toml)
LIGHT_BACKGROUND = 128         # border brightness (0-255) above which a background is light
FLAT_RANGE = 8                 # of 255: a picture whose pixels all lie this close together shows nothing


class Target(Protocol):
    """What a picture is made for (a core.data.DatasetInfo is one): the model's channels and
    size, and whether its dataset is light on black (extra["dark_background"])."""
    name: str
    channels: int
    input_size: int
    extra: dict


class ImageError(UserError, ValueError):
    """An uploaded file is not an image we can read; the message is one line for the user."""


def load_image(source) -> Image.Image:
    """Open bytes, a path or a file object as a fully decoded PIL image, or raise ImageError."""
    try:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if path.is_dir():
                raise ImageError("a folder, not an image")
            if not path.is_file():
                raise ImageError("no such file")
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise ImageError(f"the file is larger than {MAX_IMAGE_BYTES // 2**20} MB")
            data = path.read_bytes()
        elif isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            data = source.read()
        if not data:
            raise ImageError("the file is empty")
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageError(f"the file is larger than {MAX_IMAGE_BYTES // 2**20} MB")
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageError(f"the image is too large ({width} x {height} pixels; "
                             f"limit {MAX_IMAGE_PIXELS // 1_000_000} megapixels)")
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            image.seek(0)  # animated: the first frame
        image.load()
        image.info["unitlens_frames"] = frames
        return image
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image, or not in a format we read (PNG, JPEG, WebP, BMP, GIF)") from None
    except Image.DecompressionBombError:
        raise ImageError("the image is too large (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"the image is damaged or truncated ({reason})") from None


def looks_readable(path: Path) -> bool:
    """Whether a file's header is an image `load_image` would go on to decode (size and pixel
    limits included), without decoding it: a few kilobytes read, however large the file."""
    try:
        size = path.stat().st_size
        if not 0 < size <= MAX_IMAGE_BYTES:
            return False
        with Image.open(path) as image:
            width, height = image.size
        return width * height <= MAX_IMAGE_PIXELS
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError, EOFError):
        return False


def to_8bit(image: Image.Image, channels: int, steps: list[str]) -> Image.Image:
    """Any Pillow mode to L or RGB: EXIF orientation applied, alpha composited onto a background
    that contrasts with the object, 16-bit and float rescaled (not clipped)."""
    frames = image.info.get("unitlens_frames", getattr(image, "n_frames", 1))
    if frames > 1:
        steps.append(f"used the first frame of {frames} (animated image)")
    orientation = image.getexif().get(0x0112, 1) if hasattr(image, "getexif") else 1
    image = ImageOps.exif_transpose(image)
    if orientation not in (1, None):
        steps.append("rotated as its EXIF orientation says")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
        steps.append(f"rescaled {'16-bit' if top > 255 else 'integer'} values to 0-255")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        if np.asarray(rgba)[..., 3].min() < 255:
            fill = cutout_background(rgba)
            steps.append(f"put transparent pixels on {'white' if fill else 'black'}" +
                         (", against the object's dark pixels" if fill else ""))
            rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, (fill, fill, fill, 255)), rgba)
        image = rgba.convert("RGB")
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        was_colour = image.mode in ("RGB", "CMYK", "YCbCr", "HSV", "LAB")
        image = image.convert(target)
        if target == "L" and was_colour:
            steps.append("converted colour to greyscale")
        elif target == "RGB":
            steps.append("copied greyscale into 3 channels" if not was_colour else "converted to RGB")
    return image


def cutout_background(rgba: Image.Image) -> int:
    """The grey a transparent background becomes: white behind a dark object (a cut-out product
    photo, which is then inverted like one on a white page), black behind a light one or none."""
    array = np.asarray(rgba)
    opaque = array[..., 3] >= 128
    if not opaque.any():
        return 0
    luminance = np.asarray(rgba.convert("RGB").convert("L"))[opaque]
    return 255 if float(luminance.mean()) < 128 else 0


def border_pixels(image: Image.Image) -> np.ndarray:
    """The pixels of the outer 5% frame, (n,) or (n, channels): the picture's background."""
    array = np.asarray(image)
    h, w = array.shape[:2]
    band_h, band_w = max(1, h // 20), max(1, w // 20)
    rest = array.shape[2:]
    return np.concatenate([array[:band_h].reshape(-1, *rest), array[-band_h:].reshape(-1, *rest),
                           array[:, :band_w].reshape(-1, *rest), array[:, -band_w:].reshape(-1, *rest)])


def border_brightness(image: Image.Image) -> float:
    """Median brightness (0-255) of the background frame."""
    return float(np.median(border_pixels(image.convert("L"))))


def trim_background(image: Image.Image, steps: list[str], tolerance: int = 24) -> Image.Image:
    """Crop the plain margin around the object (pixels within `tolerance` of the border colour),
    as Fashion-MNIST's own pictures were made: the object then fills the frame as in training.
    A picture whose object already spans it (a training image) is left as it is."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    background = border_brightness(image)
    rows, cols = np.nonzero(np.abs(grey - background) > tolerance)
    if len(rows) == 0:
        return image
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    width, height = image.size
    if max((box[2] - box[0]) / width, (box[3] - box[1]) / height) > 0.95:
        return image  # the object already spans the frame (a training image does)
    steps.append(f"trimmed the plain margin to the object ({box[2] - box[0]}x{box[3] - box[1]} of "
                 f"{image.size[0]}x{image.size[1]}), as the training images were made")
    return image.crop(box)


def level_background(image: Image.Image, steps: list[str]) -> Image.Image:
    """Stretch the levels so the (dark) background becomes black, as in the training images."""
    background = border_brightness(image)
    if background < 4 or background > 64:  # only a clearly dark background
        return image
    array = np.asarray(image, dtype=np.float32)
    array = np.clip((array - background) * 255.0 / (255.0 - background), 0, 255).astype(np.uint8)
    steps.append(f"levelled the background ({background:.0f}/255) to black")
    return Image.fromarray(array, image.mode)


def pad_to_square(image: Image.Image, fill) -> Image.Image:
    width, height = image.size
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def border_colour(image: Image.Image):
    """The background's median colour, in the image's own mode (for padding)."""
    median = np.median(border_pixels(image), axis=0)
    return int(median) if np.ndim(median) == 0 else tuple(int(v) for v in median)


FLAT_NOTE = ("one flat colour: there is nothing in it to classify, so the predictions are arbitrary, however "
             "confident they look")  # the app's warning and core.predict's note, above the steps


class Picture(NamedTuple):
    """A picture made into a model's input, and what was found on the way."""
    pixels: torch.Tensor  # (C, H, W) uint8
    inverted: bool
    light_background: bool  # whether the picture's border was light (the invert toggle's subject)
    flat: bool              # one colour throughout (within FLAT_RANGE), as given: nothing to classify


def is_flat(image: Image.Image) -> bool:
    """Every channel within FLAT_RANGE (solid red is flat too), judged on the picture as given:
    once trimmed to a solid object, any picture would be."""
    extrema = image.getextrema()  # (low, high), or one pair per channel; no copy of the picture
    pairs = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return max(high - low for low, high in pairs) <= FLAT_RANGE


CROP_RATIO = 0.875  # ImageNet's evaluation: 224 px cropped from the picture resized to 256


def resize_and_centre_crop(image: Image.Image, size: int, steps: list[str]) -> torch.Tensor:
    """The shorter side resized to size / CROP_RATIO, then the centre size x size: how torchvision's
    ImageNet classifiers were evaluated. uint8 (C, size, size)."""
    width, height = image.size
    short = round(size / CROP_RATIO)
    scale = short / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    steps.append(f"resized {width}x{height} to {resized[0]}x{resized[1]}, then the centre {size}x{size} "
                 "(ImageNet's evaluation)")
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())


def to_uint8(image: Image.Image, info: Target, invert: bool | None = None,
             steps: list[str] | None = None) -> Picture:
    """`image` made for `info`'s model. `invert`: None decides from the background, True/False forces it."""
    steps = [] if steps is None else steps
    image = to_8bit(image, info.channels, steps)
    flat = is_flat(image)
    if info.extra.get("crop"):  # a model made for ImageNet's evaluation: as it was measured
        return Picture(resize_and_centre_crop(image, info.input_size, steps), False, False, flat)
    background = border_brightness(image)
    light = background > LIGHT_BACKGROUND
    dark_dataset = bool(info.extra.get("dark_background"))
    do_invert = (light and dark_dataset) if invert is None else bool(invert)
    if do_invert:
        image = ImageOps.invert(image)
        why = (f"light background ({background:.0f}/255) while {info.name} images are light on black"
               if invert is None else "asked for")
        steps.append(f"inverted: {why}")
    elif light and dark_dataset:
        steps.append(f"not inverted although the background is light ({background:.0f}/255); "
                     f"{info.name} images are light on black")
    if dark_dataset:
        image = level_background(image, steps)
    fill = border_colour(image)  # the background's, read before trimming leaves only the object's edge
    if dark_dataset:
        image = trim_background(image, steps)
    width, height = image.size
    if width != height:
        image = pad_to_square(image, fill)
        steps.append(f"padded {width}x{height} to {max(width, height)}x{max(width, height)} "
                     "with its background colour (nothing cropped)")
    size = info.input_size
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        steps.append(f"resized {max(width, height)}x{max(width, height)} to {size}x{size}")
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return Picture(torch.from_numpy(array.copy()), do_invert, light, flat)
