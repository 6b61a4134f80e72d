"""CE, minimax and LSG started as the sidebar starts them (`core.runs.start_runs`: at once on
a GPU, queued on a CPU), timed from the call to the last run's end.

    python bench/sidebar_trio.py [--epochs 10] [--limit N] [--folder /tmp/trio]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core import runs  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--folder", default="/tmp/sidebar-trio")
    args = parser.parse_args()
    folder = Path(args.folder)
    began = time.time()
    started = runs.start_runs([("ce", {}), ("minimax", {}), ("lsg", {})], epochs=args.epochs, limit=args.limit,
                              folder=folder)
    while any(runs.load_run(folder / f"{r.run_id}.run.json").status == "running" for r in started):
        time.sleep(0.2)
    took = time.time() - began
    print("| run | queued after | status | test accuracy |\n|---|---|---|---|")
    for run in started:
        final = runs.load_run(folder / f"{run.run_id}.run.json")
        after = ", ".join(a for a, flag in zip(run.args[1:], run.args) if flag == "--after") or "-"
        done = [e for e in final.events if e["event"] == "done"]
        print(f"| {run.method} | {after} | {final.status} | {done[0]['test_accuracy'] if done else '-'} |")
    print(f"\nthree runs of {args.epochs} epochs from the sidebar's call to the last one's end: {took:.1f} s")


if __name__ == "__main__":
    main()
