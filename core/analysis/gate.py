"""Phi (filter ambiguity, LSG paper Eq. 2) and the gate rows of every model."""
from .. import lsg
from .base import register_analysis, tolist


@register_analysis("gate", version=3, title="Gate and Phi", rho=0.2, max_steps=5000, tol=1e-9)
def gate(ctx, rho, max_steps, tol):
    """Fit G on cached training features with the network frozen; an LSG model starts from its
    trained gate, any other from 0.5. The shown gate is the trained one where there is one.

    Follows SPEC (Phi), not the paper's training-time term: the paper's `a |‖G‖_1 - s|` with
    `a = 1/(C K)`, `s = rho C K`, a post-hoc fit for models without a gate, fitted to convergence
    (relative improvement <= `tol` over 10 steps; `max_steps` is a cap, `converged` says whether
    it was reached first) and deterministic; see `core.lsg.fit_gate`.
    """
    train = ctx.train
    trained = ctx.model.gate.detach().clone() if ctx.model.gate is not None else None
    fit = lsg.fit_gate(train.features, train.labels, ctx.W, ctx.b, init=trained, rho=rho,
                       max_steps=max_steps, tol=tol, device=ctx.device)
    shown = trained if trained is not None else fit["gate"]
    assigned = lsg.gate_classes(shown.tolist())
    return {
        "phi": fit["phi"], "gated_ce": fit["gated_ce"], "density": fit["density"],
        "single_class_fraction": fit["single_class_fraction"],
        "steps": fit["steps"], "converged": fit["converged"],
        "fitted_gate": tolist(fit["gate"]), "gate": tolist(shown),
        "source": "trained" if trained is not None else "post-hoc",
        "trained_density": float(lsg.gate_density(trained)) if trained is not None else None,
        # one definition of a unit's class (core.lsg.gate_assignment, as the Unit page and Compare): None where
        # the column is all zero; ordered by class, strongest first, the unassigned last
        "assigned_class": assigned,
        "order": sorted(range(len(assigned)), key=lambda k: (assigned[k] is None, assigned[k] or 0,
                                                             -float(shown[:, k].max()))),
    }
