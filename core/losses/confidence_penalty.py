"""Confidence penalty: CE - beta * H(softmax(z))."""
import torch.nn.functional as F

from .base import Objective, entropy, register_objective


@register_objective
class ConfidencePenalty(Objective):
    name = "confidence_penalty"
    options = {"beta": (0.1, "weight beta of the output entropy")}

    def validate(self):
        if self.values["beta"] < 0:
            raise ValueError(f"beta must be >= 0, got {self.values['beta']}")

    def __call__(self, logits, targets):
        return F.cross_entropy(logits, targets) - self.beta * entropy(logits).mean()
