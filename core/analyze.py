"""`python -m core.analyze CHECKPOINT... [--split test] [--limit N] [--json] [--no-cache] [--iam]`"""
from __future__ import annotations

import argparse
import json
import sys

from .analysis.engine import DEFAULT_TRAIN_LIMIT, REPORT, Analyzer, summary
from .checkpoints import CheckpointError
from .data import DataError
from .store import Store, StoreError


class StderrBar:
    """A one-line progress bar on stderr for long steps (only on a terminal)."""

    def __init__(self, name: str):
        self.name, self.active = name, sys.stderr.isatty()

    def __call__(self, step: str, done: int, total: int):
        if self.active:
            frac = done / max(1, total)
            sys.stderr.write(f"\r{self.name}: {step:<28} [{'#' * int(20 * frac):<20}] {frac:4.0%}")
            sys.stderr.write("\n" if done >= total and step.startswith("forward") else "")
            sys.stderr.flush()

    def close(self):
        if self.active:
            sys.stderr.write("\r" + " " * 80 + "\r")


def table(rows: list[dict]) -> str:
    columns = [("name", "model", "{}"), ("method", "method", "{}"), ("accuracy", "acc", "{:.4f}"),
               ("sel_median", "SI median", "{:.3f}"), ("dead", "dead", "{}"), ("nte_frac", "NTE/bound", "{:.3f}"),
               ("phi", "Phi", "{:.3f}"), ("gate_density", "density", "{:.3f}"), ("r_A", "r_A", "{:.3f}"),
               ("noise_inf", "noise infl", "{:.3f}"), ("noise_non", "noise non-infl", "{:.3f}"),
               ("rho_si", "rho(drop,SI)", "{:.3f}"), ("rho_l1", "rho(drop,L1)", "{:.3f}"), ("c_ic", "C_IC", "{:.3f}")]
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        flat = {"name": r["name"], "method": r["method"], "accuracy": r["accuracy"],
                "sel_median": r["selectivity"]["median"], "dead": r["selectivity"]["dead"],
                "nte_frac": r["nontarget_entropy"]["fraction"], "phi": r["phi"], "gate_density": r["gate_density"],
                "r_A": r["r_A"], "noise_inf": r["noise_ablation"]["gaussian"]["influential"],
                "noise_non": r["noise_ablation"]["gaussian"]["non_influential"],
                "rho_si": r["spearman_drop_selectivity"], "rho_l1": r["spearman_drop_l1"], "c_ic": r["c_ic"]}
        cells.append([("-" if flat[k] is None else fmt.format(flat[k])) for k, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.analyze", description="Every metric of the papers, cached.")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--train-limit", type=int, default=DEFAULT_TRAIN_LIMIT,
                        help="training images for the gate fit and influential sets (0: all)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="recompute (and refresh the cache)")
    parser.add_argument("--iam", action="store_true", help="also IAM images and RS (slower)")
    parser.add_argument("--cache", default=None, help="DuckDB file (default cache/unitlens.duckdb)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    store = Store(args.cache)
    rows, failed = [], 0
    for path in args.checkpoints:
        bar = StderrBar(path)
        try:
            analyzer = Analyzer(path, store, split=args.split, limit=args.limit, train_limit=args.train_limit or None,
                                data_root=args.data_root, use_cache=not args.no_cache, progress=bar)
            rows.append(summary(analyzer.report(REPORT, include_on_request=args.iam), analyzer.meta))
        except (CheckpointError, DataError, StoreError, ValueError) as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
        else:
            bar.close()
    for notice in store.notices:
        print(f"notice: {notice}", file=sys.stderr)
    if rows:
        if args.json:
            print(json.dumps(rows[0] if len(args.checkpoints) == 1 else rows, indent=1))
        else:
            print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
