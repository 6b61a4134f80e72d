"""Where influential and non-influential units look (Badola et al., Table 7): their maps averaged
over each class's images, beside all units' mean map."""
import torch

from ..errors import UserError
from .base import register_analysis, tolist
from .features import batch_size_for, exact_float32
from .influential import index_frequencies, sets_from_frequencies

GROUPS = ("all units", "influential", "non-influential")


def other_units(sets: torch.Tensor, alive: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """(C, k) per class k units drawn at random (seeded) among the live units outside its
    influential set: the paper's "k filters from other filters for the same class". A dead unit
    (never active on the training images) is left out: its map is empty for every class."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for chosen in sets:
        candidates = torch.nonzero(alive).flatten()
        candidates = candidates[~torch.isin(candidates, chosen)]
        rows.append(candidates[torch.randperm(len(candidates), generator=generator)[:k]])
    width = min(len(row) for row in rows)
    return torch.stack([row[:width] for row in rows])


@register_analysis("influential_maps", version=2, on_request=True, reads_training=True, title="Maps of influential features",
                   needs_unit_maps=True, k1=5, k2=5, seed=0)
def influential_maps(ctx, k1, k2, seed):
    """Per class, over its analysed test images: the mean over its k2 influential units (Alg. 1 on
    the training features) of their maps, the same for k2 other live units drawn at random
    (`other_units`, seeded), and for all units, at the units' own resolution (the page upsamples them over the class's first image);
    `mean_activation` is each group's mean pooled activation on the class's images. Cost: one
    forward pass over the test split; memory O(3 C h w)."""
    train = ctx.train
    counts = index_frequencies(train.features, train.labels, ctx.num_classes, k1)
    influential = sets_from_frequencies(counts, k2)
    alive = train.features.max(dim=0).values > 0
    sets = {"influential": influential, "non-influential": other_units(influential, alive, k2, seed)}
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
    if sums is None:
        raise UserError("no test image could be read, so there is no map to average")
    means = sums / images.clamp_min(1)[:, None, None, None]
    test_labels = ctx.test.labels
    first = [torch.nonzero(test_labels == c).flatten()[:1] for c in range(ctx.num_classes)]
    return {"k1": k1, "k2": k2, "groups": list(GROUPS), "maps": tolist(means),
            "mean_activation": tolist(means.mean(dim=(2, 3))), "images": tolist(images.long()),
            "influential": tolist(sets["influential"]), "non_influential": tolist(sets["non-influential"]),
            "example": [int(ctx.split_indices(f)[0]) if len(f) else None for f in first]}
