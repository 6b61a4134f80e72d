"""How unlike the training data an image is: the Mahalanobis distance of its pooled features to
the nearest class mean (shared covariance, Lee et al. 2018), against the model's own test split.

Maximum softmax and energy were tried first on the bundled CE model: noise, a checkerboard and a
plain grey square all score like confident test images there (softmax 0.96-1.0, "Bag"), while
their feature distance is 1.6-3.7 times the test split's 99th percentile. So the feature distance
is what decides the notice; the softmax maximum is reported beside it.
"""
import torch

from .base import register_analysis, tolist


def distances(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(N,) squared Mahalanobis distance to the nearest class mean, expanded as
    x'Px - 2 x'P mu_c + mu_c'P mu_c: memory O(N C + C K), time O(N K^2 + N C K). (The differences
    x - mu_c for every pair took N C K numbers: 4 GB at 1000 images, 1000 classes, 512 units.)"""
    x, mu, p = features.double(), means.double(), precision.double()
    px = x @ p
    squared = (px * x).sum(1, keepdim=True) - 2 * px @ mu.T + ((mu @ p) * mu).sum(1)[None]
    return squared.clamp_min(0.0).min(dim=1).values.float()


@register_analysis("ood_reference", reads_training=True, title="In-distribution reference", quantile=0.99, ridge=1e-3)
def ood_reference(ctx, quantile, ridge):
    """Class means and shared covariance of the training features; the threshold is the
    `quantile` of the test split's own distances (so 1% of test images would be flagged).
    Cost O(N_train K^2 + K^3) for the covariance and its inverse, O(N K^2 + N C K) for the test
    distances; memory O(N_train K + K^2 + N C + C K) in float64. No forward pass."""
    train = ctx.train
    classes = [c for c in range(ctx.num_classes) if (train.labels == c).any()]
    means = torch.stack([train.features[train.labels == c].double().mean(dim=0) for c in classes])
    centred = train.features.double() - means[torch.searchsorted(torch.tensor(classes), train.labels)]
    covariance = centred.T @ centred / max(1, len(centred) - 1)
    covariance += ridge * covariance.diagonal().mean().clamp_min(1e-12) * torch.eye(len(covariance), dtype=torch.float64)
    precision = torch.linalg.inv(covariance)
    test = distances(ctx.test.features, means, precision)
    return {"classes": classes, "means": tolist(means), "precision": tolist(precision), "quantile": quantile,
            "threshold": float(torch.quantile(test.double(), quantile)), "test_median": float(test.median())}


def judge(features: torch.Tensor, logits: torch.Tensor, reference: dict) -> dict:
    """The verdict for one image (features (K,), logits (C,)): its distance, the model's own
    threshold, whether it is unlike the training data, and the softmax maximum."""
    distance = float(distances(features[None], torch.tensor(reference["means"]),
                               torch.tensor(reference["precision"]))[0])
    threshold = reference["threshold"]
    return {"distance": distance, "threshold": threshold, "ratio": distance / threshold if threshold else None,
            "unlike_training": distance > threshold, "max_softmax": float(logits.softmax(0).max()),
            "quantile": reference["quantile"]}


def unlike_text(verdict: dict) -> str:
    """Why a verdict says 'unlike the training data', in words (the app and core.predict)."""
    return (f"feature distance {verdict['distance']:.0f}, above {verdict['threshold']:.0f} "
            f"({verdict['quantile']:.0%} of test images are closer)")
