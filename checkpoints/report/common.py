"""What every section of the report shares: where it writes, how it saves a plot, the bounds and
targets its verdicts read."""
from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402,F401  (the sections draw with it, headless)
from PIL import Image  # noqa: E402

from core.losses.lsg import LSG  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

OUT = ROOT / "docs" / "reproduction"
NTE_BOUND = math.log(9)  # the non-target entropy's bound on Fashion-MNIST's 10 classes
TARGET_DENSITY = LSG.options["target_density"][0]  # the bundle's and the study's


def save_figure(fig, filename: str, dpi: int) -> None:
    """The figure as a PNG of 256 colours (a third of the bytes; the plots use a few): what is
    tracked travels to a GPU machine, within a budget (bench/gpu_session.sh)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight")
    Image.open(buffer).convert("RGB").quantize(256).save(OUT / filename, optimize=True)


def near(share: float, paper: float) -> bool:
    """Whether a share is "about" the paper's: within half of it (about 10%: 5% to 15%)."""
    return abs(share - paper) <= paper / 2


def markdown_table(header: list[str], rows) -> str:
    """A Markdown table: the header, its rule, a line per row of cells (already formatted)."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, row)) + " |" for row in rows])
