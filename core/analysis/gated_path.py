"""The gated path's own accuracy: each class's logit through its own gate row (Badola et al.,
Table 1, "CSG" beside "STD"; the LSG paper's gate is the same matrix)."""
import torch

from .. import lsg
from .base import TRANSIENT, accuracy_of, register_analysis


@register_analysis("gated_path", depends=("gate",), title="Gated path accuracy")
def gated_path(ctx):
    """Test accuracy of `z_c = W_c (G_c * a) + b_c` for the shown gate (the trained one where there
    is one) and for the post-hoc fit, beside the plain head's: the paper finds the two paths
    equal (0.8809 and 0.8809, ResNet-20 on CIFAR-10). Cost O(N C K); memory O(C K)."""
    gate = ctx.result("gate")
    test = ctx.test
    features = test.features.float()

    def accuracy(matrix) -> float:
        return accuracy_of(lsg.own_row_logits(features, torch.tensor(matrix, dtype=torch.float32), ctx.W, ctx.b),
                           test.labels)
    return {"accuracy": accuracy(gate["gate"]), "fitted_accuracy": accuracy(gate["fitted_gate"]),
            "plain_accuracy": accuracy_of(test.logits, test.labels), "source": gate["source"],
            TRANSIENT: bool(gate.get(TRANSIENT))}
