"""Where a training run's wall clock went, from its progress events (core.progress): before the
trainer's first event (interpreter, imports, CUDA), data and model, the epochs' steps, the epoch
ends (test pass, snapshot, checkpoint), and after the last event.

    python bench/run_timeline.py RUN.progress.jsonl [--began UNIX_TIME] [--ended UNIX_TIME]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.progress import read_events  # noqa: E402


def timeline(events: list[dict], began: float | None, ended: float | None) -> list[tuple[str, float]]:
    first = events[0]["time"]
    training = next(e["time"] for e in events if e["event"] == "phase" and e.get("phase") == "training")
    steps = epoch_ends = 0.0
    last_mark = training
    for e in events:
        if e["event"] == "step" and e["time"] > last_mark:
            steps += e["time"] - last_mark
            last_mark = e["time"]
        elif e["event"] == "epoch":
            epoch_ends += e["time"] - last_mark
            last_mark = e["time"]
    done = events[-1]["time"]
    rows = [("before the first event (interpreter, imports)", first - began if began else float("nan")),
            ("data and model, to the training phase", training - first),
            ("training steps (to each epoch's last step event)", steps),
            ("epoch ends (test pass, snapshot, checkpoint)", epoch_ends),
            ("after the last event (exit)", ended - done if ended else float("nan"))]
    rows.append(("in all", (ended or done) - (began or first)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("progress")
    parser.add_argument("--began", type=float, default=None, help="when the process was started (unix time)")
    parser.add_argument("--ended", type=float, default=None, help="when it had exited (unix time)")
    args = parser.parse_args()
    events = read_events(args.progress)
    epochs = sum(e["event"] == "epoch" for e in events)
    print(f"| {args.progress}: {epochs} epochs | seconds |\n|---|---|")
    for name, seconds in timeline(events, args.began, args.ended):
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
