"""Independent activation maximisation and Representative Substitution, all units in one batch.

IAM(i) = argmax over inputs of a_i - mean(a_-i); RS(i) = fraction of the other units whose
activation on IAM(i) exceeds a_i.
"""
import torch

from .base import register_analysis, tolist
from .features import exact_float32


def iam_images(model, size: int, channels: int, steps: int = 150, lr: float = 0.05, seed: int = 0,
               low: torch.Tensor | None = None, high: torch.Tensor | None = None, progress=None):
    """(K, C, H, W) optimised inputs (normalised space) and the (K, K) activations on them, on
    the CPU; the optimisation runs where the model is (the start is drawn on the CPU, so a
    seed gives the same start everywhere). progress(done, total) every 10 steps: a minute on a
    CPU, so the bar moves (and the app's Stop is heard) while it runs."""
    model.eval()
    device = next(model.parameters()).device
    k = model.num_features
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
                a = model.forward_parts(x).features  # (K, K): row i is image i
                own = a[eye]
                others = a.masked_fill(eye, 0).sum(dim=1) / (k - 1)
                loss = -(own - others).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if low is not None:
                    with torch.no_grad():
                        x.data = torch.maximum(torch.minimum(x.data, high), low)
            with torch.no_grad():
                a = model.forward_parts(x).features
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return x.detach().cpu(), a.cpu()


def representative_substitution(activations: torch.Tensor) -> torch.Tensor:
    k = activations.shape[0]
    own = activations.diagonal()
    exceed = (activations > own[:, None]) & ~torch.eye(k, dtype=torch.bool)
    return exceed.float().sum(dim=1) / max(1, k - 1)


@register_analysis("iam", on_request=True, title="IAM and RS", steps=150, lr=0.05, seed=0)
def iam(ctx, steps, lr, seed):
    meta = ctx.meta
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    images, acts = iam_images(ctx.device_model, int(meta["input_size"]), int(meta["channels"]), steps, lr, seed,
                              low=-mean / std, high=(1 - mean) / std,
                              progress=lambda done, total: ctx.progress("IAM: optimising each unit's image", done, total))
    pixels = ((images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    return {"rs": tolist(representative_substitution(acts)), "own_activation": tolist(acts.diagonal()),
            "images": tolist(pixels)}
