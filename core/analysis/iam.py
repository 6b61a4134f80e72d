"""Independent activation maximisation and Representative Substitution, all units in one batch.

IAM(i) = argmax over inputs of a_i - mean(a_-i) (the paper's Eq. 3; `method="am"` is plain
activation maximisation, argmax a_i, its Eq. 2 baseline); RS(i) = the number of units whose
activation on IAM(i) exceeds a_i divided by the layer's K units (Eq. 4; `rs_of_others` divides by
the K - 1 other units, this tool's earlier definition).
"""
import torch

from ..errors import UserError
from .base import register_analysis, spearman, tolist
from ..models.base import pooled_outputs
from .features import exact_float32
from .layers import depth_layer, selectivity_of_layer

METHODS = ("iam", "am")
METHOD_LABELS = {"iam": "IAM (Eq. 3: the unit above its layer's mean)", "am": "AM (Eq. 2: the unit alone)"}
MORE_ACTIVE_KEPT = 8  # per unit, the units most active above it on its image (the paper's Fig. 2)


def unit_activations(model, layer=None):
    """x -> (N, K) activations of the units: the penultimate features, or a depth layer's channels
    averaged over space (a hook on `layer`)."""
    if layer is None:
        return lambda x: model.forward_parts(x).features

    def pooled(x):
        with pooled_outputs({"layer": layer}) as seen:
            model.forward_parts(x)
        return seen["layer"]
    return pooled


def iam_images(model, size: int, channels: int, steps: int = 150, lr: float = 0.05, seed: int = 0,
               low: torch.Tensor | None = None, high: torch.Tensor | None = None, progress=None,
               method: str = "iam", layer=None):
    """(K, C, H, W) optimised inputs (normalised space) and the (K, K) activations on them, on
    the CPU; the optimisation runs where the model is (the start is drawn on the CPU, so a
    seed gives the same start everywhere). progress(done, total) every 10 steps: a minute on a
    CPU, so the bar moves (and the app's Stop is heard) while it runs. `method` "am" drops the
    other units' mean from the objective. `layer`: a depth layer whose channels are the units
    (None: the penultimate units)."""
    model.eval()
    device = next(model.parameters()).device
    activations = unit_activations(model, layer)
    with torch.no_grad():
        k = activations(torch.zeros(1, channels, size, size, device=device)).shape[1]
    generator = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(k, channels, size, size, generator=generator)).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    eye = torch.eye(k, dtype=torch.bool, device=device)
    if low is not None:
        low, high = low.to(device), high.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with exact_float32(device):
            for step in range(steps):
                if progress and step % 10 == 0:
                    progress(step, steps)
                a = activations(x)  # (K, K): row i is image i
                own = a[eye]
                others = a.masked_fill(eye, 0).sum(dim=1) / (k - 1) if method == "iam" else 0
                loss = -(own - others).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if low is not None:
                    with torch.no_grad():
                        x.data = torch.maximum(torch.minimum(x.data, high), low)
            with torch.no_grad():
                a = activations(x)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return x.detach().cpu(), a.cpu()


def above_own(activations: torch.Tensor) -> torch.Tensor:
    """(K, K) bool: on unit i's image (row i), which other units are more active than i."""
    own = activations.diagonal()
    return (activations > own[:, None]) & ~torch.eye(activations.shape[0], dtype=torch.bool)


def units_above(activations: torch.Tensor) -> torch.Tensor:
    """(K,) per unit i, how many units are more active than i on i's image."""
    return above_own(activations).sum(dim=1)


def representative_substitution(activations: torch.Tensor) -> torch.Tensor:
    """Eq. 4: the units above i on IAM(i) over all K units of the layer."""
    return units_above(activations).double() / activations.shape[0]


def rs_of_others(activations: torch.Tensor) -> torch.Tensor:
    """The earlier variant: over the K - 1 other units (1 when every other unit is above)."""
    return units_above(activations).double() / max(1, activations.shape[0] - 1)


def more_active(activations: torch.Tensor, most: int = MORE_ACTIVE_KEPT) -> list[list[int]]:
    """Per unit, the units above it on its own image, most active first (at most `most`)."""
    order = torch.argsort(activations, dim=1, descending=True, stable=True)
    kept = above_own(activations).gather(1, order)  # one sort for all rows, not K^2 scalar reads (K = 2048)
    return [row[mask][:most].tolist() for row, mask in zip(order, kept)]


@register_analysis("iam", version=3, on_request=True, title="IAM and RS", steps=150, lr=0.05, seed=0, method="iam",
                   layer="")
def iam(ctx, steps, lr, seed, method, layer):
    """The images, RS by the paper's definition and the earlier one, the units above each unit
    on its image, and RS against selectivity (the paper's Fig. 1) and against the unit's largest
    class drop when ablated (its explanation of why selective units matter little); None where
    selectivity does not apply. `layer` "" is the penultimate units; a depth layer's name takes
    its channels (the paper's layers, Fig. 3b), RS against that layer's selectivity (no drop:
    ablating a layer's channels is `layer_ablation`, on request). Cost: `steps` forward and
    backward passes of a batch of K images; memory that batch."""
    if method not in METHODS:
        raise UserError(f"IAM method must be one of {', '.join(METHODS)}, not {str(method)[:20]!r}")
    layer_module = depth_layer(ctx.device_model, layer)[1] if layer else None
    meta = ctx.meta
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    images, acts = iam_images(ctx.device_model, int(meta["input_size"]), int(meta["channels"]), steps, lr, seed,
                              low=-mean / std, high=(1 - mean) / std, method=method, layer=layer_module,
                              progress=lambda done, total: ctx.progress("IAM: optimising each unit's image", done, total))
    pixels = ((images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    rs = representative_substitution(acts)
    result = {"method": method, "layer": layer, "rs": tolist(rs), "rs_of_others": tolist(rs_of_others(acts)),
              "own_activation": tolist(acts.diagonal()), "more_active": more_active(acts),
              "images": tolist(pixels), "spearman_rs_selectivity": None, "spearman_rs_drop": None}
    if layer:
        si = selectivity_of_layer(ctx, layer)
        if si:
            result["spearman_rs_selectivity"] = spearman(rs, torch.tensor(si, dtype=torch.float64))
    elif ctx.model.nonnegative_units:
        si = torch.tensor(ctx.result("selectivity")["per_unit"], dtype=torch.float64)
        drop = torch.tensor(ctx.result("unit_ablation")["max_class_drop"], dtype=torch.float64)
        result["spearman_rs_selectivity"], result["spearman_rs_drop"] = spearman(rs, si), spearman(rs, drop)
    return result
