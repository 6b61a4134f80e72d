import math

import torch

from ..losses import nontarget_entropy as per_image_nontarget_entropy
from .base import register_analysis, tolist


@register_analysis("nontarget_entropy", title="Non-target entropy", min_classes=3)
def nontarget_entropy(ctx):
    """Entropy of softmax over the non-target logits (nats), against its bound log(C-1). Cost
    O(N C) on the cached logits; memory O(N C) for one softmax."""
    values = per_image_nontarget_entropy(ctx.test.logits, ctx.test.labels)
    bound = math.log(ctx.num_classes - 1)
    per_class = torch.zeros(ctx.num_classes).index_add_(0, ctx.test.labels, values) / \
        torch.bincount(ctx.test.labels, minlength=ctx.num_classes).clamp_min(1)
    return {"mean": float(values.mean()), "bound": bound, "fraction": float(values.mean()) / bound,
            "per_class": tolist(per_class),
            "histogram": tolist(torch.histc(values, bins=20, min=0, max=bound))}
