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
    other C-1 class means. A dead unit (never active) gets 0. Float64 throughout."""
    return selectivity_from_means(class_means(features, labels, num_classes))


def selectivity_from_means(means: torch.Tensor) -> torch.Tensor:
    """SI per unit from the (C, K) class means (a training snapshot keeps only these)."""
    means = means.double()
    mu_max = means.max(dim=0).values
    mu_rest = (means.sum(dim=0) - mu_max) / (means.shape[0] - 1)
    return (mu_max - mu_rest) / (mu_max + mu_rest + 1e-7)


def quartiles(values: torch.Tensor) -> tuple[float, float, float]:
    """(q1, median, q3) the standard way: linear interpolation between order statistics (numpy's
    default, `torch.quantile`'s default), so the median of an even count is the mean of the two
    middle values (`torch.median` would give the lower one). NaN for no values."""
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    q = torch.quantile(values.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def dead_units(features: torch.Tensor) -> torch.Tensor:
    return features.max(dim=0).values <= 0


@register_analysis("selectivity", version=2, title="Unit selectivity", needs_nonnegative_units=True)
def selectivity(ctx):
    """Follows SPEC: SI on the test split, dead units reported and excluded from the summaries
    and the histogram, which use the standard median and quartiles (`quartiles`). Cost O(N K) (class
    sums of the cached features); memory O(C K)."""
    test = ctx.test
    si = selectivity_index(test.features, test.labels, ctx.num_classes)
    dead = dead_units(test.features)
    alive = si[~dead]
    q1, median, q3 = quartiles(alive)
    means = class_means(test.features, test.labels, ctx.num_classes)
    return {
        "per_unit": tolist(si), "dead": tolist(dead), "dead_count": int(dead.sum()),
        "median": median, "q1": q1, "q3": q3,
        "mean": float(alive.mean()) if len(alive) else float("nan"),
        "preferred_class": tolist(means.argmax(dim=0)),
        "class_means": tolist(means),
        "histogram": tolist(torch.histc(alive, bins=HISTOGRAM_BINS, min=0, max=1)),
    }


def unit_for_class(result: dict, cls: int) -> tuple[int | None, str]:
    """The unit a model gives most to class `cls`, read from its selectivity result: among live
    units whose preferred class it is, the most selective; when no unit prefers it, the live unit
    with the largest mean activation on it. Returns (unit, why), the why in words for the page;
    (None, why) when every unit is dead."""
    live = [k for k, dead in enumerate(result["dead"]) if not dead]
    if not live:
        return None, "every unit of this model is dead on the test split"
    preferring = [k for k in live if result["preferred_class"][k] == cls]
    if preferring:
        unit = max(preferring, key=lambda k: result["per_unit"][k])
        return unit, f"the most selective of the {len(preferring)} unit(s) that prefer this class"
    unit = max(live, key=lambda k: result["class_means"][cls][k])
    return unit, "no unit prefers this class; the one most active on it"
