"""Shared base for training objectives: a name, typed options with defaults, a loss."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..sgd import SGD

OBJECTIVES: dict[str, type["Objective"]] = {}


def register_objective(cls):
    OBJECTIVES[cls.name] = cls
    return cls


class Objective:
    """`objective(logits, targets)` -> mean loss over the batch.

    `options` maps option name -> (default, help); values are validated by `validate`.
    `uses_gate` marks methods that train an LSG gate alongside (see core.lsg). An objective
    that trains more than the network, or steps differently, overrides the training hooks
    `attach`, `step_kind`, `forward`, `training_loss` and `after_step`; the trainer calls them
    in that order. The last three must not read tensors back to the host (no `.item()`, no
    boolean masks): on a GPU they are captured into a CUDA graph.
    """
    name = ""
    options: dict[str, tuple[float | int | bool, str]] = {}
    uses_gate = False
    loss_label = "loss"  # what its progress shows as the loss (the mean of `training_loss`)

    def __init__(self, **values):
        unknown = set(values) - set(self.options)
        if unknown:
            raise ValueError(f"{self.name} has no option {sorted(unknown)[0]!r}")
        self.values = {key: cast_option(default, values.get(key, default))
                       for key, (default, _) in self.options.items()}
        for key, value in self.values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value}")
        self.validate()
        for key, value in self.values.items():
            setattr(self, key, value)

    def validate(self) -> None:
        """Raise ValueError with a one-line reason for an invalid option."""

    def validate_run(self, epochs: int) -> None:
        """Raise ValueError with a one-line reason if the options cannot do their work in a run of
        `epochs` epochs."""

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ training hooks
    def attach(self, model) -> SGD | None:
        """Add what this objective trains beside the network to `model`; return its optimiser."""
        return None

    def start_epoch(self, epoch: int) -> None:
        """Runs before each epoch's first step (and before the first epoch of a resumed run)."""

    def step_kind(self, epoch: int, step: int):
        """What kind of step (epoch, step) is; steps of one kind run the same operations (on a
        GPU each kind is one CUDA graph, core/graphed_step.py)."""
        return None

    def forward(self, net, x: torch.Tensor, y: torch.Tensor, kind) -> torch.Tensor:
        """Logits of a training batch (`net` may be the compiled or DDP-wrapped model)."""
        return net(x)

    def training_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self(logits, y)

    def after_step(self) -> None:
        """Runs after the network's optimiser step."""


def cast_option(default, value):
    """Cast `value` to the type of `default`; booleans accept true/false/1/0/yes/no."""
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"expected true or false, got {value!r}")
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    return type(default)(value)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) per row."""
    log_q = F.log_softmax(logits, dim=1)
    return -(log_q.exp() * log_q).sum(dim=1)


def drop_target(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, C-1): each row without its target column, in order. A gather, not a
    boolean mask, so its shape never depends on the data (no host sync; CUDA-graph safe)."""
    columns = torch.arange(logits.shape[1] - 1, device=logits.device)
    return logits.gather(1, columns + (columns >= targets[:, None]))


def nontarget_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax over the non-target logits, per image; bounded by log(C-1)."""
    return entropy(drop_target(logits, targets))
