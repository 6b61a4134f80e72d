"""Runs that answer a question: one training option over several values, each over several seeds.

    python -m core.sweep --vary p_t=0.6,0.7,0.9 --seeds 0,1,2 --out-dir runs/pt-sweep -- --method minimax --epochs 10

trains `--method minimax --p-t V --seed S` for every value V and seed S with the other options
given after `--`, into `out-dir/minimax-p_t0.6-seed0.pt` and so on: one after another (the CPU's
way), or `--jobs N` at once (a GPU's). Every run is checked by core.train's own parser before the
first starts. The Specificity and cost page then draws each figure against the value, mean +- std
over the seeds (`core.tradeoffs.sweeps`).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .cli import OneLineParser, exit_without_teardown, run_main
from .train import build_parser as train_parser, config_from_args
from .trainer import TrainingError, validate

MAX_RUNS = 200


def parse_values(text: str) -> tuple[str, list[str]]:
    """'p_t=0.6,0.7' -> ('p_t', ['0.6', '0.7'])."""
    key, _, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not key.strip() or not items:
        raise ValueError(f"--vary takes OPTION=V1,V2,..., got {text[:60]!r}")
    return key.strip().replace("-", "_"), items


def runs(key: str, values: list[str], seeds: list[int], out_dir: Path, train_args: list[str]) -> list[list[str]]:
    """core.train's arguments for every (value, seed), each checked as core.train checks its own
    (ValueError, or argparse's SystemExit, with one line for a bad one, before anything runs)."""
    if any(arg == "--out" or arg.startswith("--out=") for arg in train_args):
        raise ValueError("the sweep names each run's --out itself (in --out-dir); leave --out out")
    if any(arg == "--seed" or arg.startswith("--seed=") for arg in train_args):
        raise ValueError("give the seeds with --seeds, not --seed")
    flag = "--" + key.replace("_", "-")
    parser = train_parser()
    method = parser.parse_args(train_args).method
    argvs = []
    for value in values:
        for seed in seeds:
            out = out_dir / f"{method}-{key}{value}-seed{seed}.pt"
            argv = [*train_args, flag, value, "--seed", str(seed), "--out", str(out)]
            try:  # a wrong option or value: one line, before any run
                validate(config_from_args(parser.parse_args(argv)))
            except TrainingError as exc:
                raise ValueError(f"{key}={value}: {exc}") from None
            argvs.append(argv)
    return argvs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = OneLineParser(prog="python -m core.sweep", description="Train one option over several values and seeds.")
    parser.add_argument("--vary", required=True, help="OPTION=V1,V2,... (a core.train option, e.g. p_t=0.6,0.7,0.9)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--out-dir", required=True, help="the folder for the sweep's checkpoints")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (1 on a CPU; several share a GPU)")
    args = parser.parse_args(own)
    try:
        key, values = parse_values(args.vary)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        if not seeds or args.jobs < 1:
            raise ValueError("--seeds needs at least one seed and --jobs at least 1")
        out_dir = Path(args.out_dir)
        planned = runs(key, values, seeds, out_dir, train_args)
        if len(planned) > MAX_RUNS:
            raise ValueError(f"{len(planned)} runs; a sweep holds at most {MAX_RUNS}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{len(planned)} runs: {key} in {', '.join(values)}, seeds {', '.join(map(str, seeds))}", flush=True)
    failed, running, queue = [], [], list(enumerate(planned, 1))
    while queue or running:
        while queue and len(running) < args.jobs:
            number, run = queue.pop(0)
            print(f"run {number} of {len(planned)}: {Path(run[-1]).name}", flush=True)
            running.append((run, subprocess.Popen([sys.executable, "-m", "core.train", *run])))
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            if item[1].returncode != 0:
                failed.append(Path(item[0][-1]).name)
        time.sleep(0.2)
    print(f"{len(planned) - len(failed)} of {len(planned)} runs saved in {out_dir}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    exit_without_teardown(run_main(main))
