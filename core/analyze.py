"""`python -m core.analyze CHECKPOINT... [--split test] [--limit N] [--json] [--no-cache] [--iam] [--faithfulness]
[--also NAME,...]`

Also under `torchrun --nproc_per_node N -m core.analyze ...`: every process runs its block of each
forward pass (NCCL between GPUs, gloo on CPUs), rank 0 gathers the features, analyses and prints."""
from __future__ import annotations

import datetime
import json
import os
import sys

from .analysis.base import ANALYSES
from .analysis.engine import REPORT, Analyzer, StepClock, summary
from .analysis.features import analysis_device
from .catalog import describe_limits
from .headline import HEADLINE, format_value
from .cli import OneLineParser, TerminalLine, run_main, say_note
from .distributed import Distributed
from .errors import UserError
from .store import MemoryStore, Store


class StepBar(TerminalLine):
    """The engine's progress callback (step, done, total) as a bar for one checkpoint."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.clock = StepClock()

    def __call__(self, step: str, done: int, total: int):
        fraction = done / max(1, total)
        self.show(f"{self.name}: {step:<28} {self.bar(fraction, 20)} {fraction:4.0%}{self.clock.text(step, done, total):<24}")
        if done >= total and step.startswith("forward"):
            self.end()

    def close(self):
        self.end(keep=False)


def table(rows: list[dict]) -> str:
    """The headline figures (core.headline), one row per model."""
    columns = [("model", lambda r: r["name"]), ("method", lambda r: r["method"])]
    columns += [(f.label, lambda r, f=f: format_value(f, r["headline"][f.key])) for f in HEADLINE]
    cells = [[name for name, _ in columns]] + [[str(get(r)) for _, get in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def faithfulness_table(rows: list[dict]) -> str:
    """Each model's faithfulness per CAM method (mean over its images): deletion AUC (lower is better),
    insertion AUC (higher), ROAD MoRF (more negative) and LeRF (nearer 0)."""
    lines = ["faithfulness: deletion (lower better), insertion (higher), ROAD MoRF (lower), ROAD LeRF (nearer 0)"]
    for row in rows:
        for method in (row.get("faithfulness") or {}).values():
            cells = "  ".join(f"{method[k]['mean']:9.3f}" for k in ("deletion", "insertion", "road_morf", "road_lerf"))
            lines.append(f"  {row['name']:<16} {method['label']:<24} {cells}")
    return "\n".join(lines)


def say_faithfulness_cost(analyzer: Analyzer) -> None:
    """Before the faithfulness analysis starts: what it will take, measured on one test image here."""
    from .progress import format_seconds
    seconds, count = analyzer.faithfulness_seconds()
    say_note(f"{analyzer.name}: the faithfulness of the maps takes about {format_seconds(seconds)} here "
             f"({count} images; measured on one now)")


def on_request_lines(rows: list[dict]) -> str:
    """The scalar figures of each model's `--also` analyses, one line each (the rest is in --json)."""
    lines = []
    for row in rows:
        for name, result in (row.get("on_request") or {}).items():
            cells = [f"{k}={format_scalar(v)}" for k, v in result.items() if is_short(v)]
            lines.append(f"{row['name']}: {name}: {' '.join(cells)}")
    return "\n".join(lines)


def is_short(value) -> bool:
    """A number, a word or a few numbers (AUC a size): what fits a line."""
    if isinstance(value, list):
        return 0 < len(value) <= 10 and all(isinstance(v, (int, float)) for v in value)
    return isinstance(value, (int, float, str))


def format_scalar(value) -> str:
    if isinstance(value, list):
        return "/".join(format_scalar(v) for v in value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def also_names(text: str) -> tuple[str, ...]:
    """--also's analyses, each an on-request one (the default report runs the others)."""
    offered = sorted(n for n, a in ANALYSES.items() if a.on_request and n not in ("iam", "faithfulness"))
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in offered]
    if {"iam", "faithfulness"} & set(unknown):
        raise UserError("--also: iam and faithfulness have their own flags, --iam and --faithfulness")
    if unknown:
        raise UserError(f"--also: no on-request analysis {unknown[0][:40]!r}; the analyses are {', '.join(offered)}")
    return names


def influential_params(k1: int, k2: int) -> dict[str, dict]:
    """k1 and k2 for every analysis built on the influential sets (the sets, noise, masking)."""
    return {name: {"k1": k1, "k2": k2} for name, analysis in ANALYSES.items() if {"k1", "k2"} <= set(analysis.defaults)}


def analyse_each(args, store, device, distributed: Distributed) -> tuple[list[dict], int]:
    """Each checkpoint's report (its summary row); a model that fails is said in one line and
    counted, and the others still run."""
    rows, failed = [], 0
    for path in args.checkpoints:
        bar = StepBar(path) if distributed.is_main else None
        try:
            analyzer = Analyzer.from_path(path, store, split=args.split, limit=args.limit,
                                          train_limit=args.train_limit or None, data_root=args.data_root,
                                          use_cache=not args.no_cache, progress=bar, device=device,
                                          distributed=distributed,
                                          **({} if distributed.is_main else {"feature_dir": None}))
            if distributed.active and not analyzer.share_forward_passes():
                continue
            extra = ("iam",) * args.iam + ("faithfulness",) * args.faithfulness + args.also
            if args.faithfulness and (args.no_cache or analyzer.cached("faithfulness") is None) \
                    and not analyzer.skipped_reason("faithfulness"):
                say_faithfulness_cost(analyzer)
            results = analyzer.report((*REPORT, *extra), params=influential_params(args.k1, args.k2))
            row = summary(results, analyzer.meta, analyzer.skipped)
            # what the figures were read from: a seeded class-balanced sample of up to each limit, or all
            row["read"] = {"split": args.split, "limit": args.limit or "all", "train_limit": args.train_limit or "all"}
            rows.append(row)
            bar.close()
            for name, reason in analyzer.skipped.items():
                print(f"note: {analyzer.name}: {reason}", file=sys.stderr)
        except UserError as exc:  # this model fails; the others still run
            failed += 1
            if bar:
                bar.close()
                print(f"error: {exc}", file=sys.stderr)
        except MemoryError:
            failed += 1
            if bar:
                bar.close()
                print(f"error: {path}: out of memory; try --limit", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a programming error on one model; the others still run
            failed += 1
            if os.environ.get("UNITLENS_DEBUG"):
                raise
            if bar:
                bar.close()
                print(f"error: {path}: internal error ({type(exc).__name__}: {str(exc)[:160]}); please report it",
                      file=sys.stderr)
    return rows, failed


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m core.analyze", description="Every metric of the papers, cached.")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--limit", type=int, default=None, help="only N images of the split: a seeded, class-balanced sample")
    parser.add_argument("--train-limit", type=int, default=0,
                        help="training images for the gate fit and influential sets (0: all, as the papers)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="recompute (and refresh the cache)")
    parser.add_argument("--iam", action="store_true", help="also IAM images and RS (slower)")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also deletion/insertion AUC and ROAD of every CAM method (slower; shipped for the bundle)")
    parser.add_argument("--also", default="", metavar="NAME,...",
                        help="on-request analyses to run too, e.g. adversarial_detection,decomposed_retrain,"
                             "layer_selectivity (their results under on_request in --json)")
    parser.add_argument("--k1", type=int, default=5, help="influential features: each image's top units (default 5)")
    parser.add_argument("--k2", type=int, default=5, help="influential features: each class's kept units (default 5)")
    parser.add_argument("--cache", default=None, help="DuckDB file (default cache/unitlens.duckdb)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    if min(args.k1, args.k2) < 1:
        parser.error(f"--k1 and --k2 must be >= 1, got {args.k1} and {args.k2}")
    if args.train_limit < 0:
        parser.error(f"--train-limit must be >= 0, got {args.train_limit}")
    try:
        args.also = also_names(args.also)
    except UserError as exc:
        parser.error(str(exc))
    if args.cache is not None and not args.cache.strip():
        parser.error("--cache is empty; give a DuckDB file path, or leave --cache out for cache/unitlens.duckdb")
    distributed = Distributed()
    try:
        device = distributed.setup(analysis_device(), patience=datetime.timedelta(days=1))
        # one process keeps the cache (a store that cannot open ends every rank); the others only
        # run their block of each forward pass
        store, problem = MemoryStore(), None
        if distributed.is_main:
            try:
                store = Store(args.cache, on_wait=say_note)
            except UserError as exc:
                problem = exc
        if distributed.rank0_says(problem is not None):
            if problem:
                raise problem
            return 1
        rows, failed = analyse_each(args, store, device, distributed)
        distributed.finish()
    finally:
        distributed.teardown()
    if not distributed.is_main:
        return 1 if failed else 0
    for notice in store.notices:
        print(f"notice: {notice}", file=sys.stderr)
    if rows:
        if args.json:
            print(json.dumps(rows[0] if len(args.checkpoints) == 1 else rows, indent=1, allow_nan=False))
        else:
            print(table(rows))
            if any(row.get("faithfulness") for row in rows):
                print(faithfulness_table(rows))
            if any(row.get("on_request") for row in rows):
                print(on_request_lines(rows))
    limits = describe_limits([(args.limit, "training" if args.split == "train" else "test"),
                              (args.train_limit, "training")], "--limit, --train-limit")
    if rows and limits:
        print(f"note: {limits}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
