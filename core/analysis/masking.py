"""Class masking (LSG paper, Fig. 5): zero the units assigned to class c, confusion per c."""
import torch

from .base import confusion_matrix, register_analysis, tolist
from .influential import influential_sets


@register_analysis("class_masking", depends=("gate",), title="Class masking", max_classes=100, threshold=0.5, by="gate", k1=5, k2=5)
def class_masking(ctx, threshold, by, k1, k2):
    test, c = ctx.test, ctx.num_classes
    if by == "gate":
        assigned = torch.tensor(ctx.result("gate")["gate"]) >= threshold              # (C, K)
    else:
        sets = influential_sets(ctx.train.features, ctx.train.labels, c, k1, k2)
        assigned = torch.zeros(c, ctx.W.shape[1], dtype=torch.bool)
        assigned[torch.arange(c)[:, None], sets] = True
    confusions, class_acc = [], []
    for cls in range(c):
        kept = test.features * (~assigned[cls]).float()
        preds = torch.nn.functional.linear(kept, ctx.W, ctx.b).argmax(1)
        confusions.append(confusion_matrix(preds, test.labels, c))
        of_class = test.labels == cls
        class_acc.append(float((preds[of_class] == cls).float().mean()) if of_class.any() else None)
    return {"by": by, "threshold": threshold, "units": [tolist(torch.nonzero(row).flatten()) for row in assigned],
            "confusions": tolist(torch.stack(confusions)), "masked_class_accuracy": class_acc}
