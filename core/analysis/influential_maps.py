"""Where influential and non-influential units look (Badola et al., Table 7): their maps averaged
over each class's images, beside all units' mean map."""
import torch

from .base import register_analysis, tolist
from .features import batch_size_for, exact_float32
from .influential import index_frequencies, sets_from_frequencies

GROUPS = ("all units", "influential", "non-influential")


def least_frequent(counts: torch.Tensor, k: int) -> torch.Tensor:
    """(C, k) per class its k least frequent units among its images' top k1 (ties: the lower
    index): the paper's "k filters from other filters for the same class", chosen so that they
    are as far from influential as the class allows."""
    return torch.argsort(counts, dim=1, stable=True)[:, :min(k, counts.shape[1])]


@register_analysis("influential_maps", version=1, on_request=True, title="Maps of influential features", k1=5, k2=5)
def influential_maps(ctx, k1, k2):
    """Per class, over its analysed test images: the mean over its k2 influential units (Alg. 1 on
    the training features) of their maps, the same for its k2 least frequent units, and for all
    units, at the units' own resolution (the page upsamples them over the class's first image);
    `mean_activation` is each group's mean pooled activation on the class's images. Cost: one
    forward pass over the test split; memory O(3 C h w)."""
    train = ctx.train
    counts = index_frequencies(train.features, train.labels, ctx.num_classes, k1)
    sets = {"influential": sets_from_frequencies(counts, k2), "non-influential": least_frequent(counts, k2)}
    model = ctx.device_model
    device = next(model.parameters()).device
    side = ctx.meta.get("input_size", 32)
    sums, images = None, torch.zeros(ctx.num_classes, dtype=torch.float64)
    total, done = len(ctx.test.labels), 0
    model.eval()
    with torch.inference_mode(), exact_float32(device):
        for batch, readable, labels in ctx.image_batches(batch_size_for(model, side * side)):
            if not bool(readable.any()):
                continue
            maps = model.forward_features(batch[readable].to(device)).double().cpu()  # (B, K, h, w)
            labels = labels[readable]
            if sums is None:
                sums = torch.zeros(ctx.num_classes, len(GROUPS), *maps.shape[2:], dtype=torch.float64)
            rows = torch.arange(len(labels))[:, None]
            grouped = torch.stack([maps.mean(dim=1)] + [maps[rows, units[labels]].mean(dim=1)
                                                        for units in sets.values()], dim=1)
            sums.index_add_(0, labels, grouped)
            images += torch.bincount(labels, minlength=ctx.num_classes).double()
            done += len(labels)
            ctx.progress("maps of influential units", done, total)
    means = sums / images.clamp_min(1)[:, None, None, None]
    test_labels = ctx.test.labels
    first = [torch.nonzero(test_labels == c).flatten()[:1] for c in range(ctx.num_classes)]
    return {"k1": k1, "k2": k2, "groups": list(GROUPS), "maps": tolist(means),
            "mean_activation": tolist(means.mean(dim=(2, 3))), "images": tolist(images.long()),
            "influential": tolist(sets["influential"]), "non_influential": tolist(sets["non-influential"]),
            "example": [int(ctx.split_indices(f)[0]) if len(f) else None for f in first]}
