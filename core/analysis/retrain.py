"""The final layer decomposed into class subspaces and retrained (Badola et al., Sec. 5.2.3)."""
import torch

from ..errors import UserError
from ..sgd import SGD
from .base import accuracy_of, register_analysis
from .influential import influential_sets


def class_subspace_mask(sets: torch.Tensor, num_features: int) -> torch.Tensor:
    """(C, K): True where class c's logit may read unit k (k in its influential set S_c)."""
    mask = torch.zeros(len(sets), num_features, dtype=torch.bool)
    mask[torch.arange(len(sets))[:, None], sets] = True
    return mask


def retrain_masked_head(features, labels, weight, bias, mask, epochs: int, lr: float, batch_size: int,
                        seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SGD with momentum 0.9 on the cross-entropy of `features @ (W * mask).T + b`, from the masked
    W and b, over seeded shuffles of the features: the mask holds throughout, so each class keeps
    its own subspace. Returns the retrained (W * mask, b)."""
    w = (weight * mask).detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    optimizer = SGD([w, b], lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    held = mask.float()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(features[idx] @ (w * held).T + b, labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return (w * held).detach(), b.detach()


@register_analysis("decomposed_retrain", version=1, on_request=True, reads_training=True, title="Decomposed head retrained",
                   k1=5, k2=5, epochs=1, lr=0.01, batch_size=256, seed=0)
def decomposed_retrain(ctx, k1, k2, epochs, lr, batch_size, seed):
    """Each class's logit restricted to its influential units (Alg. 1's S_c, k1 and k2), the bias
    kept, then retrained for `epochs` on the cached training features with the restriction held:
    the paper's 88.59% -> 91.51% after one epoch (ResNet-20, CIFAR-10). Here only the final layer
    is retrained, the network frozen (the paper's text does not say which it retrains). Cost: that
    many passes of an N x K by K x C product; memory O(N K) for the cached features."""
    if not (1 <= k1 <= ctx.W.shape[1] and 1 <= k2 <= ctx.W.shape[1]) or epochs < 0 or not lr > 0:
        raise UserError(f"k1 and k2 must lie in 1..{ctx.W.shape[1]}, epochs >= 0 and lr > 0")
    train, test = ctx.train, ctx.test
    sets = influential_sets(train.features, train.labels, ctx.num_classes, k1, k2)
    mask = class_subspace_mask(sets, ctx.W.shape[1])
    before = accuracy_of(test.features @ (ctx.W * mask).T + ctx.b, test.labels)
    with torch.enable_grad():
        weight, bias = retrain_masked_head(train.features.float(), train.labels, ctx.W, ctx.b, mask,
                                           epochs, lr, batch_size, seed)
    after = accuracy_of(test.features @ weight.T + bias, test.labels)
    full = accuracy_of(test.logits, test.labels)
    return {"k1": k1, "k2": k2, "epochs": epochs, "full": full, "before": before, "after": after,
            "r_A_before": before / full if full else None, "r_A_after": after / full if full else None}
