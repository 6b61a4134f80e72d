"""How many threads one picture's work gets. Measured by bench/image_threads.py (bench/RESULTS.md,
2 cores): one Compare explanation took 44 ms on 2 threads and 63 ms on 1 on an idle machine, but
192 ms on 2 and 84 ms on 1 beside two busy processes: torch's OpenMP threads spin waiting for a
core another process holds. So per-image work takes one thread while the machine is busy."""
from __future__ import annotations

import contextlib
import os

import torch


def busy() -> bool:
    """Whether other work holds the cores: the last minute's load average at or above the cores
    torch would use (our own analyses in another session count too)."""
    try:
        return os.getloadavg()[0] >= max(1, torch.get_num_threads()) - 0.5
    except OSError:  # no load average on this system
        return False


@contextlib.contextmanager
def one_image_threads():
    """Around one picture's forward and backward passes: one thread on a busy machine."""
    before = torch.get_num_threads()
    if before > 1 and busy():
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
