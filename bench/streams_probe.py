"""Several models' training steps on one GPU: one after another, or side by side on CUDA
streams in one process. A probe for "several models at once" (issue 13): separate processes
time-slice the GPU, while streams of one process can run small kernels of different models
at the same time. Each model's step (resnet20, batch 256, bf16, channels_last, fused SGD) is
captured as one CUDA graph, as in core.trainer; random data, so this measures the steps only.

    python bench/streams_probe.py [--models 3] [--replays 300]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.models import create_model  # noqa: E402

BATCH = 256


def graphed_step(seed: int) -> tuple[torch.cuda.CUDAGraph, tuple]:
    """The captured step, and what it reads and writes (a graph holds only raw addresses: the
    tensors must be kept alive beside it)."""
    torch.manual_seed(seed)
    model = create_model("resnet20", 10, 1).cuda().to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, fused=True)
    x = torch.randn(BATCH, 1, 28, 28, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph, (model, optimizer, x, y)


def timed(replay_round, replays: int) -> float:
    for _ in range(10):
        replay_round()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(replays):
        replay_round()
    torch.cuda.synchronize()
    return time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--replays", type=int, default=300)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    steps = [graphed_step(seed) for seed in range(args.models)]
    graphs = [graph for graph, _ in steps]
    streams = [torch.cuda.Stream() for _ in graphs]

    def alone():
        graphs[0].replay()

    def one_after_another():
        for graph in graphs:
            graph.replay()

    def side_by_side():
        for graph, stream in zip(graphs, streams):
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                graph.replay()
        for stream in streams:
            torch.cuda.current_stream().wait_stream(stream)

    rows = []
    for name, replay_round, models in (("one model alone", alone, 1),
                                       (f"{args.models} models, one after another", one_after_another, args.models),
                                       (f"{args.models} models side by side on streams", side_by_side, args.models),
                                       ("one model alone (again)", alone, 1)):
        seconds = timed(replay_round, args.replays)
        rows.append((name, models * args.replays * BATCH / seconds))
    print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}; batch {BATCH}, {args.replays} replays\n")
    print("| steps | images/s, all models together |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
