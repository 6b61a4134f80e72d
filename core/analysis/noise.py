"""Noise ablation (Badola et al., Table 8): replace a class's influential features, or all its
non-influential ones, on that class's test images; algebra on cached features."""
import torch

from .base import accuracy_of, register_analysis
from .influential import influential_sets

MODES = ("gaussian", "matched", "zero")


def replace_features(features, labels, sets, influential: bool, mode: str, generator, mean=None, std=None):
    """Each image's own class set (or its complement) replaced by noise or zero."""
    mask = torch.zeros(len(sets), features.shape[1], dtype=torch.bool)
    mask[torch.arange(len(sets))[:, None], sets] = True
    mask = mask[labels] if influential else ~mask[labels]
    if mode == "zero":
        noise = torch.zeros_like(features)
    else:
        noise = torch.randn(features.shape, generator=generator)
        if mode == "matched":
            noise = noise * std + mean
    return torch.where(mask, noise, features)


@register_analysis("noise_ablation", title="Noise ablation", k1=5, k2=5, seed=0)
def noise_ablation(ctx, k1, k2, seed):
    train, test = ctx.train, ctx.test
    sets = influential_sets(train.features, train.labels, ctx.num_classes, k1, k2)
    mean, std = train.features.mean(dim=0), train.features.std(dim=0)
    result = {"baseline": accuracy_of(test.logits, test.labels), "k1": k1, "k2": k2}
    for mode in MODES:
        generator = torch.Generator().manual_seed(seed)
        row = {}
        for name, influential in (("influential", True), ("non_influential", False)):
            changed = replace_features(test.features, test.labels, sets, influential, mode, generator, mean, std)
            row[name] = accuracy_of(torch.nn.functional.linear(changed, ctx.W, ctx.b), test.labels)
        result[mode] = row
    return result
