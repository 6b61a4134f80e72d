"""Shared base for dataset-level analyses.

An analysis is a function of a `Context` (cached features `a`, logits and labels of one
forward pass per split, the head's `W`, `b`) and keyword parameters, returning a JSON-safe
dict. It is registered with its name, version, default parameters and the other analyses it
reads; the engine (core.analysis.engine) caches every result in the store.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Analysis:
    name: str
    compute: Callable
    version: int = 1
    defaults: dict = field(default_factory=dict)
    depends: tuple[str, ...] = ()
    on_request: bool = False  # costly: not part of the default report
    title: str = ""
    min_classes: int = 2      # below or above these the analysis is skipped with a reason
    max_classes: int | None = None
    needs_unit_filters: bool = False  # reads the convolution that makes the units (model.unit_filters)
    needs_nonnegative_units: bool = False  # a ratio of class means, defined for units >= 0 (after a ReLU)
    needs_unit_maps: bool = False  # draws the units' maps (a hidden layer's neurons have none)
    needs_cam_layers: bool = False  # explains with class activation maps (an MLP has no spatial layer)
    reads_training: bool = False  # fits or counts on the training split (its sample under a limit)

    def unsuited(self, model) -> str | None:
        """Why this analysis cannot run on `model`, or None."""
        num_classes = model.num_classes
        if self.needs_unit_filters and model.unit_filters is None:
            return (f"{self.title} does not apply to {model.arch}: no one convolution makes its units "
                    "(they are concatenated layers' outputs, a hidden linear layer's neurons or a transformer's tokens)")
        if self.needs_nonnegative_units and not model.nonnegative_units:
            return (f"{self.title} does not apply to {model.arch}: its units take either sign (a transformer's "
                    "class token after its final norm), and the selectivity index divides by a sum of class means")
        if self.needs_unit_maps and not model.units_have_maps:
            return (f"{self.title} does not apply to {model.arch}: its units are a hidden layer's neurons, "
                    "whose maps are 1 x 1")
        if self.needs_cam_layers and not model.cam_layers():
            return f"{self.title} does not apply to {model.arch}: it has no spatial layer for a class activation map"
        if num_classes < self.min_classes:
            return f"{self.title} needs at least {self.min_classes} classes; this model has {num_classes}"
        if self.max_classes is not None and num_classes > self.max_classes:
            return (f"{self.title} is skipped above {self.max_classes} classes (its tables grow with the "
                    f"number of classes); this model has {num_classes}")
        return None


ANALYSES: dict[str, Analysis] = {}
TRANSIENT = "_transient"  # a result holding this key (True) depends on the machine: kept in its cache, never shipped


def register_analysis(name: str, version: int = 1, depends=(), on_request: bool = False, title: str = "",
                      min_classes: int = 2, max_classes: int | None = None, needs_unit_filters: bool = False,
                      needs_nonnegative_units: bool = False, needs_unit_maps: bool = False,
                      needs_cam_layers: bool = False, reads_training: bool = False, **defaults):
    def wrap(fn):
        ANALYSES[name] = Analysis(name, fn, version, defaults, tuple(depends), on_request, title or name,
                                  min_classes, max_classes, needs_unit_filters, needs_nonnegative_units,
                                  needs_unit_maps, needs_cam_layers, reads_training)
        return fn
    return wrap


def fed_by_training(name: str) -> bool:
    """Whether the analysis, or one it builds on, reads the training split: its figures then
    depend on how many training images were read, which the pages and core.analyze say."""
    analysis = ANALYSES[name]
    return analysis.reads_training or any(fed_by_training(d) for d in analysis.depends)


INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)  # what a source's labels may be


@dataclass
class FeatureCache:
    """One forward pass over a split: pooled features a (N, K), logits (N, C), labels (N,);
    `index`: which of the split's images each row is, where some could not be read (None: row i
    is image i)."""
    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor | None = None

    def problem(self, units: int, classes: int) -> str | None:
        """Why a cache read from disk cannot be this model's pass (None: it can). A crafted or
        stale file of the right name must never reach an analysis: it is recomputed."""
        n = len(self.labels) if isinstance(self.labels, torch.Tensor) and self.labels.dim() == 1 else -1
        tensors = [self.features, self.logits, self.labels] + ([] if self.index is None else [self.index])
        if n < 0 or not all(isinstance(t, torch.Tensor) and t.layout == torch.strided and not t.is_meta
                            for t in tensors):
            return "not dense tensors with a label per row"
        if self.features.shape != (n, units) or self.logits.shape != (n, classes):
            return f"shapes {tuple(self.features.shape)}, {tuple(self.logits.shape)} for {n} rows of {units} units, {classes} classes"
        if not (self.features.is_floating_point() and self.logits.is_floating_point()) or self.labels.dtype not in INTEGERS:
            return "dtypes"
        if n and not (0 <= int(self.labels.min()) and int(self.labels.max()) < classes):
            return "labels out of range"
        if self.index is not None and (self.index.shape != (n,) or self.index.dtype != torch.int64
                                       or (n and (int(self.index.min()) < 0 or not bool((self.index[1:] > self.index[:-1]).all())))):
            return "an index that is not increasing positions"
        return None

    def positions(self, rows: torch.Tensor) -> torch.Tensor:
        """The split's images behind `rows`."""
        return rows if self.index is None else self.index[rows]

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


def tolist(x):
    """Tensors -> nested lists of Python numbers, NaN and infinities -> None (JSON-safe)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
            return json_safe(x.tolist())
        return x.tolist()
    return x


def json_safe(value):
    """NaN and infinities -> None anywhere in a result, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Exact: a count of correct images over their number (not a float32 mean)."""
    return int((logits.argmax(dim=1) == labels).sum()) / len(labels) if len(labels) else float("nan")


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    correct = torch.zeros(num_classes).index_add_(0, labels, (predictions == labels).float())
    counts = torch.bincount(labels, minlength=num_classes).float()
    return correct / counts.clamp_min(1)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class (counts)."""
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).view(num_classes, num_classes)


def rank(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor (float64); exactly equal values (compared in float64) share
    the mean of the ranks they span, as Spearman needs: [10, 20, 20, 30] -> [1, 2.5, 2.5, 4]."""
    values = values.detach().cpu().double()
    ordered, order = torch.sort(values, stable=True)
    _, counts = torch.unique_consecutive(ordered, return_counts=True)
    last = counts.cumsum(0).double()                   # rank of the last value of each run of ties
    average = last - (counts.double() - 1) / 2         # mean of first..last, exact in float64
    ranks = torch.empty_like(values)
    ranks[order] = average.repeat_interleave(counts)
    return ranks


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (`rank`); NaN if either side is
    constant or has a NaN."""
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs two tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.isnan().any() or y.isnan().any():
        return float("nan")
    rx, ry = rank(x), rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.square().sum() * ry.square().sum()).sqrt()
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")
