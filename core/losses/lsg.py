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
        "fixed_gate": (False, "a hand-set gate, not trained: each class owns a block of floor(K/C) units (1 there, "
                              "0 elsewhere), the K mod C left are open to all, as the LSG paper's Sec. 4.3 and App. C"),
        "tighten_epoch": (-1, "epochs trained before the gate is tightened to binary and held (Sec. 3.3): a unit "
                              "with one class's entry >= tighten_threshold is that class's alone, any other is "
                              "shared by all; -1: never"),
        "tighten_threshold": (0.5, "the entry that gives a unit to a class when the gate is tightened (h)"),
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
        if not 0 < v["tighten_threshold"] <= 1:
            raise ValueError(f"tighten_threshold must lie in (0, 1], got {v['tighten_threshold']}")
        if v["tighten_epoch"] >= 0 and v["fixed_gate"]:
            raise ValueError("tighten_epoch tightens a trained gate; a fixed_gate is hand-set and never trains")

    def validate_run(self, epochs):
        gated = self.gated_epochs(epochs)
        if not gated:
            when = f"warmup_epochs {self.warmup_epochs}" + (f", by_epoch with period {self.period}" if self.by_epoch else "")
            raise ValueError(f"lsg: with {when}, no gated step runs in {epochs} epoch(s), so the gate would not "
                             "train and the run would be plain cross-entropy; train more epochs or lower warmup_epochs")
        if self.tighten_epoch >= 0 and not (self.gated_epochs(self.tighten_epoch) and self.tighten_epoch < epochs):
            raise ValueError(f"lsg: tighten_epoch {self.tighten_epoch} must leave an epoch with gated steps before it "
                             f"(so at least {gated[0] + 1}) and be below the run's {epochs} epochs, so the gate "
                             "trains first and the network then trains through the tightened gate")

    def gated_epochs(self, epochs: int) -> list[int]:
        """The epochs before `epochs` that hold gated steps."""
        return [e for e in range(self.warmup_epochs, epochs) if not self.by_epoch or e % self.period == self.period - 1]

    # ------------------------------------------------------------------ training hooks
    def attach(self, model):
        self.gate = model.add_gate()
        if self.fixed_gate:
            self.gate.data.copy_(lsg.block_gate(model.num_classes, model.num_features))
            self.gate.requires_grad_(False)
        self.target_l1 = self.target_density * model.num_classes * model.num_features
        self.gate_optimizer = SGD([self.gate], lr=self.gate_lr)
        self.gated = False
        self.tightened = False
        return self.gate_optimizer

    def start_epoch(self, epoch):
        if 0 <= self.tighten_epoch <= epoch and not self.tightened:  # in place: a captured step reads this storage
            self.gate.data.copy_(lsg.tighten_gate(self.gate.data, self.tighten_threshold))
            self.tightened = True

    def step_kind(self, epoch, step):
        gated = lsg.is_gated_step(epoch, step, self.period, self.by_epoch, self.warmup_epochs)
        # a step of the tightened gate is another kind: on a GPU its own graph, without the gate's update
        return "tightened" if gated and self.tightened else gated

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
        if self.gated and not self.fixed_gate and not self.tightened:
            self.gate_optimizer.step()
            lsg.constrain_gate_(self.gate.data)
