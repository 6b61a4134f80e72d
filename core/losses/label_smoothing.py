"""Label smoothing: CE against (1 - eps) onehot + eps / C."""
import torch.nn.functional as F

from .base import Objective, register_objective


@register_objective
class LabelSmoothing(Objective):
    name = "label_smoothing"
    options = {"eps": (0.1, "smoothing eps in [0, 1)")}

    def validate(self):
        if not 0.0 <= self.values["eps"] < 1.0:
            raise ValueError(f"eps must lie in [0, 1), got {self.values['eps']}")

    def __call__(self, logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=self.eps)
