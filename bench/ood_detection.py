"""How well does "unlike the training data" detect inputs unlike it? AUROC and the false-alarm rate
of three scores on the bundled models, on pictures made here, each sent through the upload path
(core.inputs.prepare, as the Compare page and core.predict do):

- max softmax probability (Hendrycks & Gimpel), energy (-logsumexp of the logits, Liu et al.),
  Mahalanobis distance of the pooled features to the nearest class mean, one shared covariance
  (Lee et al.; what the app uses, core/analysis/ood.py);
- in-distribution: Fashion-MNIST test images (held out from training), as uploads;
- unlike it: uniform and Gaussian noise, smooth random textures and colour gradients (photo-like
  backgrounds), drawn shapes (circles, boxes, lines, stars), drawn letters and digits (another
  dataset's kind of image), checkerboards, and Fashion-MNIST images turned upside down.

    .venv/bin/python bench/ood_detection.py [--per-kind 300] [--models ce minimax lsg]

The app's threshold is fit on the first half of the test split (its 99th percentile distance);
the false-alarm rate is measured on the second half, which the threshold never saw.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from bench.common import machine, record  # noqa: E402
from core.analysis.engine import Analyzer  # noqa: E402
from core.analysis.ood import distances  # noqa: E402
from core.checkpoints import load  # noqa: E402
from core.data import dataset_image  # noqa: E402
from core.inputs import prepare  # noqa: E402
from core.store import MemoryStore  # noqa: E402


def made_pictures(kind: str, count: int, rng: np.random.Generator) -> list[Image.Image]:
    """`count` pictures of one kind, 28 to 96 px, as a user might upload them."""
    pictures = []
    font = ImageFont.load_default()
    for i in range(count):
        side = int(rng.integers(28, 97))
        if kind == "uniform noise":
            pictures.append(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))
        elif kind == "gaussian noise":
            pixels = np.clip(rng.normal(128, 50, (side, side)), 0, 255).astype(np.uint8)
            pictures.append(Image.fromarray(pixels))
        elif kind == "smooth texture":
            small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            pictures.append(Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC))
        elif kind == "colour gradient":
            ramp = np.linspace(0, 1, side)[None, :, None] * rng.uniform(0, 255, 3) + rng.uniform(0, 80, 3)
            pictures.append(Image.fromarray(np.clip(np.repeat(ramp, side, 0), 0, 255).astype(np.uint8)))
        elif kind == "drawn shapes":
            image = Image.new("L", (side, side), int(rng.integers(0, 60)))
            draw = ImageDraw.Draw(image)
            for _ in range(int(rng.integers(1, 4))):
                box = sorted(rng.integers(0, side, 2)), sorted(rng.integers(0, side, 2))
                shape = ["ellipse", "rectangle", "line"][int(rng.integers(0, 3))]
                coords = [box[0][0], box[1][0], box[0][1] + 2, box[1][1] + 2]
                fill = int(rng.integers(120, 256))
                getattr(draw, shape)(coords, fill=fill, **({"width": 3} if shape == "line" else {}))
            pictures.append(image)
        elif kind == "letters and digits":
            image = Image.new("L", (28, 28), 0)
            text = "ABCDEFGHJKMNPQRSTUVWXYZ0123456789"[int(rng.integers(0, 33))]
            ImageDraw.Draw(image).text((9, 7), text, fill=255, font=font)
            pictures.append(image.resize((side, side), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(0.6)))
        elif kind == "checkerboard":
            cell = int(rng.integers(2, 8))
            board = (np.indices((side, side)) // cell).sum(0) % 2 * 255
            pictures.append(Image.fromarray(board.astype(np.uint8)))
        elif kind == "fashion-mnist upside down":
            image, _ = dataset_image("fashion-mnist", 5000 + i)
            pictures.append(image.transpose(Image.Transpose.ROTATE_180))
        else:
            raise ValueError(kind)
    return pictures


KINDS = ("uniform noise", "gaussian noise", "smooth texture", "colour gradient", "drawn shapes",
         "letters and digits", "checkerboard", "fashion-mnist upside down")


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an unlike picture > score of a held-out one), ties counting half (higher = more unlike)."""
    both = np.concatenate([inside, outside])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="mergesort")
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks for ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[len(inside):].sum() - len(outside) * (len(outside) + 1) / 2) / (len(inside) * len(outside)))


def scores(model, meta, reference, pictures) -> dict[str, np.ndarray]:
    """Each score for each picture, higher meaning more unlike the training data."""
    x = torch.cat([prepare(p, meta).x for p in pictures])
    with torch.inference_mode():
        parts = model.forward_parts(x)
    return {"max softmax": -parts.logits.softmax(1).max(1).values.numpy(),
            "energy": -torch.logsumexp(parts.logits, 1).numpy(),
            "Mahalanobis": distances(parts.features, torch.tensor(reference["means"]),
                                     torch.tensor(reference["precision"])).numpy()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=2000, help="Fashion-MNIST test images (as uploads)")
    parser.add_argument("--models", nargs="+", default=["ce", "minimax", "lsg"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    made = {kind: made_pictures(kind, args.per_kind, rng) for kind in KINDS}
    held_out = [dataset_image("fashion-mnist", i)[0] for i in range(args.held_out)]  # indices 0.. (the flips use 5000..)
    lines = [f"{machine()}. {args.held_out} Fashion-MNIST test images as uploads; {args.per_kind} pictures of each "
             "kind made here, sent through the same upload path. AUROC: unlike pictures against held-out "
             "ones (1 = always told apart, 0.5 = chance). The app's notice: Mahalanobis above the 99th "
             "percentile of the first half of the held-out images; 'false alarms' on the second half. The app's "
             "own threshold is the 99th percentile of the test split read directly (not through the upload path).", ""]
    for name in args.models:
        loaded = load(f"checkpoints/{name}.pt")
        reference = Analyzer(loaded, MemoryStore(), feature_dir=None).run("ood_reference")
        inside = scores(loaded.model, loaded.meta, reference, held_out)
        half = len(held_out) // 2
        threshold = float(np.quantile(inside["Mahalanobis"][:half], 0.99))
        outside = {kind: scores(loaded.model, loaded.meta, reference, pictures) for kind, pictures in made.items()}
        app = reference["threshold"]  # the app's: the 99th percentile of the raw test split's distances
        lines += [f"### {name}", "", "| unlike pictures | AUROC max softmax | AUROC energy | AUROC Mahalanobis | "
                  "flagged (threshold from uploads) | flagged (the app's threshold) |", "|---|---|---|---|---|---|"]
        everything = {s: np.concatenate([o[s] for o in outside.values()]) for s in inside}
        for kind, score in [*outside.items(), ("all kinds", everything)]:
            cells = [f"{auroc(inside[s], score[s]):.3f}" for s in ("max softmax", "energy", "Mahalanobis")]
            lines.append(f"| {kind} | {' | '.join(cells)} | {np.mean(score['Mahalanobis'] > threshold):.1%} | "
                         f"{np.mean(score['Mahalanobis'] > app):.1%} |")
        alarms = float(np.mean(inside["Mahalanobis"][half:] > threshold))
        app_alarms = float(np.mean(inside["Mahalanobis"] > app))
        lines += ["", f"False alarms on held-out images sent as uploads: {alarms:.1%} with the threshold fit on the "
                  f"other half, {app_alarms:.1%} with the app's (fit on the test split read directly).", ""]
    record("Unlike the training data: detection of pictures made here (issue 27)", lines)


if __name__ == "__main__":
    main()
