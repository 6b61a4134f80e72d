"""Influential features per class (Badola et al., Alg. 1) and the decomposed softmax."""
import torch

from ..errors import UserError
from .base import accuracy_of, register_analysis, tolist

SWEEP = (1, 2, 3, 5, 8, 10, 16, 32)


def index_frequencies(features: torch.Tensor, labels: torch.Tensor, num_classes: int, k1: int) -> torch.Tensor:
    """(C, K) counts: how many images of each class have unit k among their top-k1 (the paper's
    Fig. 2 histogram)."""
    top = features.topk(min(k1, features.shape[1]), dim=1).indices
    counts = torch.zeros(num_classes, features.shape[1])
    counts.index_put_((labels[:, None].expand_as(top), top), torch.ones_like(top, dtype=torch.float), accumulate=True)
    return counts


def sets_from_frequencies(counts: torch.Tensor, k2: int) -> torch.Tensor:
    """(C, k2) unit indices: each class's k2 most frequent (a stable sort on -counts keeps the
    lower index first among ties)."""
    return torch.argsort(-counts, dim=1, stable=True)[:, :min(k2, counts.shape[1])]


def influential_sets(features: torch.Tensor, labels: torch.Tensor, num_classes: int, k1: int, k2: int) -> torch.Tensor:
    """(C, k2) unit indices: per class, histogram each image's top-k1 units, keep the k2 most
    frequent (ties: the lower index)."""
    return sets_from_frequencies(index_frequencies(features, labels, num_classes, k1), k2)


COVERAGE = 0.9  # the paper's alternative k1: each image's top units carrying 90% of its activation


def units_for_coverage(features: torch.Tensor, fraction: float = COVERAGE, block: int = 4096) -> torch.Tensor:
    """(N,) per image: the fewest top units whose activations sum to `fraction` of all its units'
    (Sec. 4: k1 "which covers 90% of the contribution of the filters"; the L1 norm, as Alg. 1 ranks
    units by it). Sorted in blocks of rows: memory O(block K). An all-zero image needs none."""
    counts = torch.empty(len(features), dtype=torch.long)
    for start in range(0, len(features), block):
        part = features[start:start + block].double().abs().sort(dim=1, descending=True).values
        cumulative = part.cumsum(dim=1)
        reached = cumulative >= fraction * cumulative[:, -1:] - 1e-12 * cumulative[:, -1:]
        counts[start:start + block] = torch.where(cumulative[:, -1] > 0, reached.int().argmax(dim=1) + 1, 0)
    return counts


def decomposed_logits(features, weight, bias, sets) -> torch.Tensor:
    """logit_c = sum over j in S_c of W[c, j] a_j + b_c."""
    mask = torch.zeros_like(weight, dtype=torch.bool)
    mask[torch.arange(len(sets))[:, None], sets] = True
    logits = features @ (weight * mask).T
    return logits + bias if bias is not None else logits


@register_analysis("influential", version=4, reads_training=True, title="Influential features", k1=5, k2=5)
def influential(ctx, k1, k2):
    """Alg. 1 with k1 (each image's top units) and k2 (each class's kept units) apart, as the
    paper's Fig. 3; `frequencies` is its Fig. 2 histogram (C x K counts at k1); the sweep keeps
    k1 = k2 = k. The decomposed logits are the paper's, sum over S_c of W[c, j] a_j without the
    bias; `A_d_with_bias` and `r_A_with_bias` add b_c, this tool's earlier definition. `coverage`:
    how many units carry 90% of a training image's activation (the paper's other way to pick k1),
    its median over all images and per class. Cost O(N_train K log K) (top-k1 and the coverage sort,
    in blocks of 4096 rows) and one N x K by K x C product per k of the sweep, O(|SWEEP| N K C);
    memory O(N C + 4096 K + C K). No forward pass."""
    if not (1 <= k1 <= ctx.W.shape[1] and 1 <= k2 <= ctx.W.shape[1]):
        raise UserError(f"k1 and k2 must lie in 1..{ctx.W.shape[1]} (the units), got k1 {k1}, k2 {k2}")
    train, test = ctx.train, ctx.test
    full = accuracy_of(test.logits, test.labels)

    ratio = lambda accuracy: accuracy / full if full else None  # noqa: E731
    frequencies = index_frequencies(train.features, train.labels, ctx.num_classes, k1)
    sets = sets_from_frequencies(frequencies, k2)
    decomposed = accuracy_of(decomposed_logits(test.features, ctx.W, None, sets), test.labels)
    with_bias = accuracy_of(decomposed_logits(test.features, ctx.W, ctx.b, sets), test.labels)
    sweep = []
    for k in SWEEP:
        if k <= ctx.W.shape[1]:
            swept = influential_sets(train.features, train.labels, ctx.num_classes, k, k)
            accuracy = accuracy_of(decomposed_logits(test.features, ctx.W, None, swept), test.labels)
            sweep.append({"k": k, "A_d": accuracy, "r_A": ratio(accuracy)})
    needed = units_for_coverage(train.features)
    coverage = {"fraction": COVERAGE, "median": float(needed.double().quantile(0.5)), "mean": float(needed.double().mean()),
                "per_class_median": [float(needed[train.labels == c].double().quantile(0.5)) if bool((train.labels == c).any())
                                     else None for c in range(ctx.num_classes)]}
    return {"k1": k1, "k2": k2, "sets": tolist(sets), "frequencies": tolist(frequencies.long()), "A_f": full,
            "coverage": coverage,
            "A_d": decomposed, "r_A": ratio(decomposed),
            "A_d_with_bias": with_bias, "r_A_with_bias": ratio(with_bias), "sweep": sweep}
