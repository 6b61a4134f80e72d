"""Class masking (LSG paper, Fig. 5): zero the units assigned to class c, confusion per c."""
import torch

from ..errors import UserError
from .base import confusion_matrix, register_analysis, tolist
from .influential import influential_sets


@register_analysis("class_masking", depends=("gate",), reads_training=True, title="Class masking", max_classes=100, threshold=0.5, by="gate",
                   k1=5, k2=5, with_class=-1)
def class_masking(ctx, threshold, by, k1, k2, with_class):
    """Per class c, its assigned units zeroed (with `with_class` >= 0, that class's units too: two
    classes masked at once, as the LSG paper's Fig. 5), the confusion matrix and c's accuracy
    (and `with_class`'s in `partner_accuracy`). Cost O(C N K C): one masked head over the N x K
    test features per class; memory O(N K + C^3), the C confusion matrices of C x C kept (1 GB at
    1000 classes: hence max_classes = 100). No forward pass."""
    test, c = ctx.test, ctx.num_classes
    if not -1 <= with_class < c:
        raise UserError(f"with_class must be a class index below {c} (or -1 for none), got {with_class}")
    if by == "gate":
        assigned = torch.tensor(ctx.result("gate")["gate"]) >= threshold              # (C, K)
    else:
        sets = influential_sets(ctx.train.features, ctx.train.labels, c, k1, k2)
        assigned = torch.zeros(c, ctx.W.shape[1], dtype=torch.bool)
        assigned[torch.arange(c)[:, None], sets] = True
    def accuracy_on(preds, cls):
        of_class = test.labels == cls
        return float((preds[of_class] == cls).float().mean()) if of_class.any() else None

    confusions, class_acc, partner_acc = [], [], []
    for cls in range(c):
        masked = assigned[cls] | assigned[with_class] if with_class >= 0 else assigned[cls]
        preds = torch.nn.functional.linear(test.features * (~masked).float(), ctx.W, ctx.b).argmax(1)
        confusions.append(confusion_matrix(preds, test.labels, c))
        class_acc.append(accuracy_on(preds, cls))
        partner_acc.append(accuracy_on(preds, with_class) if with_class >= 0 else None)
    result = {"by": by, "threshold": threshold, "units": [tolist(torch.nonzero(row).flatten()) for row in assigned],
              "confusions": tolist(torch.stack(confusions)), "masked_class_accuracy": class_acc}
    if with_class >= 0:
        result.update(with_class=with_class, partner_accuracy=partner_acc)
    return result
