from .base import accuracy_of, confusion_matrix, per_class_accuracy, register_analysis, tolist


@register_analysis("accuracy", version=2, title="Accuracy and confusion")
def accuracy(ctx):
    """Test accuracy, per class and the confusion matrix. Cost O(N C) on the cached logits;
    memory O(C^2)."""
    test = ctx.test
    return {"accuracy": accuracy_of(test.logits, test.labels),
            "per_class": tolist(per_class_accuracy(test.predictions, test.labels, ctx.num_classes)),
            "confusion": tolist(confusion_matrix(test.predictions, test.labels, ctx.num_classes)),
            "count": len(test.labels)}
