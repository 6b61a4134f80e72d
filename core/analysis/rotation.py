"""The random-rotation control of unit ablation (the ablation abstract): the same single-direction
ablation in a randomly rotated basis of the units. Logits are unchanged by the rotation
(W a = (W Q)(Q^T a)); if the units' class-specific drops were only an effect of ablating any one
direction, rotated directions would drop classes as much as units do."""
import torch

from .base import register_analysis, tolist
from .unit_ablation import drop_matrix


def random_rotation(size: int, seed: int) -> torch.Tensor:
    """A (size, size) orthogonal matrix drawn uniformly (Haar): QR of a Gaussian matrix with the
    signs of R's diagonal folded into Q, in float64, from a CPU generator (the same on every machine)."""
    gaussian = torch.randn(size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r))


def rotated_drops(features, logits, labels, weight, num_classes, rotation):
    """(K, C) class drops and (K,) overall drops with each rotated direction zeroed in turn: the
    features a Q, the head W Q."""
    rotated = (features.double() @ rotation).to(features.dtype)
    return drop_matrix(rotated, logits, labels, (weight.double() @ rotation).to(weight.dtype), num_classes)


@register_analysis("rotation_control", depends=("unit_ablation",), title="Random-rotation control", seed=0)
def rotation_control(ctx, seed):
    """Per rotated direction the largest class drop and the overall drop, beside the units' own
    means (from unit_ablation). Memory O(N K) for the rotated features and unit ablation's blocks of
    ablated logits; time O(N K C), as unit ablation."""
    test = ctx.test
    rotation = random_rotation(ctx.W.shape[1], seed)
    drop, overall = rotated_drops(test.features, test.logits, test.labels, ctx.W, ctx.num_classes, rotation)
    units = ctx.result("unit_ablation")
    max_drop = drop.max(dim=1).values
    unit_max = torch.tensor(units["max_class_drop"], dtype=torch.float64)
    return {"seed": seed, "max_class_drop": tolist(max_drop), "overall_drop": tolist(overall),
            "mean_max_class_drop": float(max_drop.mean()), "unit_mean_max_class_drop": float(unit_max.mean()),
            "largest_class_drop": float(max_drop.max()), "unit_largest_class_drop": float(unit_max.max()),
            "mean_overall_drop": float(overall.mean()), "unit_mean_overall_drop": units["mean_overall_drop"]}
