"""LSG training (LSG paper, Alg. 1): cross-entropy on the standard path, plus gated steps that
train the gate G and the network (see core.lsg for the gate itself and the schedule)."""
import torch.nn.functional as F

from .. import lsg
from ..sgd import SGD
from .base import register_objective
from .ce import CrossEntropy


@register_objective
class LSG(CrossEntropy):
    name = "lsg"
    uses_gate = True
    loss_label = "loss incl. gate terms"  # a gated step's loss holds lambda (CE + a_s sparsity)
    options = {
        "gate_lr": (0.1, "learning rate of the gate G (its own SGD)"),
        "gate_weight": (1.0, "weight of the gated path's cost (lambda in the paper)"),
        "sparsity_weight": (0.2, "weight of the gate's sparsity term (a_s in the paper); each gated step, that term "
                                 "alone moves every gate entry by gate_lr times this"),
        "target_density": (0.2, "the gate's target density: its L1 norm as a fraction of classes times units "
                                "(s / (C K) in the paper)"),
        "one_sided": (True, "penalise only a gate denser than the target, as the published code; off: any "
                           "distance from it, as the paper writes it"),
        "period": (3, "one gated step (or epoch) in every `period`"),
        "by_epoch": (False, "alternate by epoch (epoch % period == period - 1) instead of by step"),
        "warmup_epochs": (1, "standard epochs before the first gated step"),
        "fixed_gate": (False, "a hand-set gate, not trained: each class owns a block of K/C units (1 there, 0 "
                              "elsewhere), as the LSG paper's Sec. 4.3 and App. C"),
    }

    def validate(self):
        v = self.values
        if v["period"] < 1:
            raise ValueError(f"period must be >= 1, got {v['period']}")
        if v["warmup_epochs"] < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {v['warmup_epochs']}")
        if not 0 < v["target_density"] <= 1:
            raise ValueError(f"target_density must lie in (0, 1], got {v['target_density']}")
        if v["gate_lr"] <= 0:
            raise ValueError(f"gate_lr must be > 0, got {v['gate_lr']}")
        if v["gate_weight"] < 0 or v["sparsity_weight"] < 0:
            raise ValueError("gate_weight and sparsity_weight must be >= 0")

    def validate_run(self, epochs):
        gated = [e for e in range(self.warmup_epochs, epochs) if not self.by_epoch or e % self.period == self.period - 1]
        if not gated:
            when = f"warmup_epochs {self.warmup_epochs}" + (f", by_epoch with period {self.period}" if self.by_epoch else "")
            raise ValueError(f"lsg: with {when}, no gated step runs in {epochs} epoch(s), so the gate would not "
                             "train and the run would be plain cross-entropy; train more epochs or lower warmup_epochs")

    # ------------------------------------------------------------------ training hooks
    def attach(self, model):
        self.gate = model.add_gate()
        if self.fixed_gate:
            self.gate.data.copy_(lsg.block_gate(model.num_classes, model.num_features))
            self.gate.requires_grad_(False)
        self.target_l1 = self.target_density * model.num_classes * model.num_features
        self.gate_optimizer = SGD([self.gate], lr=self.gate_lr)
        self.gated = False
        return self.gate_optimizer

    def step_kind(self, epoch, step):
        return lsg.is_gated_step(epoch, step, self.period, self.by_epoch, self.warmup_epochs)

    def forward(self, net, x, y, gated):
        self.gated = gated
        self.gate_optimizer.zero_grad(set_to_none=True)
        return net(x, y) if self.gated else net(x)

    def training_loss(self, logits, y):
        if not self.gated:
            return self(logits, y)
        sparsity = lsg.sparsity_term(self.gate, self.target_l1, self.one_sided)
        return self.gate_weight * (F.cross_entropy(logits, y) + self.sparsity_weight * sparsity)

    def after_step(self):
        if self.gated and not self.fixed_gate:
            self.gate_optimizer.step()
            lsg.constrain_gate_(self.gate.data)
