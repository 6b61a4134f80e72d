"""Phi (filter ambiguity, LSG paper Eq. 2) and the gate rows of every model."""
import os

from .. import lsg
from ..errors import UserError
from .base import TRANSIENT, register_analysis, tolist

PHI_SECONDS = 300.0  # the fit's time budget: far above what 10-100 classes need, an upper bound at 1000 on a CPU


def phi_seconds() -> float:
    """UNITLENS_PHI_SECONDS, or PHI_SECONDS: a budget, not a parameter of the figure (a fit that
    converges within it gives the same bits whatever it is), so it is not part of the cache key."""
    text = os.environ.get("UNITLENS_PHI_SECONDS", "").strip()
    try:
        value = float(text) if text else PHI_SECONDS
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"UNITLENS_PHI_SECONDS must be a positive number of seconds, not {text!r}")
    return value


@register_analysis("gate", version=4, title="Gate and Phi", reads_training=True, rho=0.2, max_steps=5000, tol=1e-9)
def gate(ctx, rho, max_steps, tol):
    """Fit G on cached training features with the network frozen; an LSG model starts from its
    trained gate, any other from 0.5. The shown gate is the trained one where there is one.

    Follows SPEC (Phi), not the paper's training-time term: the paper's `a |‖G‖_1 - s|` with
    `a = 1/(C K)`, `s = rho C K`, a post-hoc fit for models without a gate, fitted to convergence
    (relative improvement <= `tol` over 10 steps; `max_steps` is a cap, `converged` says whether
    it was reached first) and deterministic; see `core.lsg.fit_gate`.

    `density` and `single_class_fraction` are the shown gate's (what the heatmap draws, the
    trained gate of an LSG model); the fit's own, which Phi's density term reads, are `fitted_*`
    (a post-hoc fit lands near its target rho for every model, so it separates nothing).

    Cost O(N C K) a fit step on the cached training features (at most `max_steps`, and the time
    budget UNITLENS_PHI_SECONDS); memory O(N K) for the features grouped by class.
    """
    train = ctx.train
    trained = ctx.model.gate.detach().clone() if ctx.model.gate is not None else None
    fit = lsg.fit_gate(train.features, train.labels, ctx.W, ctx.b, init=trained, rho=rho,
                       max_steps=max_steps, tol=tol, device=ctx.device, max_seconds=phi_seconds())
    shown = trained if trained is not None else fit["gate"]
    assigned = lsg.gate_classes(shown.tolist())
    return {
        "phi": fit["phi"], "gated_ce": fit["gated_ce"],
        "density": float(lsg.gate_density(shown)), "single_class_fraction": lsg.single_class_fraction(shown),
        "fitted_density": fit["density"], "fitted_single_class_fraction": fit["single_class_fraction"],
        "steps": fit["steps"], "converged": fit["converged"], "stopped": fit.get("stopped"),
        TRANSIENT: fit.get("stopped") == "time budget",  # how far a budget reaches depends on the machine
        "fitted_gate": tolist(fit["gate"]), "gate": tolist(shown),
        "source": "trained" if trained is not None else "post-hoc",
        # one definition of a unit's class (core.lsg.gate_assignment, as the Unit page and Compare): None where
        # the column is all zero; ordered by class, strongest first, the unassigned last
        "assigned_class": assigned,
        "order": sorted(range(len(assigned)), key=lambda k: (assigned[k] is None, assigned[k] or 0,
                                                             -float(shown[:, k].max()))),
    }
