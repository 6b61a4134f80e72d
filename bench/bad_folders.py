"""Bad image folders at scale (issue 29): how long `python -m core.train` takes to say its one line,
and the memory it peaks at, on a class folder of a million empty files named as images, on one of
a 10 GB file (sparse: no disk used) and thousands of non-images, and a folder whose one picture
claims 60,000 x 60,000 pixels. Each folder is made in a temporary directory and removed.

    .venv/bin/python bench/bad_folders.py [--empty 1000000] [--non-images 10000]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import machine, record  # noqa: E402
from bench.imagenet_scale import make_folder  # noqa: E402
from tests.test_streaming import claims_giant_size  # noqa: E402


def train_once(folder: Path, out: Path) -> tuple[float, float, str]:
    """(seconds, peak resident GB of the child, its last stderr line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core.train", "--dataset", f"imagefolder:{folder}",
                           "--input-size", "16", "--epochs", "1", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
    lines = (done.stderr.strip() or done.stdout.strip() or "(nothing)").splitlines()
    return seconds, peak, f"exit {done.returncode}: {lines[-1][:150]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--empty", type=int, default=1_000_000)
    parser.add_argument("--non-images", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bad-folders-"))
    rows = []
    try:
        empty = make_folder(work / "empty", 2, 4, size=(24, 20))
        started = time.perf_counter()
        for i in range(args.empty):
            (empty / "n00000001" / f"blank_{i}.jpg").touch()
        made = time.perf_counter() - started
        rows.append((f"{args.empty:,} empty files named .jpg beside a class's 4 pictures (made in {made:.0f} s)",
                     *train_once(empty, work / "beside.pt")))
        for i in range(4):
            (empty / "n00000001" / f"1_{i}.JPEG").unlink()
        rows.append((f"{args.empty:,} empty files named .jpg, the class's only files", *train_once(empty, work / "only.pt")))
        shutil.rmtree(empty)

        huge = make_folder(work / "huge", 2, 4, size=(24, 20))
        for i in range(4):
            (huge / "n00000000" / f"0_{i}.JPEG").unlink()
        with open(huge / "n00000000" / "big.jpg", "wb") as f:
            f.truncate(10 * 2**30)
        for i in range(args.non_images):
            (huge / "n00000000" / f"notes_{i}.png").write_bytes(b"%PDF-1.4 " + bytes(4096))
        rows.append((f"one class: a 10 GB file named .jpg and {args.non_images:,} non-images named .png",
                     *train_once(huge, work / "huge.pt")))
        shutil.rmtree(huge)

        claims = make_folder(work / "claims", 2, 6, size=(24, 20))
        claims_giant_size(claims / "n00000000" / "0_0.JPEG")
        rows.append(("a JPEG that claims 60,000 x 60,000 pixels among 12 images", *train_once(claims, work / "c.pt")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"{machine()}. `python -m core.train` on each folder, a real process; wall clock to its end, "
             "peak resident memory of the process.", "",
             "| folder | seconds | peak GB | what it said |", "|---|---|---|---|",
             *(f"| {name} | {seconds:.1f} | {peak:.2f} | {said} |" for name, seconds, peak, said in rows)]
    record("Bad image folders at scale (issue 29)", lines)


if __name__ == "__main__":
    main()
