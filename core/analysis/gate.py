"""Phi (filter ambiguity, LSG paper Eq. 2) and the gate rows of every model."""
import torch

from .. import lsg
from .base import register_analysis, tolist


@register_analysis("gate", title="Gate and Phi", rho=0.2, steps=300, lr=0.05)
def gate(ctx, rho, steps, lr):
    """Fit G on cached training features with the network frozen; an LSG model starts from its
    trained gate, any other from 0.5. The shown gate is the trained one where there is one."""
    train = ctx.train
    trained = ctx.model.gate.detach().clone() if ctx.model.gate is not None else None
    fit = lsg.fit_gate(train.features, train.labels, ctx.W, ctx.b, init=trained, rho=rho, steps=steps, lr=lr)
    shown = trained if trained is not None else fit["gate"]
    return {
        "phi": fit["phi"], "gated_ce": fit["gated_ce"], "density": fit["density"],
        "single_class_fraction": fit["single_class_fraction"],
        "fitted_gate": tolist(fit["gate"]), "gate": tolist(shown),
        "source": "trained" if trained is not None else "post-hoc",
        "trained_density": lsg.gate_density(trained) if trained is not None else None,
        "assigned_class": tolist(shown.argmax(dim=0)),
        "order": tolist(torch.argsort(shown.argmax(dim=0) * 10 - shown.max(dim=0).values, stable=True)),
    }
