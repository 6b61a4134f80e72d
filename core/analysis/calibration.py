"""What a model's confidence is worth on held-out images: the cost side of class specificity.

- NLL: the mean cross-entropy of the true class on the test split (nats; lower is better);
- ECE (Guo et al. 2017): images binned by their top probability into BINS equal-width bins; the
  sum over bins of (bin share of images) * |accuracy in the bin - mean top probability in it|
  (0 is perfectly calibrated);
- the mean top probability itself (a minimax model trained toward p_t = 0.7 stays near it).
Memory O(N C); time O(N C).
"""
import torch

from .base import register_analysis

BINS = 15


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    # bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 joins the first
    which = (confidence.double() * bins).ceil().long().clamp(1, bins) - 1
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += float(inside.double().mean()) * abs(float(correct[inside].mean() - confidence[inside].double().mean()))
    return error


@register_analysis("calibration", title="Calibration: NLL and ECE", bins=BINS)
def calibration(ctx, bins):
    """NLL and ECE of the cached test logits. Cost and memory O(N C) (the softmax, in float64).
    No forward pass."""
    test = ctx.test
    logits = test.logits.double()
    probabilities = logits.softmax(dim=1)
    nll = torch.nn.functional.cross_entropy(logits, test.labels)
    return {"nll": float(nll), "ece": expected_calibration_error(probabilities, test.labels, bins),
            "mean_confidence": float(probabilities.max(dim=1).values.mean()), "bins": bins, "count": len(test.labels)}
