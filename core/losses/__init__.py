"""Training objectives, one file each, registered by name in OBJECTIVES."""
from . import ce, confidence_penalty, label_smoothing, lsg, maxnte, minimax, selectivity  # noqa: F401  (registers)
from .base import OBJECTIVES, Objective, drop_target, entropy, nontarget_entropy, register_objective
from .minimax import minimax_loss


def create_objective(name: str, **options) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name](**options)


__all__ = ["OBJECTIVES", "Objective", "create_objective", "drop_target", "entropy",
           "minimax_loss", "nontarget_entropy", "register_objective"]
