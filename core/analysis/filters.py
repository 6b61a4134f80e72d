"""Filter correlation of the last conv layer, its redundancy curve and C_IC (LSG paper, Fig. 7
and Table 2)."""
import torch

from ..errors import UserError
from .base import register_analysis, tolist

MAX_MATRIX_UNITS = 512  # the K x K matrix is kept up to here (a ResNet-50's would be 4 million numbers)


def filter_correlation(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.detach().flatten(1).double()
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (flat @ flat.T).float()


def dominant_filters(score: torch.Tensor, head: torch.Tensor, m: int) -> torch.Tensor:
    """(C, m): per class the m units with the largest score (class-mean activation, or gate
    entry), ties broken by head weight."""
    score = score.double() + 1e-6 * torch.tanh(head.double())
    return score.topk(m, dim=1).indices


REDUNDANCY_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))  # 0, 0.05, ..., 0.95


def redundancy(corr: torch.Tensor, thresholds=REDUNDANCY_THRESHOLDS) -> list[float]:
    """Fig. 7e: for each threshold s, the share of filter pairs correlated above it (a_ij > s), over
    the K (K - 1) entries off the diagonal (a filter with itself is 1 whatever the training)."""
    off = corr[~torch.eye(len(corr), dtype=torch.bool)].double()
    return [float((off > s).double().mean()) if len(off) else float("nan") for s in thresholds]


DOMINANT_BY = ("activation", "gate")  # the paper's (Sec. 4.3: a class's most activated filters), this tool's earlier


def inter_class_correlation(corr: torch.Tensor, dominant: torch.Tensor) -> tuple[float, float]:
    """C_IC: mean correlation between dominant filters of different classes (a filter never
    with itself); and the same mean within each class, for contrast.

    As matrices, not a loop over pairs (C^2 m^2 of them: 4 million at C = 4, K = 2048): with P the
    (C, K) membership of each class's dominant set, P corr P^T sums every pair of sets, P diag(corr)
    P^T the pairs of a filter with itself, P P^T counts those. Memory O(CK + K^2), time O(C K^2)."""
    num_classes, num_filters = dominant.shape[0], corr.shape[0]
    member = torch.zeros(num_classes, num_filters, dtype=torch.float64)
    member[torch.arange(num_classes)[:, None], dominant] = 1.0
    corr = corr.double()
    sums = member @ corr @ member.T - (member * corr.diagonal()) @ member.T
    counts = member.sum(1)[:, None] * member.sum(1)[None, :] - member @ member.T
    same = torch.eye(num_classes, dtype=torch.bool)
    mean = lambda mask: float(sums[mask].sum() / counts[mask].sum()) if counts[mask].sum() > 0 else float("nan")  # noqa: E731
    return mean(~same), mean(same)


@register_analysis("filter_correlation", version=4, depends=("gate",), title="Filter correlation",
                   needs_unit_filters=True, m=0, by="activation")
def filter_correlation_analysis(ctx, m, by):
    """C_IC over each class's m dominant filters (m = K / C by default): by default, as the paper,
    those with the largest mean activation on the class's test images; `by="gate"`, those with
    the largest gate entry (the gate shown: trained, or the post-hoc fit). The correlation matrix
    is ordered by the gate's class assignment; `redundancy` is Fig. 7e's curve over `thresholds`.
    Cost O(K^2 D) for the correlations of K filters of D weights, O(N K) for the class means,
    O(C K^2) for C_IC; memory O(K^2 + C K) (the K x K matrix is the payload: 16 MB as JSON at
    K = 2048). No forward pass."""
    from .selectivity import class_means
    if by not in DOMINANT_BY:
        raise UserError(f"dominant filters by {', '.join(DOMINANT_BY)}, not {str(by)[:20]!r}")
    corr = filter_correlation(ctx.model.unit_filters.weight)
    score = (class_means(ctx.test.features, ctx.test.labels, ctx.num_classes) if by == "activation"
             else torch.tensor(ctx.result("gate")["gate"]))
    m = m or max(1, ctx.W.shape[1] // ctx.num_classes)
    dominant = dominant_filters(score, ctx.W, m)
    c_ic, within = inter_class_correlation(corr, dominant)
    order = ctx.result("gate")["order"]
    matrix = tolist(corr[order][:, order]) if len(order) <= MAX_MATRIX_UNITS else None
    return {"matrix": matrix, "order": order, "m": m, "by": by, "dominant": tolist(dominant),
            "c_ic": c_ic, "within_class": within,
            "thresholds": list(REDUNDANCY_THRESHOLDS), "redundancy": redundancy(corr)}
