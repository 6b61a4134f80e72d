from .base import accuracy_of, confusion_matrix, per_class_accuracy, register_analysis, tolist


@register_analysis("accuracy", version=2, title="Accuracy and confusion")
def accuracy(ctx):
    test = ctx.test
    return {"accuracy": accuracy_of(test.logits, test.labels),
            "per_class": tolist(per_class_accuracy(test.predictions, test.labels, ctx.num_classes)),
            "confusion": tolist(confusion_matrix(test.predictions, test.labels, ctx.num_classes)),
            "count": len(test.labels)}
