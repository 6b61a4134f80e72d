"""Single-unit ablation: zero unit k is `logits - outer(a[:, k], W[:, k])`; no re-run."""
import torch

from .base import per_class_accuracy, register_analysis, spearman, tolist


def ablated_predictions(features, logits, weight, chunk: int = 64) -> torch.Tensor:
    """(K, N) predictions with each unit zeroed in turn."""
    out = []
    for start in range(0, features.shape[1], chunk):
        a = features[:, start:start + chunk].T.contiguous()           # (k, N)
        w = weight[:, start:start + chunk].T.contiguous()             # (k, C)
        ablated = logits.unsqueeze(0) - a.unsqueeze(2) * w.unsqueeze(1)  # (k, N, C)
        out.append(ablated.argmax(dim=2))
    return torch.cat(out)


def drop_matrix(features, logits, labels, weight, num_classes):
    """(K, C) drop in per-class accuracy, (K,) drop in overall accuracy."""
    base = per_class_accuracy(logits.argmax(1), labels, num_classes)
    preds = ablated_predictions(features, logits, weight)
    correct = (preds == labels.unsqueeze(0)).float()                  # (K, N)
    per_class = torch.zeros(preds.shape[0], num_classes).index_add_(1, labels, correct)
    per_class /= torch.bincount(labels, minlength=num_classes).clamp_min(1)
    overall_base = (logits.argmax(1) == labels).float().mean()
    return base.unsqueeze(0) - per_class, overall_base - correct.mean(dim=1)


@register_analysis("unit_ablation", depends=("selectivity",), title="Single-unit ablation")
def unit_ablation(ctx):
    test = ctx.test
    drop, overall = drop_matrix(test.features, test.logits, test.labels, ctx.W, ctx.num_classes)
    max_drop, max_class = drop.max(dim=1)
    si = torch.tensor(ctx.result("selectivity")["per_unit"])
    l1 = ctx.W.abs().sum(dim=0)
    return {"drop": tolist(drop), "overall_drop": tolist(overall), "max_class_drop": tolist(max_drop),
            "max_drop_class": tolist(max_class), "l1_norm": tolist(l1),
            "mean_overall_drop": float(overall.mean()), "largest_overall_drop": float(overall.max()),
            "spearman_selectivity": spearman(max_drop, si), "spearman_l1": spearman(max_drop, l1)}
