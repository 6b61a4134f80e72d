"""Filter correlation of the last conv layer and C_IC (LSG paper, Fig. 7 and Table 2)."""
import torch

from .base import register_analysis, tolist


def filter_correlation(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.detach().flatten(1).double()
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (flat @ flat.T).float()


def dominant_filters(gate: torch.Tensor, head: torch.Tensor, m: int) -> torch.Tensor:
    """(C, m): per class the m units with the largest gate entry, ties broken by head weight."""
    score = gate.double() + 1e-6 * torch.tanh(head.double())
    return score.topk(m, dim=1).indices


def inter_class_correlation(corr: torch.Tensor, dominant: torch.Tensor) -> tuple[float, float]:
    """C_IC: mean correlation between dominant filters of different classes (a filter never
    with itself); and the same mean within each class, for contrast."""
    between, within = [], []
    sets = dominant.tolist()
    for i, di in enumerate(sets):
        for j, dj in enumerate(sets):
            pairs = [corr[a, b].item() for a in di for b in dj if a != b]
            (within if i == j else between).extend(pairs)
    mean = lambda values: sum(values) / len(values) if values else float("nan")  # noqa: E731
    return mean(between), mean(within)


@register_analysis("filter_correlation", version=2, depends=("gate",), title="Filter correlation",
                   needs_unit_filters=True, m=0)
def filter_correlation_analysis(ctx, m):
    corr = filter_correlation(ctx.model.unit_filters.weight)
    gate = torch.tensor(ctx.result("gate")["gate"])
    m = m or max(1, ctx.W.shape[1] // ctx.num_classes)
    dominant = dominant_filters(gate, ctx.W, m)
    c_ic, within = inter_class_correlation(corr, dominant)
    order = ctx.result("gate")["order"]
    return {"matrix": tolist(corr[order][:, order]), "order": order, "m": m, "dominant": tolist(dominant),
            "c_ic": c_ic, "within_class": within}
