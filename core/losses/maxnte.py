"""MaxNTE (minimax paper, Eq. 5): CE - lambda * H(softmax(z without target))."""
import torch.nn.functional as F

from .base import Objective, nontarget_entropy, register_objective


@register_objective
class MaxNTE(Objective):
    name = "maxnte"
    options = {"lam": (1.0, "weight lambda of the non-target entropy")}

    def validate(self):
        if self.values["lam"] < 0:
            raise ValueError(f"lam must be >= 0, got {self.values['lam']}")

    def __call__(self, logits, targets):
        return F.cross_entropy(logits, targets) - self.lam * nontarget_entropy(logits, targets).mean()
