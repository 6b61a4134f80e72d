"""PCA of the pooled features (minimax paper, Fig. 8)."""
import torch

from .base import register_analysis, tolist


@register_analysis("pca", version=2, title="PCA of features", components=3, sample=2000, seed=0)
def pca(ctx, components, sample, seed):
    """The test features' first principal components, `sample` images of them kept for the plot.
    Cost O(N K^2) (a thin SVD); memory O(N K)."""
    test = ctx.test
    x = test.features.double()
    x = x - x.mean(dim=0)
    _, s, v = torch.linalg.svd(x, full_matrices=False)
    variance = s.square()
    coords = x @ v[:components].T
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:sample].sort().values
    return {"coords": tolist(coords[pick].float()), "labels": tolist(test.labels[pick]), "index": tolist(ctx.split_indices(pick)),
            "explained": tolist(variance[:components] / variance.sum())}
