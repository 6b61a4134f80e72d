"""Per unit: the test images that excite it most (indices into the test split)."""
from .base import register_analysis, tolist


@register_analysis("top_images", version=2, title="Top-activating images", top=9)
def top_images(ctx, top):
    """Each unit's `top` most activating test images. Cost O(N K) (a top-k per unit); memory O(top K)."""
    values, index = ctx.test.features.topk(min(top, len(ctx.test.labels)), dim=0)   # (top, K)
    return {"index": tolist(ctx.split_indices(index.T)), "activation": tolist(values.T),
            "labels": tolist(ctx.test.labels[index.T])}
