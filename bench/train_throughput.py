"""Our trainer against the naive loop, side by side in one run, on the CPU or a GPU.

Ours: `core.trainer.train` itself (whole split resident on the device, batch augmentation on
the device, static shapes, bf16 autocast, channels_last, fused SGD and CUDA graphs on a GPU,
progress logging), in up to three variants (graphs: the default; eager: --no-cuda-graphs;
compile: --compile), timed from its own progress events two ways: the training steps of the
last epoch alone, and whole epochs after the first (the first pays for start-up and
compilation), their test pass and checkpoint write included. GPU results recorded before this
split (bench/RESULTS.md, lease 2 and 4) are whole-epoch rates.
Naive: torchvision FashionMNIST with per-sample transforms through a DataLoader (8 workers
and pinned memory on a GPU), fp32. Same model (resnet20), batch size, optimiser and loss.

    python bench/train_throughput.py [--device cpu|cuda] [--batch-size 256] [--epochs 3]
        [--limit N] [--methods ce,lsg] [--variants graphs,eager,compile]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import record  # noqa: E402
from core.data import DEFAULT_DATA_ROOT  # noqa: E402
from core.models import create_model  # noqa: E402
from core.progress import read_events  # noqa: E402
from core.trainer import TrainConfig, train  # noqa: E402


VARIANTS = {"graphs": {}, "eager": {"cuda_graphs": False}, "compile": {"compile": True}}
FLAGS = {"graphs": "", "eager": " --no-cuda-graphs", "compile": " --compile"}


def ours(method: str, variant: str, device: str, batch: int, epochs: int, limit: int | None) -> tuple[float, float]:
    """Images/s of the real trainer: (training steps only, within the last epoch; whole epochs
    after the first, their test pass and checkpoint included)."""
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(method=method, epochs=epochs, batch_size=batch, limit=limit, device=device,
                             out=f"{folder}/m.pt", log_interval_s=0.1, **VARIANTS[variant])
        train(config)
        events = read_events(f"{folder}/m.progress.jsonl")
    ends = [e for e in events if e["event"] == "epoch"]
    steps_per_epoch = next(e for e in events if e["event"] == "phase" and "steps_per_epoch" in e)["steps_per_epoch"]
    whole = (len(ends) - 1) * steps_per_epoch * batch / (ends[-1]["elapsed_s"] - ends[0]["elapsed_s"])
    last = [e for e in events if e["event"] == "step" and e["epoch"] == epochs]  # logged every 0.1 s
    if len(last) < 2:
        raise RuntimeError(f"the last epoch logged {len(last)} step event(s); give it more images (--limit)")
    steps = (last[-1]["global_step"] - last[0]["global_step"]) * batch / (last[-1]["elapsed_s"] - last[0]["elapsed_s"])
    return steps, whole


def naive(device: str, batch: int, steps: int) -> float:
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    dataset = datasets.FashionMNIST(str(DEFAULT_DATA_ROOT), train=True, download=False, transform=transform)
    on_gpu = device == "cuda"
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=8 if on_gpu else 0,
                                         pin_memory=on_gpu, drop_last=True, persistent_workers=on_gpu)
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    done, start, warm = 0, None, min(5, steps - 1)
    while done < steps:
        for x, y in loader:
            if done == warm:  # warm-up steps: workers starting, cuDNN choosing kernels
                if on_gpu:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()  # the naive loop reads its loss every step
            done += 1
            if done >= steps:
                break
    if on_gpu:
        torch.cuda.synchronize()
    return (steps - warm) * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="ours: epochs, the first is warm-up")
    parser.add_argument("--limit", type=int, default=None, help="training images per epoch (default: all on a "
                        "GPU, 6,400 on the CPU)")
    parser.add_argument("--methods", default="ce", help="comma-separated objectives for our trainer")
    parser.add_argument("--variants", default="graphs", help="comma-separated: graphs (the default trainer; "
                        "plain eager on the CPU), eager (--no-cuda-graphs), compile (--compile)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    limit = args.limit or (None if args.device == "cuda" else 6400)
    steps = (limit or 60000) // args.batch_size
    rows, naive_rates = {}, []
    for _ in range(args.rounds):  # alternate, so both share the machine's noise
        naive_rates.append(naive(args.device, args.batch_size, steps))
        for method in args.methods.split(","):
            for variant in args.variants.split(","):
                key = method + FLAGS[variant]
                try:
                    rate = ours(method, variant, args.device, args.batch_size, args.epochs, limit)
                except Exception as exc:  # one variant failing must not lose the others' figures
                    print(f"{key}: failed: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
                    rate = (float("nan"), float("nan"))
                rows.setdefault(key, []).append(rate)
    base = sum(naive_rates) / len(naive_rates)
    lines = [f"`python bench/train_throughput.py --device {args.device} --batch-size {args.batch_size} "
             f"--epochs {args.epochs} --methods {args.methods} --variants {args.variants}` "
             f"({limit or 60000} training images per epoch)", "",
             "| loop | images/s, training steps (per round) | ours / naive | images/s, whole epochs with the test "
             "pass and checkpoint |", "|---|---|---|---|",
             f"| naive (torchvision dataset, per-sample transforms, DataLoader, fp32) | "
             f"{base:.0f} ({', '.join(f'{r:.0f}' for r in naive_rates)}) | 1.00x | - |"]
    for key, rates in rows.items():
        steps = sum(r[0] for r in rates) / len(rates)
        whole = sum(r[1] for r in rates) / len(rates)
        lines.append(f"| ours: `core.train --method {key}` | {steps:.0f} ({', '.join(f'{r[0]:.0f}' for r in rates)}) "
                     f"| {steps / base:.2f}x | {whole:.0f} |")
    record(f"Training throughput (resnet20, Fashion-MNIST, {args.device})", lines)


if __name__ == "__main__":
    main()
