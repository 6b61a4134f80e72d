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
    """(what, seconds) in the order they happened; together they make the whole run."""
    rows = [("before the first event (interpreter, imports)", events[0]["time"] - began if began else float("nan"))]
    phases = [e for e in events if e["event"] in ("start", "phase")]
    for e, following in zip(phases, phases[1:]):
        name = "validated, to the first phase" if e["event"] == "start" else f"phase: {e['phase']}"
        rows.append((name, following["time"] - e["time"]))
    first_epoch = later_epochs = epoch_ends = 0.0
    mark = phases[-1]["time"]
    for e in events:
        if e["time"] <= mark:
            continue
        if e["event"] == "step":
            if e["epoch"] == 1:
                first_epoch += e["time"] - mark
            else:
                later_epochs += e["time"] - mark
        elif e["event"] == "epoch":
            epoch_ends += e["time"] - mark
        else:
            continue
        mark = e["time"]
    rows += [("first epoch's steps (graph capture, cuDNN autotuning)", first_epoch),
             ("later epochs' steps", later_epochs),
             ("epoch ends (test pass, snapshot, checkpoint)", epoch_ends),
             ("after the last event (exit)", ended - events[-1]["time"] if ended else float("nan")),
             ("in all", (ended or events[-1]["time"]) - (began or events[0]["time"]))]
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("progress")
    parser.add_argument("--began", type=float, default=None, help="when the process was started (unix time)")
    parser.add_argument("--ended", type=float, default=None, help="when it had exited (unix time)")
    args = parser.parse_args()
    events = read_events(args.progress)
    last_start = max(i for i, e in enumerate(events) if e["event"] == "start")
    events = events[last_start:]  # a resumed run: its last attempt
    epochs = sum(e["event"] == "epoch" for e in events)
    print(f"| {args.progress}: {epochs} epochs | seconds |\n|---|---|")
    for name, seconds in timeline(events, args.began, args.ended):
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
