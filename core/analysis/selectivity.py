"""Class selectivity index (Morcos et al. 2018) per penultimate unit."""
import torch

from .base import register_analysis, tolist

HISTOGRAM_BINS = 20


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, K): mean feature of each unit over the images of each class."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64).index_add_(0, labels, features.double())
    return sums / torch.bincount(labels, minlength=num_classes).clamp_min(1).double()[:, None]


def selectivity_index(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """SI = (mu_max - mu_-max) / (mu_max + mu_-max + 1e-7) per unit; mu_-max is the mean of the
    other C-1 class means. A dead unit (never active) gets 0."""
    means = class_means(features, labels, num_classes)
    mu_max = means.max(dim=0).values
    mu_rest = (means.sum(dim=0) - mu_max) / (num_classes - 1)
    return ((mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)).float()


def dead_units(features: torch.Tensor) -> torch.Tensor:
    return features.max(dim=0).values <= 0


@register_analysis("selectivity", title="Unit selectivity")
def selectivity(ctx):
    test = ctx.test
    si = selectivity_index(test.features, test.labels, ctx.num_classes)
    dead = dead_units(test.features)
    alive = si[~dead]
    means = class_means(test.features, test.labels, ctx.num_classes)
    return {
        "per_unit": tolist(si), "dead": tolist(dead), "dead_count": int(dead.sum()),
        "median": float(alive.median()) if len(alive) else float("nan"),
        "mean": float(alive.mean()) if len(alive) else float("nan"),
        "preferred_class": tolist(means.argmax(dim=0)),
        "class_means": tolist(means),
        "histogram": tolist(torch.histc(alive, bins=HISTOGRAM_BINS, min=0, max=1)),
    }
