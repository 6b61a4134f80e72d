"""Label Sensitive Gate: the C x K gate G, its sparsity term, its constraint, its schedule,
and the post-hoc fit that defines Phi (filter ambiguity) for any model.

Because the head is linear after global average pooling, gating the maps before the pool is
`G_y * a` after it: the gated path and the post-hoc fit only need pooled features `a`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def constrain_gate_(gate: torch.Tensor) -> torch.Tensor:
    """In place: divide each unit's column by its max over classes, then clip to [0, 1].
    A column whose max is not positive is left as is (then clipped), never divided by zero."""
    col_max = gate.max(dim=0, keepdim=True).values
    safe = torch.where(col_max > 0, col_max, torch.ones_like(col_max))
    gate.div_(safe).clamp_(0.0, 1.0)
    return gate


def sparsity_term(gate: torch.Tensor, target_l1: float, one_sided: bool) -> torch.Tensor:
    """`| ||G||_1 - s |` (the paper) or `relu(||G||_1 - s)` (the published code)."""
    excess = gate.abs().sum() - target_l1
    return F.relu(excess) if one_sided else excess.abs()


def gated_logits(features: torch.Tensor, labels: torch.Tensor, gate: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`W (G_y * a) + b` for every image."""
    return F.linear(features * gate[labels], weight, bias)


def is_gated_step(epoch: int, step: int, period: int, by_epoch: bool, warmup_epochs: int) -> bool:
    """Alternation of gated and standard steps. By epoch (as published): epoch % period ==
    period - 1 after the warm-up. By step (for short CPU runs): every period-th step."""
    if epoch < warmup_epochs:
        return False
    counter = epoch if by_epoch else step
    return counter % period == period - 1


def gate_density(gate: torch.Tensor) -> float:
    return float(gate.abs().sum() / gate.numel())


def single_class_fraction(gate: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of units whose column has exactly one entry >= threshold."""
    return float(((gate >= threshold).sum(dim=0) == 1).float().mean())


def fit_gate(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None, init: torch.Tensor | None = None, rho: float = 0.2,
             steps: int = 300, lr: float = 0.05, batch_size: int = 4096, seed: int = 0) -> dict:
    """Phi = min over G of CE(gated) + |density(G) - rho| with the network frozen, under the
    normalise-and-clip constraint; starts from `init` (an LSG model's trained gate) or 0.5.

    Adam on a C x K parameter over cached features; returns gate, phi, gated CE, density and
    the fraction of single-class units, with phi evaluated on all of `features`.
    """
    num_classes, num_features = weight.shape
    gate = (init.detach().clone().float() if init is not None
            else torch.full((num_classes, num_features), 0.5))
    gate.requires_grad_(True)
    optimizer = torch.optim.Adam([gate], lr=lr)
    weight, bias = weight.detach().float(), None if bias is None else bias.detach().float()
    generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        loss = phi_objective(features[idx], labels[idx], gate, weight, bias, rho)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        constrain_gate_(gate.data)
    gate = gate.detach()
    with torch.no_grad():
        ce = F.cross_entropy(gated_logits(features, labels, gate, weight, bias), labels)
        density = gate_density(gate)
    return {"gate": gate, "phi": float(ce) + abs(density - rho), "gated_ce": float(ce),
            "density": density, "single_class_fraction": single_class_fraction(gate)}


def phi_objective(features, labels, gate, weight, bias, rho: float) -> torch.Tensor:
    density = gate.abs().sum() / gate.numel()
    return F.cross_entropy(gated_logits(features, labels, gate, weight, bias), labels) + (density - rho).abs()
