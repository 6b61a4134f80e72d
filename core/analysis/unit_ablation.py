"""Single-unit ablation: zero unit k is `logits - outer(a[:, k], W[:, k])`; no re-run."""
import torch

from .base import register_analysis, spearman, tolist


BLOCK = 2 ** 25  # ablated logits held at once: 128 MB of float32 (and as much again for the product)


def ablated_predictions(features, logits, weight, block: int = BLOCK) -> torch.Tensor:
    """(K, N) predictions with each unit zeroed in turn, as many units at a time as keep the
    (units, N, C) ablated logits within `block` numbers (64 at most; one at least): at N = 1000,
    C = 1000 that is 32 units, where 64 took 0.5 GB; at N = 50,000 one unit, 200 MB."""
    chunk = max(1, min(64, block // max(1, logits.shape[0] * logits.shape[1])))
    out = []
    for start in range(0, features.shape[1], chunk):
        a = features[:, start:start + chunk].T.contiguous()           # (k, N)
        w = weight[:, start:start + chunk].T.contiguous()             # (k, C)
        ablated = logits.unsqueeze(0) - a.unsqueeze(2) * w.unsqueeze(1)  # (k, N, C)
        out.append(ablated.argmax(dim=2))
    return torch.cat(out)


def correct_counts(features, logits, labels, weight, num_classes):
    """Integer (int64) counts of correctly classified images: (C,) per class unablated,
    (K, C) per class with each unit zeroed in turn, and (C,) images per class."""
    correct = ablated_predictions(features, logits, weight) == labels.unsqueeze(0)       # (K, N)
    ablated = torch.zeros(correct.shape[0], num_classes, dtype=torch.int64).index_add_(1, labels, correct.long())
    base = torch.zeros(num_classes, dtype=torch.int64).index_add_(
        0, labels, (logits.argmax(1) == labels).long())
    return base, ablated, torch.bincount(labels, minlength=num_classes)


def drop_matrix(features, logits, labels, weight, num_classes):
    """(K, C) drop in per-class accuracy and (K,) drop in overall accuracy, float64, each one
    difference of integer counts divided once (`(base - ablated) / n`): equal drops are equal
    bits (also across classes of different sizes, e.g. 1/3 and 2/6). A class with no image: 0."""
    base, ablated, counts = correct_counts(features, logits, labels, weight, num_classes)
    per_class = (base.unsqueeze(0) - ablated).double() / counts.clamp_min(1).double()
    overall = (base.sum() - ablated.sum(dim=1)).double() / max(1, len(labels))
    return per_class, overall


def filter_l1_norms(model, num_features: int):
    """(K,) L1 norm of each unit's incoming filter (`weight[k]` flattened), or None where no one
    convolution makes the K pooled units (model.unit_filters)."""
    conv = model.unit_filters
    if conv is None or conv.weight.shape[0] != num_features:
        return None
    return conv.weight.detach().cpu().double().abs().flatten(1).sum(dim=1)


@register_analysis("unit_ablation", version=3, title="Single-unit ablation")
def unit_ablation(ctx):
    """Follows SPEC: drops from exact image counts (ties stay ties, average ranks), Spearman of
    each unit's max class drop with its selectivity and with both L1 norms of its weights, the
    outgoing fc column `W[:, k]` (`l1_norm`) and the incoming last-conv filter (`filter_l1_norm`;
    None, as its rho, where the last conv does not output the K units). The ablation abstract's
    own question, selectivity against the drop in *overall* accuracy, is
    `spearman_selectivity_overall`. Where selectivity does not apply (units of either sign), its
    rhos are None and the drops stand. Cost O(K N C), no forward pass; memory O(max(N C, 2^25)),
    the units taken in blocks of at most 2^25 ablated logits (`ablated_predictions`)."""
    test = ctx.test
    drop, overall = drop_matrix(test.features, test.logits, test.labels, ctx.W, ctx.num_classes)
    max_drop, max_class = drop.max(dim=1)
    si = (torch.tensor(ctx.result("selectivity")["per_unit"], dtype=torch.float64)
          if ctx.model.nonnegative_units else None)
    l1 = ctx.W.detach().cpu().double().abs().sum(dim=0)
    filter_l1 = filter_l1_norms(ctx.model, ctx.W.shape[1])
    return {"drop": tolist(drop), "overall_drop": tolist(overall), "max_class_drop": tolist(max_drop),
            "max_drop_class": tolist(max_class), "l1_norm": tolist(l1),
            "filter_l1_norm": tolist(filter_l1) if filter_l1 is not None else None,
            "mean_overall_drop": float(overall.mean()), "largest_overall_drop": float(overall.max()),
            "spearman_selectivity": spearman(max_drop, si) if si is not None else None,
            "spearman_selectivity_overall": spearman(overall, si) if si is not None else None,
            "spearman_l1": spearman(max_drop, l1),
            "spearman_filter_l1": spearman(max_drop, filter_l1) if filter_l1 is not None else None}
