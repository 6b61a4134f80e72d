"""Feature/gate similarity S^c_y = mean of a^T G_c over TP (and FN) images of class y (LSG App. B)."""
import torch

from .base import register_analysis, tolist


def similarity_matrix(features, labels, predictions, gate, num_classes, true_positive: bool):
    pick = (predictions == labels) if true_positive else (predictions != labels)
    scores = features @ gate.T                                            # (N, C): a^T G_c
    sums = torch.zeros(num_classes, num_classes).index_add_(0, labels[pick], scores[pick])
    counts = torch.bincount(labels[pick], minlength=num_classes).float()[:, None]
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("nan")))


@register_analysis("gate_similarity", depends=("gate",), title="Feature/gate similarity")
def gate_similarity(ctx):
    """Cost O(N K C) (features times the gate's rows); memory O(N C)."""
    test = ctx.test
    gate = torch.tensor(ctx.result("gate")["gate"])
    return {name: tolist(similarity_matrix(test.features, test.labels, test.predictions, gate, ctx.num_classes, tp))
            for name, tp in (("tp", True), ("fn", False))}
