"""The training step replayed from CUDA graphs on a GPU.

On a GPU our resnet20 step is bound by the host, not the chip: a few hundred kernel launches
cost about 12 ms whatever the batch size (issue 13). Captured once into a CUDA graph, a step is
one launch. One graph per kind of step (LSG has a standard and a gated step), each captured
after a few eager warm-up steps (they create the optimiser's momentum buffers and let cuDNN
choose its kernels). The graphed step computes exactly what the eager one does; only the
batch is copied into the graph's fixed input tensors. On the CPU, or with `enabled=False`,
the step simply runs.
"""
from __future__ import annotations

import collections
from typing import Callable, Hashable

import torch

from .sgd import SGD

Step = Callable[[Hashable, torch.Tensor, torch.Tensor], None]


class StepRunner:
    """`runner(kind, x, y)` runs one training step. What it computes stays on the device, in
    tensors the step itself writes to (the trainer's epoch meter): nothing is returned."""

    WARMUP = 3

    def __init__(self, step: Step, optimizers: list[SGD], enabled: bool):
        self.step = step
        self.enabled = enabled
        self.graphs: dict[Hashable, tuple[tuple[torch.Tensor, torch.Tensor], torch.cuda.CUDAGraph]] = {}
        self.eager_runs: collections.Counter = collections.Counter()
        self.groups = [g for optimizer in optimizers for g in optimizer.param_groups] if enabled else []
        # a graph reads the learning rate from a tensor (a float would be baked into it)
        self.lrs = [torch.tensor(float(g["lr"]), device="cuda") for g in self.groups]
        self.sync_lr()

    def sync_lr(self) -> None:
        """Keep each param group's lr the tensor the graphs read, whatever the scheduler
        (or a resumed optimiser state) put there."""
        for group, lr in zip(self.groups, self.lrs):
            if group["lr"] is not lr:
                lr.fill_(float(group["lr"]))
                group["lr"] = lr

    def __call__(self, kind: Hashable, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.enabled:
            self.step(kind, x, y)
            return
        self.sync_lr()
        if kind not in self.graphs:
            if self.eager_runs[kind] < self.WARMUP:
                self.eager_runs[kind] += 1
                self.on_side_stream(kind, x, y)
                return
            self.capture(kind, x, y)
        (static_x, static_y), graph = self.graphs[kind]
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()

    def on_side_stream(self, kind, x, y):
        """Warm-up steps run on a side stream, as CUDA graph capture requires."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.step(kind, x, y)
        torch.cuda.current_stream().wait_stream(side)

    def capture(self, kind, x, y) -> None:
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            self.step(kind, static_x, static_y)
        self.graphs[kind] = ((static_x, static_y), graph)


def portable_state(state: dict) -> dict:
    """An optimiser's or scheduler's state dict with plain-float learning rates (the graphs'
    lr tensors live on the GPU), so a checkpoint written on one device resumes on any."""
    def plain(value):
        return float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    for group in state.get("param_groups", []):
        group["lr"] = plain(group["lr"])
    if "_last_lr" in state:
        state["_last_lr"] = [plain(v) for v in state["_last_lr"]]
    return state
