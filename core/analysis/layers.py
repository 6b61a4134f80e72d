"""Selectivity layer by layer (RS paper, Fig. 3b; the unit-ablation paper's every layer): each
channel of each of the model's depth layers is a unit, its activation the spatial mean of its map."""
import torch

from .base import register_analysis, tolist
from .features import batch_size_for, exact_float32
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
    batch = {}

    def keep(name):
        def hook(module, inputs, output):
            pooled = output.float().mean(dim=(2, 3))[batch["readable"]].double().cpu()
            if sums[name].shape[1] == 0:
                sums[name] = torch.zeros(ctx.num_classes, pooled.shape[1], dtype=torch.float64)
                peaks[name] = torch.full((pooled.shape[1],), -torch.inf, dtype=torch.float64)
            sums[name].index_add_(0, batch["labels"], pooled)
            peaks[name] = torch.maximum(peaks[name], pooled.max(dim=0).values)
        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in layers.items()]
    device = next(model.parameters()).device
    side = ctx.meta.get("input_size", 32)
    done = 0
    try:
        model.eval()
        with torch.inference_mode(), exact_float32(device):
            for images, readable, labels in ctx.image_batches(batch_size_for(model, side * side)):
                if not bool(readable.any()):
                    continue
                batch.update(readable=readable.to(device), labels=labels[readable])
                counts += torch.bincount(batch["labels"], minlength=ctx.num_classes).double()
                model.forward_parts(images.to(device).contiguous(memory_format=torch.channels_last))
                done += int(readable.sum())
                ctx.progress("selectivity by layer", done, total)
    finally:
        for handle in handles:
            handle.remove()
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
