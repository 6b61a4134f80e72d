"""SGD with Nesterov momentum and the warm-up-cosine schedule, without torch.optim.

torch.optim's Optimizer imports torch._dynamo the first time any of its methods runs (its
methods are wrapped in `torch._disable_dynamo`), even in an eager run: 1.25 s of a training
run's start-up on a 2-core CPU (bench/startup.py), 5-6.5 s on the H100 image (issue 13,
bench/RESULTS.md). The
trainer needs only this optimiser and one schedule, so they are here, with torch.optim.SGD's
arithmetic op for op on the CPU (bit-identical; tests/test_sgd.py) and the state-dict
formats of torch.optim.SGD and LambdaLR, so a checkpoint resumes whichever wrote it.

With several parameters on a GPU the update is a handful of multi-tensor (`_foreach`) kernels
that read the learning rate from a tensor when given one, so a CUDA graph can replay them (a
float would be baked into the graph); it computes p - lr * g, as torch's fused kernel does to
rounding, not to the bit.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch


class SGD:
    """torch.optim.SGD's update (dampening 0, no maximize): weight decay added to the gradient,
    the momentum buffer starts as the first gradient, Nesterov looks ahead by `momentum`."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.param_groups = [{"params": list(params), "lr": lr, "momentum": momentum, "dampening": 0,
                              "weight_decay": weight_decay, "nesterov": nesterov}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:  # (reading a tensor lr would be a host sync, and fail inside a graph capture)
                continue
            if params[0].is_cuda:
                self._multi_tensor_step(group, params)
            else:
                self._single_tensor_step(group, params)

    def _single_tensor_step(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, momentum, weight_decay = float(group["lr"]), group["momentum"], group["weight_decay"]
        for p in params:
            grad = p.grad
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            if momentum != 0:
                buf = self.state.get(p, {}).get("momentum_buffer")
                if buf is None:
                    buf = self.state.setdefault(p, {})["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            p.add_(grad, alpha=-lr)

    def _multi_tensor_step(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        grads = [p.grad for p in params]
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum != 0:
            bufs = [self.state.get(p, {}).get("momentum_buffer") for p in params]
            if all(buf is not None for buf in bufs):
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1 - group["dampening"])
            else:  # a parameter's first gradient starts its buffer; the others' buffers go on as usual
                for i, (p, grad) in enumerate(zip(params, grads)):
                    if bufs[i] is None:
                        bufs[i] = self.state.setdefault(p, {})["momentum_buffer"] = grad.detach().clone()
                    else:
                        bufs[i].mul_(momentum).add_(grad, alpha=1 - group["dampening"])
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_sub_(params, torch._foreach_mul(grads, lr))  # eager and graphed alike

    # ------------------------------------------------------------------ torch.optim's format
    def state_dict(self) -> dict:
        """As torch.optim.SGD writes it: parameters by index, a momentum buffer per index."""
        index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[p] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": {index[p]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state: dict) -> None:
        """Ours or torch.optim.SGD's (its extra group keys are ignored)."""
        saved_groups = state["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)):
            raise ValueError("the saved optimiser state has other parameter groups than this model")
        by_id = {int(i): p for group, saved in zip(self.param_groups, saved_groups)
                 for i, p in zip(saved["params"], group["params"])}  # as torch.optim maps them
        for group, saved in zip(self.param_groups, saved_groups):
            for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov"):
                if key in saved:
                    group[key] = saved[key]
        self.state = {}
        for i, entry in state["state"].items():
            p = by_id[int(i)]
            self.state[p] = {k: v.to(p.device, p.dtype) if isinstance(v, torch.Tensor) else v
                             for k, v in entry.items()}


def warmup_cosine(total_steps: int, warmup_fraction: float = 0.25) -> Callable[[int], float]:
    """One-cycle shape for any length: linear warm-up to the peak lr, then cosine to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
    return factor


class Schedule:
    """LambdaLR's behaviour: each group's lr is its initial lr times `factor(steps taken)`, set
    at construction (step 0) and after every `step()`."""

    def __init__(self, optimizer: SGD, factor: Callable[[int], float]):
        self.optimizer, self.factor = optimizer, factor
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1  # LambdaLR's name for the number of steps taken
        self.step()

    def step(self) -> None:
        self.last_epoch += 1
        self._last_lr = [base * self.factor(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def state_dict(self) -> dict:
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch, "_last_lr": self._last_lr}

    def load_state_dict(self, state: dict) -> None:
        """Ours or LambdaLR's; like LambdaLR, leaves the optimiser's lr to the optimiser's state."""
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.last_epoch = int(state["last_epoch"])
        self._last_lr = [float(v) for v in state["_last_lr"]]
