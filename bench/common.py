"""Shared by the benchmarks: the machine description and appending results to RESULTS.md."""
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def record(title: str, lines: list[str]) -> None:
    """Append a dated section to bench/RESULTS.md and print it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent).stdout.strip()
    except OSError:
        commit = "?"
    text = (f"\n## {title} — {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} (commit {commit})\n\n"
            f"Machine: {machine()}\n\n" + "\n".join(lines) + "\n")
    with open(RESULTS, "a") as f:
        f.write(text)
    print(text)
