"""What an outside picture goes through before a model sees it, step by step and said aloud."""
import io

import numpy as np
import torch
from PIL import Image

from core.data import dataset_image, dataset_info, load_dataset
from core.images import load_image
from core.inputs import prepare

INFO = dataset_info("fashion-mnist")


def product_photo(index: int, size: int = 96, canvas: int = 128, background: int = 245) -> Image.Image:
    """A Fashion-MNIST test image as a product photo: dark garment on a light RGB canvas."""
    image, _ = dataset_image("fashion-mnist", index)
    garment = np.asarray(Image.fromarray(255 - np.asarray(image)).resize((size, size), Image.Resampling.BICUBIC))
    photo = np.full((canvas, canvas), background, np.uint8)
    offset = (canvas - size) // 2
    photo[offset:offset + size, offset:offset + size] = np.minimum(photo[offset:offset + size, offset:offset + size], garment)
    return Image.fromarray(photo).convert("RGB")


def test_a_product_photo_becomes_a_training_like_input(data_root):
    """Inverted, levelled, trimmed to the garment, padded, resized, every step listed; and the
    bundled CE model reads 200 product photos made from test images almost as well as the test
    images themselves (0.96 on 200, against 0.17 without the inversion; 0.955 and 0.20 when the
    padding took the trimmed crop's edge colour)."""
    from core.catalog import ROOT_CHECKPOINTS
    from core.checkpoints import load
    prepared = prepare(product_photo(0), INFO)
    assert prepared.inverted and prepared.light_background
    text = " | ".join(prepared.steps)
    for word in ("greyscale", "inverted", "trimmed", "levelled", "padded", "resized", "normalised"):
        assert word in text, text
    kept = prepare(product_photo(0), INFO, invert=False)
    assert not kept.inverted and "not inverted" in " | ".join(kept.steps)

    model = load(ROOT_CHECKPOINTS / "ce.pt").model
    labels = load_dataset("fashion-mnist", "test", data_root).labels[:200]
    photos = [product_photo(i) for i in range(200)]

    def accuracy(invert):
        x = torch.cat([prepare(photo, INFO, invert).x for photo in photos])
        with torch.inference_mode():
            return float((model(x).argmax(1) == labels).float().mean())
    assert accuracy(None) >= 0.85 and accuracy(False) <= 0.5


def test_extreme_aspect_ratios_are_padded_not_cropped():
    strip = np.zeros((30, 300), np.uint8)
    strip[5:25, 20:40] = 255     # a bright block near each end: a centre crop would cut both away
    strip[5:25, 260:280] = 255
    prepared = prepare(Image.fromarray(strip), INFO)
    row = prepared.x[0, 0, 14]
    assert row[:5].max() > 0.5 and row[-5:].max() > 0.5 and row[14] < 0  # both ends survive, the middle is dark
    assert any("padded" in step and "nothing cropped" in step for step in prepared.steps)


def test_a_trimmed_object_is_padded_with_the_background_not_with_its_own_edge(data_root):
    """Trousers (test image 2) off-centre on a 60x60 black canvas: trimmed to the object (11x28),
    then padded back to a square with the canvas's black (the colour of the trimmed crop's own
    border is the garment's grey: padding with it put grey bars beside the trousers)."""
    from core.images import to_uint8
    image, label = dataset_image("fashion-mnist", 2, root=data_root)
    canvas = np.zeros((60, 60), np.uint8)
    canvas[5:33, 20:48] = np.asarray(image)
    steps = []
    pixels = to_uint8(Image.fromarray(canvas), INFO, steps=steps).pixels[0]
    text = " | ".join(steps)
    assert "trimmed the plain margin to the object (11x28 of 60x60)" in text and "padded 11x28 to 28x28" in text, text
    assert pixels[:, :8].max() == 0 and pixels[:, 19:].max() == 0  # both bars black, as the background
    assert pixels[:, 8:19].float().mean() > 100                    # the trousers between them


def test_a_solid_shape_is_not_flat_though_it_fills_its_trimmed_frame():
    """A solid dark square, and a solid bar, on white are pictures (inverted, trimmed to the shape,
    which then fills its frame): only a picture that is one colour as given is flat."""
    for box in ((20, 20, 60, 60), (10, 30, 70, 50)):  # (left, top, right, bottom)
        photo = np.full((80, 80), 250, np.uint8)
        photo[box[1]:box[3], box[0]:box[2]] = 20
        prepared = prepare(Image.fromarray(photo), INFO)
        assert not prepared.flat and prepared.inverted, box
        assert not any("flat" in step for step in prepared.steps), prepared.steps


def test_the_first_frame_of_an_animation_is_said():
    frames = [Image.new("L", (20, 20), 0), Image.new("L", (20, 20), 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    prepared = prepare(load_image(buffer.getvalue()), INFO)
    assert any("first frame of 2" in step for step in prepared.steps)
    assert prepared.x.max() < 0  # the black first frame, not the white second one


def test_natural_image_datasets_are_never_inverted():
    cifar = dataset_info("cifar10")
    prepared = prepare(Image.new("RGB", (32, 32), (250, 250, 250)), cifar)
    assert not prepared.inverted and not any("invert" in step for step in prepared.steps)


def cutout(photo: Image.Image) -> Image.Image:
    """The product photo with its light page made transparent (a cut-out, as shops publish them)."""
    grey = np.asarray(photo.convert("L"))
    alpha = np.where(grey < 200, 255, 0).astype(np.uint8)
    return Image.fromarray(np.dstack([np.asarray(photo), alpha]), "RGBA")


def test_a_cut_out_dark_object_is_put_on_white_and_read_like_the_photo(data_root):
    """Transparent pixels go behind a dark object as white (then inverted with the page, as a product
    photo is) and behind a light object as black. The bundled CE model reads 100 cut-outs at 0.93 so,
    at 0.82 when they are put on black (a dark garment, barely lighter than the black, uninverted)."""
    from core.catalog import ROOT_CHECKPOINTS
    from core.checkpoints import load
    prepared = prepare(cutout(product_photo(0)), INFO)
    assert prepared.inverted and "put transparent pixels on white" in " | ".join(prepared.steps)
    light = Image.fromarray(np.dstack([np.full((40, 40, 3), 230, np.uint8),
                                       np.pad(np.full((20, 20), 255, np.uint8), 10)]), "RGBA")
    on_black = prepare(light, INFO)
    assert not on_black.inverted and "put transparent pixels on black" in " | ".join(on_black.steps)

    model = load(ROOT_CHECKPOINTS / "ce.pt").model
    labels = load_dataset("fashion-mnist", "test", data_root).labels[:100]

    def accuracy(pictures):
        x = torch.cat([prepare(picture, INFO).x for picture in pictures])
        with torch.inference_mode():
            return float((model(x).argmax(1) == labels).float().mean())
    cutouts = [cutout(product_photo(i)) for i in range(100)]
    blacked = [Image.alpha_composite(Image.new("RGBA", c.size, (0, 0, 0, 255)), c).convert("RGB") for c in cutouts]
    assert accuracy(cutouts) >= 0.85 and accuracy(blacked) <= accuracy(cutouts) - 0.08
