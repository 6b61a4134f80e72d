"""Our training step against the naive loop, side by side in one run.

Ours: the dataset preloaded as one normalised tensor, batches sliced by index, crop+flip
augmentation on the whole batch (core.data.augment_batch), channels_last.
Naive: torchvision FashionMNIST with per-sample transforms through a DataLoader.
Same model (resnet20), batch size, optimizer and loss. Blocks alternate to share the noise.

    python bench/train_throughput.py [--steps 25] [--batch-size 128] [--rounds 2]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import record  # noqa: E402
from core.data import DEFAULT_DATA_ROOT, augment_batch, black_value, load_dataset  # noqa: E402
from core.models import create_model  # noqa: E402


def make_model(channels_last: bool):
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def ours(steps: int, batch: int) -> tuple[float, float]:
    """images/s and the fraction of time spent on data handling."""
    train = load_dataset("fashion-mnist", "train")
    fill, generator = black_value(train.info), torch.Generator().manual_seed(0)
    model, optimizer = make_model(True)
    order = torch.randperm(len(train), generator=generator)
    data_time = 0.0
    start = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        idx = order[i * batch:(i + 1) * batch]
        x = augment_batch(train.images[idx], 2, True, generator, fill).contiguous(memory_format=torch.channels_last)
        y = train.labels[idx]
        data_time += time.perf_counter() - t0
        step(model, optimizer, x, y)
    total = time.perf_counter() - start
    return steps * batch / total, data_time / total


def naive(steps: int, batch: int) -> tuple[float, float]:
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
    dataset = datasets.FashionMNIST(str(DEFAULT_DATA_ROOT), train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    model, optimizer = make_model(False)
    data_time = 0.0
    start = time.perf_counter()
    iterator = iter(loader)
    for _ in range(steps):
        t0 = time.perf_counter()
        x, y = next(iterator)
        data_time += time.perf_counter() - t0
        step(model, optimizer, x, y)
    total = time.perf_counter() - start
    return steps * batch / total, data_time / total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ours(3, args.batch_size), naive(3, args.batch_size)  # warm-up: allocator, data load
    results = {"ours": [], "naive": []}
    for _ in range(args.rounds):
        results["ours"].append(ours(args.steps, args.batch_size))
        results["naive"].append(naive(args.steps, args.batch_size))
    mean = {k: (sum(r[0] for r in v) / len(v), sum(r[1] for r in v) / len(v)) for k, v in results.items()}
    ratio = mean["ours"][0] / mean["naive"][0]
    record("Training throughput (resnet20, Fashion-MNIST, CPU)", [
        f"`python bench/train_throughput.py --steps {args.steps} --batch-size {args.batch_size} --rounds {args.rounds}`",
        "",
        "| loop | images/s | data handling share of step time |",
        "|---|---|---|",
        f"| ours (preloaded tensor, batch augmentation, channels_last) | {mean['ours'][0]:.0f} | {mean['ours'][1]:.1%} |",
        f"| naive (torchvision dataset, per-sample transforms, DataLoader) | {mean['naive'][0]:.0f} | {mean['naive'][1]:.1%} |",
        "",
        f"Ratio ours / naive: **{ratio:.2f}x** (per round: "
        + ", ".join(f"{o[0] / n[0]:.2f}" for o, n in zip(results["ours"], results["naive"])) + ")",
    ])


if __name__ == "__main__":
    main()
