"""Per-epoch snapshots a run keeps so its units can be followed through training.

Because the head is linear after global average pooling, most metrics need only the head and
pooled features. At every epoch end the trainer already runs the whole test split once; from
that pass it keeps, in the checkpoint under the key "trajectory":

- `epoch` (E,), `test_correct` (E,), `test_total` (): exact test accuracy per epoch;
- `class_means` (E, C, K): each class's mean feature over the whole test split (selectivity
  and dead units per epoch are exact);
- `weight` (E, C, K), `bias` (E, C), and `gate` (E, C, K) for gated models: the head;
- `subset` (S,), `subset_labels` (S,), `features` (E, S, K) in float16: pooled features of a
  fixed, class-balanced test subset (the first PER_CLASS images of each class), for per-image
  metrics (non-target entropy, a gate fit).

Budget: at C = 10, K = 64, S = 500 one epoch is about 72 KB (1.4 MB for 20 epochs).
"""
from __future__ import annotations

import torch

from .analysis.selectivity import class_means
from .data import first_per_class

PER_CLASS = 50
MAX_SUBSET = 2000      # images kept per epoch whatever the number of classes
MAX_EPOCHS = 1000
KEYS = {"epoch", "test_correct", "test_total", "class_means", "weight", "bias", "gate",
        "subset", "subset_labels", "features"}
INTEGER_KEYS = {"epoch", "test_correct", "test_total", "subset", "subset_labels"}


def subset_indices(labels: torch.Tensor, num_classes: int, per_class: int = PER_CLASS) -> torch.Tensor:
    """The first `per_class` images of each class, in index order, at most MAX_SUBSET in all."""
    return first_per_class(labels, num_classes, max(0, min(per_class, MAX_SUBSET // max(1, num_classes))))


@torch.no_grad()
def record(trajectory: dict | None, epoch: int, cache, model, subset: torch.Tensor) -> dict:
    """Append one epoch to `trajectory` (None starts one) from the epoch's test-split pass."""
    num_classes = model.num_classes
    snapshot = {
        "epoch": torch.tensor([epoch]),
        "test_correct": torch.tensor([int((cache.logits.argmax(1) == cache.labels).sum())]),
        "class_means": class_means(cache.features, cache.labels, num_classes).float()[None],
        "weight": model.fc.weight.detach().float().cpu()[None],
        "bias": model.fc.bias.detach().float().cpu()[None],
        # float16 ends at 65504: a larger feature (an ImageNet network early in fine-tuning) is kept
        # at that bound, not as infinity, which no page could draw
        "features": cache.features[subset].clamp(-65504, 65504).half()[None],
    }
    if model.gate is not None:
        snapshot["gate"] = model.gate.detach().float().cpu()[None]
    if trajectory is None:
        return {"test_total": torch.tensor(len(cache.labels)), "subset": subset.clone(),
                "subset_labels": cache.labels[subset].clone(), **snapshot}
    return {**trajectory, **{key: torch.cat([trajectory[key], value]) for key, value in snapshot.items()}}


def check(trajectory, num_classes: int, num_features: int, epochs: int) -> str | None:
    """Why `trajectory` (from a file) is not a valid one for this model, or None if it is."""
    if not isinstance(trajectory, dict):
        return "trajectory is not a dict"
    unknown = set(trajectory) - KEYS
    if unknown:
        return f"trajectory has an unknown entry {sorted(unknown)[0]!r}"
    if any(not isinstance(v, torch.Tensor) for v in trajectory.values()):
        return "trajectory entries must be tensors"
    if any(v.layout != torch.strided or v.is_meta or v.device.type != "cpu" for v in trajectory.values()):
        return "trajectory entries must be plain tensors (not sparse, meta or on a device)"
    missing = (KEYS - {"gate"}) - set(trajectory)
    if missing:
        return f"trajectory lacks {sorted(missing)[0]!r}"
    for key, value in trajectory.items():
        integral = key in INTEGER_KEYS
        if integral != (not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool):
            return f"trajectory entry {key!r} must hold {'whole numbers' if integral else 'real numbers'}"
    if trajectory["epoch"].ndim != 1 or trajectory["subset"].ndim != 1:
        return "trajectory's epochs and subset must be lists"
    e = len(trajectory["epoch"])
    s = len(trajectory["subset"])
    if not 1 <= e <= min(epochs, MAX_EPOCHS) or s > MAX_SUBSET:
        return f"trajectory of {e} epochs and {s} images does not fit the run"
    c, k = num_classes, num_features
    shapes = {"epoch": (e,), "test_correct": (e,), "test_total": (), "class_means": (e, c, k),
              "weight": (e, c, k), "bias": (e, c), "gate": (e, c, k), "subset": (s,),
              "subset_labels": (s,), "features": (e, s, k)}
    for key, value in trajectory.items():
        if tuple(value.shape) != shapes[key]:
            return f"trajectory entry {key!r} has shape {tuple(value.shape)}, expected {shapes[key]}"
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"trajectory entry {key!r} holds non-finite values"
    total, correct, epochs_seen = int(trajectory["test_total"]), trajectory["test_correct"], trajectory["epoch"]
    if total < 1 or bool((correct < 0).any()) or bool((correct > total).any()):
        return "trajectory's test counts are out of range (0 <= correct <= total, total >= 1)"
    if bool((epochs_seen < 0).any()) or bool((epochs_seen[1:] <= epochs_seen[:-1]).any()):
        return "trajectory's epochs must increase"
    subset, labels = trajectory["subset"], trajectory["subset_labels"]
    if s and (bool((subset < 0).any()) or bool((subset >= total).any()) or bool((labels < 0).any())
              or bool((labels >= c).any())):
        return "trajectory's subset indices or labels are out of range"
    return None
