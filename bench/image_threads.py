"""Per-image work (what Compare does for one picture: core.compare.explain_image with CAM and
LayerCAM, and a forward pass of a dataset batch) under 1 thread and under torch's default, on an
idle machine and beside busy processes, side by side in one run.

    .venv/bin/python bench/image_threads.py [--busy 2] [--repeats 15]

Why: torch's OpenMP threads spin while they wait for each other; when another process holds a
core, a 10 ms explanation took seconds in the app (issue 27). The result decides
core.threads.PER_IMAGE_THREADS.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import machine, record  # noqa: E402
from core.checkpoints import load  # noqa: E402
from core.compare import explain_image  # noqa: E402
from core.data import dataset_image, load_dataset  # noqa: E402


def spin(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded case")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    loaded = load("checkpoints/ce.pt")
    image, _ = dataset_image("fashion-mnist", 0)
    batch = load_dataset("fashion-mnist", "test").images[:1000]

    def one_image():
        explain_image(loaded.model, loaded.meta, image, "predicted", ("cam", "layercam"))

    def a_batch():
        with torch.inference_mode():
            loaded.model(batch)

    default = torch.get_num_threads()
    rows = []
    for load_name, busy in (("idle", 0), (f"{args.busy} busy processes", args.busy)):
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
        for p in spinners:
            p.start()
        time.sleep(0.5 if busy else 0)
        try:
            for threads in sorted({1, default}):
                torch.set_num_threads(threads)
                image_median, image_max = timed(one_image, args.repeats)
                batch_median, batch_max = timed(a_batch, max(3, args.repeats // 5))
                rows.append(f"| {load_name} | {threads} | {image_median * 1e3:.1f} ({image_max * 1e3:.0f}) | "
                            f"{batch_median * 1e3:.0f} ({batch_max * 1e3:.0f}) |")
        finally:
            stop.set()
            for p in spinners:
                p.join()
    torch.set_num_threads(default)
    record("Per-image work by thread count, idle and loaded (bundled ce)", [
        f"{machine()}. Median (max) over {args.repeats} repeats: one Compare explanation of a test image "
        "(CAM and LayerCAM), and a forward pass of 1,000 test images.", "",
        "| load | threads | one image, ms | 1,000 images, ms |", "|---|---|---|---|", *rows])


if __name__ == "__main__":
    main()
