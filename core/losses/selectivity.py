"""Selectivity regulariser (Leavitt & Morcos, ICLR 2021): CE - alpha * mean class selectivity,
computed on the batch, of every layer's channels as the paper (each layer's mean, averaged over
the layers; `every_layer`, the default) or of the penultimate units alone (`every_layer` false,
this tool's earlier definition). alpha > 0 makes units
class-selective, alpha < 0 makes them class-agnostic: the opposite pole to minimax on the same
charts."""
import torch
import torch.nn.functional as F

from ..models.base import pooled_output
from .base import Objective, register_objective

EPSILON = 1e-7


def batch_selectivity(features: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per unit: (mu_max - mu_rest) / (mu_max + mu_rest + eps), where mu_max is the largest
    class-conditional mean activation over the classes present in the batch and mu_rest the
    mean of the other present classes' means. No host sync (the step may be a CUDA graph)."""
    one_hot = F.one_hot(targets, num_classes).to(features.dtype)        # (N, C)
    counts = one_hot.sum(0)                                              # (C,)
    present = counts > 0
    means = (one_hot.T @ features) / counts.clamp(min=1)[:, None]       # (C, K)
    mu_max = means.masked_fill(~present[:, None], float("-inf")).max(0).values
    others = (present.sum() - 1).clamp(min=1)
    mu_rest = ((means * present[:, None]).sum(0) - mu_max) / others
    return (mu_max - mu_rest) / (mu_max + mu_rest + EPSILON)


@register_objective
class SelectivityRegulariser(Objective):
    name = "selectivity"
    options = {"alpha": (1.0, "weight alpha of the units' mean selectivity (negative: discourage it)"),
               "every_layer": (True, "regularise every layer's channels (each block's; the mean over layers), "
                                     "as the paper; false: the penultimate units alone")}

    def validate(self):
        if not -100 <= self.values["alpha"] <= 100:
            raise ValueError(f"alpha must lie in [-100, 100], got {self.values['alpha']}")

    def attach(self, model):
        """Keep the pooled features the head sees (the input of model.fc), or each depth layer's
        channels pooled over space (`model.depth_layers`)."""
        self.num_classes = model.num_classes
        self.pooled: dict[str, torch.Tensor] = {}
        if self.every_layer:
            for name, layer in model.depth_layers().items():
                layer.register_forward_hook(
                    lambda module, args, out, name=name: self.pooled.__setitem__(name, pooled_output(out)))
        else:
            model.fc.register_forward_pre_hook(lambda module, args: self.pooled.__setitem__("units", args[0]))
        return None

    def training_loss(self, logits, targets):
        per_layer = [batch_selectivity(pooled.float(), targets, self.num_classes).mean() for pooled in self.pooled.values()]
        return F.cross_entropy(logits, targets) - self.alpha * torch.stack(per_layer).mean()

    def __call__(self, logits, targets):
        """Without features (outside training) the loss is the cross-entropy term."""
        return F.cross_entropy(logits, targets)
