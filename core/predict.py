"""`python -m core.predict --checkpoint PATH [--checkpoint PATH...] IMAGE... [--json]`

Each image is prepared for each model as the app does it (core.inputs: the steps are printed),
and judged against the model's own test split (core.analysis.ood) when its data is on disk.
"""
from __future__ import annotations

import json
import sys

import torch

from .analysis.engine import Analyzer
from .analysis.ood import judge, unlike_text
from .catalog import model_label
from .checkpoints import load
from .cli import OneLineParser, run_main, say_note
from .errors import UserError
from .images import FLAT_NOTE, load_image
from .inputs import prepare
from .store import Store


def predict(models: list, image, top: int = 5, invert: bool | None = None, references: list | None = None) -> list[dict]:
    """Top classes with probabilities for one PIL image under each (model, meta); with a
    reference per model (the `ood_reference` result), the verdict on how unlike the training
    data the image is."""
    out = []
    for i, (model, meta) in enumerate(models):
        prepared = prepare(image, meta, invert)
        with torch.inference_mode():
            _, features, logits = (part[0] for part in model.forward_parts(prepared.x))
        probs = torch.softmax(logits, 0)
        values, index = probs.topk(min(top, len(probs)))
        reference = references[i] if references else None
        out.append({"model": meta.get("label") or model_label(meta), "steps": prepared.steps, "flat": prepared.flat,
                    "inverted": prepared.inverted,
                    "ood": judge(features, logits, reference) if reference else None,
                    "top": [{"class": meta["class_names"][j], "index": int(j), "probability": float(p)}
                            for p, j in zip(values.tolist(), index.tolist())]})
    return out


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m core.predict", description="Top classes per image and model.")
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--no-invert", action="store_true",
                        help="never invert a light-background picture for a light-on-black dataset")
    parser.add_argument("--no-ood", action="store_true", help="skip the comparison with the test split")
    parser.add_argument("--cache", default=None, help="DuckDB file (default cache/unitlens.duckdb)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    images, failed = [], 0
    for name in args.images:  # first, so a bad file costs nothing (the reference pass takes a while)
        try:
            images.append((name, load_image(name)))
        except UserError as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failed += 1
    if not images:
        return 1
    models, references = [], []
    store = None if args.no_ood else Store(args.cache, on_wait=say_note)
    for path in args.checkpoint:
        try:
            loaded = load(path)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        models.append((loaded.model, loaded.meta))
        reference = None
        if store is not None:
            try:
                reference = Analyzer(loaded, store).run("ood_reference")
            except UserError as exc:
                print(f"note: {loaded.label}: no comparison with its test split ({exc})", file=sys.stderr)
        references.append(reference)
    if not models:
        return 1
    results = []
    invert = False if args.no_invert else None
    for name, image in images:
        rows = predict(models, image, args.top, invert, references)
        results.append({"image": name, "models": rows})
        if not args.json:
            for row in rows:
                best = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in row["top"])
                print(f"{name}\t{row['model']}\t{best}")
                if row["flat"]:  # before the steps: it was one step among them, read last
                    print(f"  note: the picture is {FLAT_NOTE}")
                elif row["ood"] and row["ood"]["unlike_training"]:
                    print(f"  unlike the training data: {unlike_text(row['ood'])}")
                print(f"  steps: {'; '.join(row['steps'])}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
