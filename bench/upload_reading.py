"""How well the bundled CE model reads outside pictures after core.inputs.prepare, on pictures
made from Fashion-MNIST test images (so the true class is known):

    python bench/upload_reading.py

- the test images themselves (the baseline),
- each put off-centre on a 60x60 black canvas (trimmed, then padded back),
- product photos (dark garment on a light canvas: inverted, levelled, trimmed, padded), and the
  same not inverted,
- cut-outs (the photo's background made transparent), and the cut-outs put on black.

Prints one accuracy per set (CPU, deterministic).
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.catalog import ROOT_CHECKPOINTS  # noqa: E402
from core.checkpoints import load  # noqa: E402
from core.data import dataset_image, dataset_info, load_dataset  # noqa: E402
from core.inputs import prepare  # noqa: E402
from tests.test_inputs import cutout, product_photo  # noqa: E402  (the tests' own picture makers)

INFO = dataset_info("fashion-mnist")


def on_black_canvas(index: int) -> Image.Image:
    image, _ = dataset_image("fashion-mnist", index)
    canvas = np.zeros((60, 60), np.uint8)
    canvas[5:33, 20:48] = np.asarray(image)
    return Image.fromarray(canvas)


def accuracy(model, labels, pictures, invert=None) -> float:
    x = torch.cat([prepare(picture, INFO, invert).x for picture in pictures])
    with torch.inference_mode():
        return float((model(x).argmax(1) == labels[:len(pictures)]).float().mean())


def main():
    model = load(ROOT_CHECKPOINTS / "ce.pt").model
    labels = load_dataset("fashion-mnist", "test").labels
    photos = [product_photo(i) for i in range(200)]
    cutouts = [cutout(product_photo(i)) for i in range(100)]
    on_black = [Image.alpha_composite(Image.new("RGBA", c.size, (0, 0, 0, 255)), c).convert("RGB") for c in cutouts]
    sets = [("test images (300)", [dataset_image("fashion-mnist", i)[0] for i in range(300)], None),
            ("off-centre on a 60x60 black canvas (300)", [on_black_canvas(i) for i in range(300)], None),
            ("product photos (200)", photos, None),
            ("product photos, not inverted (200)", photos, False),
            ("cut-outs (100)", cutouts, None),
            ("cut-outs put on black (100)", on_black, None)]
    for name, pictures, invert in sets:
        print(f"{name:<44} {accuracy(model, labels, pictures, invert):.3f}")


if __name__ == "__main__":
    main()
