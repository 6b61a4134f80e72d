"""Would float16 feature caches change the figures? The whole default report of one checkpoint
computed twice in one run: from its float32 features and logits, and from the same rounded to
float16 (what a half-size cache on disk would give back), every headline figure side by side.

    .venv/bin/python bench/float16_features.py [checkpoints/ce.pt]

Issue 29 allows float16 "where the figures do not change beyond 1e-4"; the verdict is printed and
written to bench/RESULTS.md with the machine named.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import record  # noqa: E402
from core.analysis.base import FeatureCache  # noqa: E402
from core.analysis.engine import REPORT, Analyzer  # noqa: E402
from core.headline import HEADLINE, headline  # noqa: E402
from core.store import MemoryStore  # noqa: E402

TOLERANCE = 1e-4


def rounded(cache: FeatureCache) -> FeatureCache:
    return FeatureCache(cache.features.half().float(), cache.logits.half().float(), cache.labels, cache.index)


def main(path: str) -> None:
    exact = Analyzer.from_path(path, MemoryStore(), feature_dir=None, use_cache=False)
    started = time.perf_counter()
    figures32 = headline(exact.report(REPORT))
    seconds = time.perf_counter() - started
    half = Analyzer.from_path(path, MemoryStore(), feature_dir=None, use_cache=False)
    for key, cache in exact._features.items():  # the same passes, as a float16 cache would return them
        half._features[key] = rounded(cache)
    figures16 = headline(half.report(REPORT))
    lines = [f"`{Path(path).name}`, the whole default report from float32 and from float16-rounded features "
             f"and logits (the report took {seconds:.0f} s from float32).", "",
             "| figure | float32 | float16 | difference |", "|---|---|---|---|"]
    worst = []
    for figure in HEADLINE:
        a, b = figures32.get(figure.key), figures16.get(figure.key)
        if a is None or b is None:
            continue
        difference = abs(a - b)
        worst.append((difference, figure.label))
        lines.append(f"| {figure.label} | {a:.6f} | {b:.6f} | {difference:.2e} |")
    beyond = [label for difference, label in worst if difference > TOLERANCE]
    sizes = {key: cache.features.numel() * 4 + cache.logits.numel() * 4 for key, cache in exact._features.items()}
    lines += ["", f"Cache size: {sum(sizes.values()) / 2**20:.1f} MB in float32, half that in float16. Verdict: "
              + (f"float16 changes {', '.join(beyond)} beyond {TOLERANCE:g}: the caches stay float32."
                 if beyond else f"no figure moves beyond {TOLERANCE:g}.")]
    record("float16 feature caches against float32", lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1] if len(sys.argv) > 1 else "checkpoints/ce.pt")
