"""Noise ablation (Badola et al., Table 8): replace a class's influential features, or all its
non-influential ones, on that class's test images; algebra on cached features."""
import torch

from .base import accuracy_of, register_analysis
from .influential import influential_sets

MODES = ("gaussian", "matched", "zero")
RANDOM_MODES = ("gaussian", "matched")


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


def _accuracy(features, labels, weight, bias) -> float:
    """The head's accuracy on (possibly replaced) features."""
    return accuracy_of(torch.nn.functional.linear(features, weight, bias), labels)


def noise_accuracies(features, labels, sets, weight, bias, mode: str, seed: int, mean=None, std=None):
    """One run: (accuracy with the influential features replaced, accuracy with the
    non-influential ones replaced), both drawn from one generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(_accuracy(replace_features(features, labels, sets, influential, mode, generator, mean, std),
                           labels, weight, bias)
                 for influential in (True, False))


def summarise_runs(runs: list[tuple[float, float]], deterministic: bool = False) -> dict:
    """Mean and spread (sample standard deviation, n - 1) over seeded runs; the spread of a
    deterministic mode is 0, that of a single random run unknown (NaN, None in JSON)."""
    out = {"seeds": len(runs)}
    for i, name in enumerate(("influential", "non_influential")):
        values = torch.tensor([run[i] for run in runs], dtype=torch.float64)
        out[name] = float(values.mean())
        out[f"{name}_std"] = 0.0 if deterministic else float(values.std()) if len(values) > 1 else float("nan")
        out[f"{name}_per_seed"] = values.tolist()
    return out


@register_analysis("noise_ablation", version=2, title="Noise ablation", reads_training=True, k1=5, k2=5, seed=0, seeds=5)
def noise_ablation(ctx, k1, k2, seed, seeds):
    """Follows SPEC: the paper's unscaled N(0, 1) ("gaussian"), noise matched to each unit's
    training mean/std ("matched"), and zeroing ("zero"). Random modes: mean, spread (sample
    std) and per-seed values over `seeds` runs seeded seed, seed + 1, ...; "zero" is one
    deterministic run (std 0, seeds 1). The paper reports a single run. Cost O((2 seeds + 1) N K C)
    on the cached features; memory O(N K) for one noisy copy."""
    if seeds < 1:
        raise ValueError("noise_ablation needs seeds >= 1")
    train, test = ctx.train, ctx.test
    sets = influential_sets(train.features, train.labels, ctx.num_classes, k1, k2)
    mean, std = train.features.mean(dim=0), train.features.std(dim=0)
    result = {"baseline": _accuracy(test.features, test.labels, ctx.W, ctx.b), "k1": k1, "k2": k2}
    for mode in MODES:
        runs = [noise_accuracies(test.features, test.labels, sets, ctx.W, ctx.b, mode, s, mean, std)
                for s in (range(seed, seed + seeds) if mode in RANDOM_MODES else [seed])]
        result[mode] = summarise_runs(runs, deterministic=mode not in RANDOM_MODES)
    return result
