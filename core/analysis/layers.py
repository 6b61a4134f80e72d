"""Units in every layer, not only the penultimate ones (RS paper, Fig. 3b; the unit-ablation
paper's layers): each channel of a depth layer is a unit, its activation the spatial mean of its
map. Selectivity by layer, and single-unit ablation in a chosen layer."""
import torch

from ..data import first_per_class
from ..errors import UserError
from .base import ANALYSES, register_analysis, spearman, tolist
from ..models.base import pooled_outputs
from .features import batch_size_for, exact_float32, extract
from .selectivity import quartiles, selectivity_from_means

MAX_PER_UNIT = 4096  # per-unit values are kept up to here a layer


@register_analysis("layer_selectivity", version=1, on_request=True, title="Selectivity by layer",
                   needs_nonnegative_units=True)
def layer_selectivity(ctx):
    """One pass over the analysed images with a hook on every depth layer (`depth_layers`), each
    keeping per-class sums of its pooled channels and their maxima, never the maps: memory
    O(C K_layer) a layer, time one forward pass. SI as the penultimate units' (dead channels, never
    active, excluded from the summaries); a layer whose class means take a negative value (no ReLU
    after it) has no SI and says so."""
    total = len(ctx.test.labels)  # the features' own pass first: it must not run through the hooks below
    model = ctx.device_model
    layers = model.depth_layers()
    sums = {name: torch.zeros(ctx.num_classes, 0, dtype=torch.float64) for name in layers}
    peaks, counts = {}, torch.zeros(ctx.num_classes, dtype=torch.float64)
    device = next(model.parameters()).device
    side = ctx.meta.get("input_size", 32)
    done = 0
    model.eval()
    with pooled_outputs(layers) as seen, torch.inference_mode(), exact_float32(device):
        for images, readable, labels in ctx.image_batches(batch_size_for(model, side * side)):
            if not bool(readable.any()):
                continue
            labels, kept = labels[readable], readable.to(device)
            counts += torch.bincount(labels, minlength=ctx.num_classes).double()
            model.forward_parts(images.to(device).contiguous(memory_format=torch.channels_last))
            for name, output in seen.items():
                pooled = output[kept].double().cpu()
                if sums[name].shape[1] == 0:
                    sums[name] = torch.zeros(ctx.num_classes, pooled.shape[1], dtype=torch.float64)
                    peaks[name] = torch.full((pooled.shape[1],), -torch.inf, dtype=torch.float64)
                sums[name].index_add_(0, labels, pooled)
                peaks[name] = torch.maximum(peaks[name], pooled.max(dim=0).values)
            done += int(readable.sum())
            ctx.progress("selectivity by layer", done, total)
    rows = []
    for name in layers:
        means = sums[name] / counts.clamp_min(1)[:, None]
        row = {"layer": name, "units": means.shape[1]}
        if bool((means < 0).any()):
            rows.append({**row, "median": None, "reason": "its activations take either sign (no ReLU after it)"})
            continue
        si = selectivity_from_means(means)
        dead = peaks[name] <= 0
        q1, median, q3 = quartiles(si[~dead])
        rows.append({**row, "median": median, "q1": q1, "q3": q3, "dead": int(dead.sum()),
                     "mean": float(si[~dead].mean()) if bool((~dead).any()) else None,
                     "per_unit": tolist(si) if means.shape[1] <= MAX_PER_UNIT else None})
    return {"layers": rows}


def depth_layer(model, name: str):
    """(name, module) of one of the model's depth layers; "" is the shallowest."""
    layers = model.depth_layers()
    name = name or next(iter(layers))
    if name not in layers:
        raise UserError(f"no layer {str(name)[:40]!r}; this model's are {', '.join(layers)}")
    return name, layers[name]


def layer_row(result: dict | None, name: str) -> dict:
    """One layer's row of a `layer_selectivity` result ({} where it has none)."""
    return next((row for row in (result or {}).get("layers", []) if row["layer"] == name), {})


def selectivity_of_layer(ctx, name: str) -> list[float] | None:
    """The channels' SI of one depth layer (computing `layer_selectivity` if need be), or None
    where it does not apply (units of either sign)."""
    if ANALYSES["layer_selectivity"].unsuited(ctx.model):
        return None
    return layer_row(ctx.result("layer_selectivity"), name).get("per_unit")


def zeroing(channel: int):
    """A forward hook that zeroes one channel of its layer's output (a new tensor: the layer's
    own output, which a residual path may reuse, is left as it was)."""
    def hook(module, inputs, output):
        output = output.clone()
        output[:, channel] = 0
        return output
    return hook


@register_analysis("layer_ablation", version=1, on_request=True, title="Single-unit ablation in a layer",
                   layer="", per_class=100)
def layer_ablation(ctx, layer, per_class):
    """Every channel of a depth layer zeroed in turn and the rest of the network run again on the
    first `per_class` test images of each class: the drop in each class's accuracy and in the
    overall accuracy (the ablation abstract's experiment at any layer; `unit_ablation` does the
    penultimate units exactly, without re-running). `layer` "" is the shallowest. Cost: K_layer
    forward passes over C * per_class images; memory one batch. Spearman of the largest class drop
    with the channels' selectivity (`layer_selectivity`, all test images) where the layer has it."""
    model = ctx.device_model
    name, target = depth_layer(model, layer)
    rows = first_per_class(ctx.test.labels, ctx.num_classes, per_class)
    labels = ctx.test.labels[rows]
    images = ctx.images(rows)

    def correct_per_class() -> torch.Tensor:
        hits = (extract(model, images, labels).predictions == labels).long()
        return torch.zeros(ctx.num_classes, dtype=torch.int64).index_add_(0, labels, hits)

    widths = []  # the unablated pass also reads the layer's width
    probe = target.register_forward_hook(lambda module, inputs, output: widths.append(output.shape[1]))
    try:
        base = correct_per_class()
    finally:
        probe.remove()
    channels = widths[0]
    ablated = torch.zeros(channels, ctx.num_classes, dtype=torch.int64)
    for k in range(channels):
        handle = target.register_forward_hook(zeroing(k))
        try:
            ablated[k] = correct_per_class()
        finally:
            handle.remove()
        ctx.progress(f"ablating {name}", k + 1, channels)
    counts = torch.bincount(labels, minlength=ctx.num_classes).clamp_min(1).double()
    drop = (base.unsqueeze(0) - ablated).double() / counts
    overall = (base.sum() - ablated.sum(dim=1)).double() / max(1, len(labels))
    max_drop, max_class = drop.max(dim=1)
    si = selectivity_of_layer(ctx, name)
    return {"layer": name, "layers": list(model.depth_layers()), "images": len(labels), "channels": channels,
            "base_accuracy": float(base.sum()) / max(1, len(labels)),
            "drop": tolist(drop), "overall_drop": tolist(overall), "max_class_drop": tolist(max_drop),
            "max_drop_class": tolist(max_class), "largest_overall_drop": float(overall.max()),
            "mean_overall_drop": float(overall.mean()),
            "spearman_selectivity": spearman(max_drop, torch.tensor(si, dtype=torch.float64)) if si else None}
