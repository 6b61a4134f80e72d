"""What a training process spends before its first step, side by side in one run: torch.optim's
SGD against the trainer's own (core.sgd), each in a fresh interpreter after `import torch`
(torch.optim imports torch._dynamo on its first call), alternating, several rounds; then the wall
clock of a whole short `python -m core.train` run.

    python bench/startup.py [--rounds 5] [--device cpu|cuda]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import record  # noqa: E402

# one optimiser built and stepped on a resnet20, timed from after `import torch` (which both pay)
PROBE = """
import sys, time
import torch
began = time.perf_counter()
from core.models import create_model
model = create_model("resnet20", 10, 1).to("{device}")
if "{which}" == "torch.optim":
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
else:
    from core.sgd import SGD
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
model(torch.randn(8, 1, 28, 28, device="{device}")).sum().backward()
optimizer.step()
optimizer.zero_grad()
if "{device}" == "cuda":
    torch.cuda.synchronize()
print(time.perf_counter() - began, "torch._dynamo" in sys.modules)
"""


def probe(which: str, device: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(which=which, device=device)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), out[1] == "True"


def short_run(device: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core.train", "--method", "ce", "--epochs", "1", "--limit", "512",
                        "--device", device, "--out", str(Path(tmp) / "ce.pt")], cwd=ROOT, check=True,
                       capture_output=True)
        return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    seconds = {"torch.optim": [], "core.sgd": []}
    dynamo = {}
    for _ in range(args.rounds):
        for which in seconds:  # alternating, so drifts in the machine's load hit both alike
            took, dynamo[which] = probe(which, args.device)
            seconds[which].append(took)
    runs = [short_run(args.device) for _ in range(args.rounds)]
    median = {which: statistics.median(values) for which, values in seconds.items()}
    lines = [f"`python bench/startup.py --rounds {args.rounds} --device {args.device}`: a fresh interpreter "
             "per measurement, timed after `import torch`: build resnet20, its optimiser, one step.", "",
             "| optimiser | seconds, median (all rounds) | imports torch._dynamo |", "|---|---|---|"]
    lines += [f"| {which} | {median[which]:.2f} ({', '.join(f'{s:.2f}' for s in values)}) | "
              f"{'yes' if dynamo[which] else 'no'} |" for which, values in seconds.items()]
    lines += ["", f"core.sgd saves {median['torch.optim'] - median['core.sgd']:.2f} s of every training run's "
              f"start-up here. A whole `python -m core.train --method ce --epochs 1 --limit 512` run "
              f"(interpreter, imports, data, one epoch of 2 steps, checkpoint, exit): median "
              f"{statistics.median(runs):.2f} s ({', '.join(f'{s:.2f}' for s in runs)})."]
    record(f"Training start-up, torch.optim against core.sgd ({args.device})", lines)


if __name__ == "__main__":
    main()
