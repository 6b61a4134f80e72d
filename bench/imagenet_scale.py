"""ImageNet's shape on any machine: a seeded folder of 1000 classes of JPEGs of about 500x375 (as
many a class as asked), a random-weight torchvision ResNet-50 imported as a Unit Lens checkpoint,
then the whole default report timed analysis by analysis with the peak memory of the process,
beside a naive loop (torchvision's ImageFolder and DataLoader, one process) over the same images.

    .venv/bin/python bench/imagenet_scale.py [--per-class 2] [--arch resnet50] [--size 224] [--keep DIR]

Results go to bench/RESULTS.md with the machine named. The folder has no train/ and test/, so it
is split once (20% of each class held out, at least one image: with 2 a class, 1000 test images).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import machine, record  # noqa: E402


def make_folder(root: Path, classes: int, per_class: int, size=(500, 375), seed: int = 0) -> Path:
    """Seeded JPEGs: each class a colour cast and a frequency of its own, each image a random
    smooth field, so a model could tell the classes apart and the decoder does real work."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        cast = rng.uniform(40, 215, 3)
        for i in range(per_class):
            small = rng.normal(0, 40, (12, 16, 3)) + cast
            image = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
            image.save(folder / f"{c}_{i}.JPEG", quality=85)
    return root


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def naive_images_per_s(folder: Path, arch: str, size: int, limit: int) -> float:
    """torchvision's ImageFolder and DataLoader in one process, eval transforms, no blocking."""
    import torchvision
    from torchvision import transforms
    dataset = torchvision.datasets.ImageFolder(str(folder), transforms.Compose([
        transforms.Resize(round(size / 0.875)), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
    model = getattr(torchvision.models, arch)(num_classes=len(dataset.classes)).eval()
    subset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    started, seen = time.perf_counter(), 0
    with torch.inference_mode():
        for x, _ in torch.utils.data.DataLoader(subset, batch_size=64):
            model(x)
            seen += len(x)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--naive-images", type=int, default=500, help="images the naive loop times")
    parser.add_argument("--keep", default=None, help="make the folder and checkpoint here and keep them")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="imagenet-scale-"))
    folder = work / "images"
    started = time.perf_counter()
    if not folder.is_dir():
        make_folder(folder, args.classes, args.per_class)
    made = time.perf_counter() - started

    import torchvision
    from core.analysis.engine import REPORT, Analyzer
    from core.checkpoints import load
    from core.data import StreamedImages
    from core.import_weights import import_weights
    from core.store import MemoryStore
    weights, checkpoint = work / f"{args.arch}.pth", work / f"{args.arch}.pt"
    if not checkpoint.exists():
        torch.manual_seed(0)
        torch.save(getattr(torchvision.models, args.arch)(num_classes=args.classes).state_dict(), weights)
        import_weights(weights, args.arch, checkpoint, dataset=f"imagefolder:{folder}", input_size=args.size)
    timings = {}

    def progress(step, done, total):
        timings.setdefault("_steps", {})[step.split(":")[0]] = time.perf_counter()

    whole = time.perf_counter()
    peaks = {"before the report": peak_rss_gb()}  # the process's peak after each step: which one raised it
    engine = Analyzer(load(checkpoint), MemoryStore(), feature_dir=None, progress=progress)
    for name in ("forward test", "forward train"):
        t = time.perf_counter()
        engine.features("test" if name.endswith("test") else "train", None)
        timings[name], peaks[name] = time.perf_counter() - t, peak_rss_gb()
    for name in REPORT:
        t = time.perf_counter()
        try:
            engine.run(name)
            timings[name] = time.perf_counter() - t
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what failed and goes on
            timings[name] = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
        peaks[name] = peak_rss_gb()
    total = time.perf_counter() - whole
    report_peak_gb = peak_rss_gb()  # before the naive loop, which would raise it
    children_peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    streamed = isinstance(engine.dataset("test"), StreamedImages)
    images = len(engine.features("test", None).labels) + len(engine.features("train", None).labels)
    naive = naive_images_per_s(folder, args.arch, args.size, args.naive_images)
    forward = timings["forward test"] + timings["forward train"]
    lines = [f"{machine()}. {args.classes} classes x {args.per_class} JPEGs of 500x375 (made in {made:.0f} s), "
             f"random {args.arch} imported, {args.size} px (resize to {round(args.size / 0.875)}, centre crop); "
             f"{images} images in all (held out: {len(engine.features('test', None).labels)}).", "",
             f"- decode + forward, ours: {images / forward:.1f} images/s; the naive loop (ImageFolder, DataLoader, "
             f"one process): {naive:.1f} images/s",
             f"- whole default report: {total:.0f} s; peak resident memory {report_peak_gb:.2f} GB, and "
             f"{children_peak_gb:.2f} GB at most in a child process (each split "
             f"{'streamed by decoding workers' if streamed else 'held whole'}; UNITLENS_PRELOAD_MB="
             f"{os.environ.get('UNITLENS_PRELOAD_MB', 'unset')}, UNITLENS_PHI_SECONDS="
             f"{os.environ.get('UNITLENS_PHI_SECONDS', 'unset')}; the naive loop runs after and is not in these)"
             + (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GB" if torch.cuda.is_available() else ""),
             "",
             f"Peak resident memory before the report (the folder and checkpoint made in this process): "
             f"{peaks['before the report']:.2f} GB.", "",
             "| step | seconds | peak GB after it |", "|---|---|---|",
             *(f"| {name} | {value:.1f} | {peaks[name]:.2f} |" if isinstance(value, float)
               else f"| {name} | {value} | {peaks[name]:.2f} |"
               for name, value in timings.items() if not name.startswith("_"))]
    record(f"ImageNet-shaped folder, {args.arch}, {args.classes} classes (issue 29)", lines)


if __name__ == "__main__":
    main()
