"""LSG training (LSG paper, Alg. 1): cross-entropy on the standard path, plus gated steps that
train the gate G and the network (see core.lsg for the gate itself and the schedule)."""
from .base import register_objective
from .ce import CrossEntropy


@register_objective
class LSG(CrossEntropy):
    name = "lsg"
    uses_gate = True
    options = {
        "gate_lr": (0.1, "learning rate of the gate G (its own SGD)"),
        "gate_weight": (1.0, "lambda: weight of the gated path's cost"),
        "sparsity_weight": (0.2, "a_s: weight of the sparsity term (per gated step each entry moves by gate_lr * a_s)"),
        "target_density": (0.2, "s / (C K): target L1 norm of G as a fraction of C K"),
        "one_sided": (True, "relu(||G||_1 - s) as the published code; false: |.| as the paper"),
        "period": (3, "one gated step (or epoch) in every `period`"),
        "by_epoch": (False, "alternate by epoch (epoch % period == period - 1) instead of by step"),
        "warmup_epochs": (1, "standard epochs before the first gated step"),
    }

    def validate(self):
        v = self.values
        if v["period"] < 1:
            raise ValueError(f"period must be >= 1, got {v['period']}")
        if not 0 < v["target_density"] <= 1:
            raise ValueError(f"target_density must lie in (0, 1], got {v['target_density']}")
        if v["gate_lr"] <= 0:
            raise ValueError(f"gate_lr must be > 0, got {v['gate_lr']}")
