"""Where a training step's host time goes: the real trainer (`core.trainer.train`) for a few
epochs under torch.profiler, its operators and CUDA runtime calls ranked by self CPU time and
by count per training step. For finding what keeps a graphed GPU step from its ceiling.

    python bench/step_profile.py [--device cuda] [--method ce] [--epochs 2] [--limit N]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.progress import read_events  # noqa: E402
from core.trainer import TrainConfig, train  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--method", default="ce")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(method=args.method, epochs=args.epochs, limit=args.limit, device=args.device,
                             out=f"{folder}/m.pt", compile=args.compile)
        with profile(activities=activities) as prof:
            train(config)
        phase = next(e for e in read_events(f"{folder}/m.progress.jsonl") if "steps_per_epoch" in e)
    steps = args.epochs * phase["steps_per_epoch"]
    table = prof.key_averages()
    print(f"{steps} training steps; ranked by self CPU time")
    print(table.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=50))
    if args.device == "cuda":
        print(table.table(sort_by="self_cuda_time_total", row_limit=15, max_name_column_width=50))
    print("| call | per step | self CPU per step (us) |\n|---|---|---|")
    for event in sorted(table, key=lambda e: -e.self_cpu_time_total)[:25]:
        print(f"| {event.key[:60]} | {event.count / steps:.2f} | {event.self_cpu_time_total / steps:.1f} |")


if __name__ == "__main__":
    main()
