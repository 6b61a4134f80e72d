"""How the units became what they are: per-epoch figures from the snapshots a run kept
(core/trajectory.py). Exact where the snapshot is exact (test accuracy, class means over the
whole test split: selectivity, dead units); on the fixed class-balanced subset otherwise
(non-target entropy, gate density of the trained gate)."""
import math

import torch.nn.functional as F

from ..losses import nontarget_entropy
from ..lsg import gate_density
from .base import register_analysis, tolist
from .selectivity import quartiles, selectivity_from_means


@register_analysis("trajectory", title="Units over training", needs_nonnegative_units=True)
def trajectory(ctx):
    """The figures of each epoch's snapshot (class means, head, a fixed subset's features), read from
    the checkpoint, no forward pass. Cost O(E C K); memory the snapshots themselves."""
    history = ctx.trajectory
    if history is None:
        return {"available": False, "reason": "this checkpoint kept no per-epoch snapshots"}
    epochs, rows, per_unit = history["epoch"].tolist(), [], []
    labels = history["subset_labels"]
    for i, epoch in enumerate(epochs):
        means = history["class_means"][i]
        si = selectivity_from_means(means)
        dead = means.max(dim=0).values <= 0
        alive = si[~dead]
        logits = F.linear(history["features"][i].float(), history["weight"][i], history["bias"][i])
        q1, median, q3 = quartiles(alive)
        row = {"epoch": epoch, "accuracy": int(history["test_correct"][i]) / int(history["test_total"]),
               "median_selectivity": median, "selectivity_q1": q1, "selectivity_q3": q3,
               "dead_units": int(dead.sum())}
        if ctx.num_classes > 2:
            nte = float(nontarget_entropy(logits, labels).mean())
            row.update(nontarget_entropy=nte, nontarget_fraction=nte / math.log(ctx.num_classes - 1))
        if "gate" in history:
            row["gate_density"] = float(gate_density(history["gate"][i]))
        rows.append(row)
        per_unit.append(tolist(si.masked_fill(dead, float("nan"))))
    return {"available": True, "epochs": rows, "unit_selectivity": per_unit,
            "subset_images": len(labels)}
