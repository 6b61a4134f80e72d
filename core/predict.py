"""`python -m core.predict --checkpoint PATH [--checkpoint PATH...] IMAGE... [--json]`"""
from __future__ import annotations

import json
import sys

import torch

from .cli import OneLineParser, run_main
from .checkpoints import CheckpointError, load_checkpoint, model_label
from .data import ImageError, load_image, preprocess


def predict(models: list[tuple], image, top: int = 5) -> list[dict]:
    """Top classes with probabilities for one PIL image under each (model, meta)."""
    out = []
    for model, meta in models:
        x = preprocess(image, meta)
        with torch.inference_mode():
            probs = torch.softmax(model(x)[0], 0)
        values, index = probs.topk(min(top, len(probs)))
        out.append({"model": model_label(meta), "top": [
            {"class": meta["class_names"][i], "index": int(i), "probability": float(p)}
            for p, i in zip(values.tolist(), index.tolist())]})
    return out


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m core.predict", description="Top classes per image and model.")
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    models, failed = [], 0
    for path in args.checkpoint:
        try:
            models.append(load_checkpoint(path))
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    if not models:
        return 1
    results = []
    for name in args.images:
        try:
            image = load_image(name)
        except ImageError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        rows = predict(models, image, args.top)
        results.append({"image": name, "models": rows})
        if not args.json:
            for row in rows:
                best = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
                print(f"{name}\t{row['model']}\t{best}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
