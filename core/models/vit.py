"""Vision Transformers with the face of a CNN.

The units are the inputs of the head's linear layer, as for every family. Each unit's "map" is its
value on every patch token, laid out on the patch grid (h = H / patch, w = W / patch), so the
feature-map grid, CAM and the gradient-based CAM methods work as they do on a CNN. The CAM methods
hook a `TokenGrid`: a reshape of a block's tokens (N, h*w, D) into maps (N, D, h, w) that the
forward pass goes through, so a hook sees maps and their gradients.

How the tokens become the units is one option per family, `unit_pool`:
- "mean" (`vit_tiny`, ours): the mean of the patch tokens after the final norm and a ReLU. The
  units are then the global average of their maps, exactly as a CNN's, so CAM is exact and every
  analysis's algebra holds; the ReLU makes them non-negative as a CNN's post-ReLU channels, which
  the class selectivity index assumes (it divides by the sum of two class means).
- "class token" (torchvision's `vit_b_16`, `vit_b_32`): the class token after the final norm,
  because that is what their published heads read; mean-pooling would change their logits. The
  maps are then the patch tokens' values, which the units do not average: CAM on them is an
  approximation, and the units take either sign, so the selectivity analyses say they do not apply.
No convolution makes a transformer's units, so filter correlation and the filter L1 norm of the
ablation page do not apply either (`unit_filters` is None).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Parts, TorchvisionModel, UnitModel, register_model


class TokenGrid(nn.Module):
    """Patch tokens (N, h*w, D) -> maps (N, D, h, w); the layer the CAM methods hook."""

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def tokens_of(maps: torch.Tensor) -> torch.Tensor:
    return maps.flatten(2).transpose(1, 2)


def sincos_positions(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (h*w, dim), as in MAE and MoCo v3: defined for
    any grid, so one model reads 28 px and 64 px images alike."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64), torch.arange(grid[1], dtype=torch.float64),
                            indexing="ij")
    parts = [f(axis.reshape(-1, 1) * omega) for axis in (ys, xs) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()


class Block(nn.Module):
    """Pre-norm transformer block: attention, then an MLP, each added back."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class ViTFamily:
    """What our ViT and torchvision's share: the hooked grids, the CAM layers, no unit filters."""
    unit_pool = "mean"
    patch = 4
    grids: nn.ModuleList

    def hookable(self) -> list[nn.Module]:
        """The grids whose tokens the logits depend on, the first block's first."""
        return list(self.grids)

    @property
    def target_layer(self):
        return self.hookable()[-1]

    def cam_layers(self):
        """Each hookable block's output on the patch grid, the last first."""
        grids = self.hookable()
        last = len(grids) - 1
        return {(f"block {i + 1}" + (f" ({self.last_grid})" if i == last else "")): grids[i] for i in range(last, -1, -1)}

    last_grid = "after the final norm"

    @property
    def unit_filters(self):
        return None

    def grid_of(self, x: torch.Tensor) -> tuple[int, int]:
        if x.shape[-2] < self.patch or x.shape[-1] < self.patch:
            raise ValueError(f"{self.arch} needs images of at least {self.patch} px")
        return x.shape[-2] // self.patch, x.shape[-1] // self.patch


@register_model
class ViTTiny(ViTFamily, UnitModel):
    """Our Vision Transformer for 28-64 px inputs: patch 4 (a 7 x 7 token grid on Fashion-MNIST),
    6 blocks of width 64 with 4 heads, fixed sine-cosine positions, no class token; its 64 units
    are ReLU(norm(tokens)) averaged over the patches (see the module's docstring for why)."""
    arch = "vit_tiny"
    stem_key = "patch_embed.weight"
    min_input_size = 8
    dim, depth, heads, mlp_dim = 64, 6, 4, 128

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_classes, in_channels, self.dim)
        self.patch_embed = nn.Conv2d(in_channels, self.dim, self.patch, self.patch)
        self.blocks = nn.ModuleList(Block(self.dim, self.heads, self.mlp_dim) for _ in range(self.depth))
        self.norm = nn.LayerNorm(self.dim)
        self.grids = nn.ModuleList(TokenGrid() for _ in range(self.depth))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        grid = self.grid_of(x)
        tokens = tokens_of(self.patch_embed(x)) + sincos_positions(grid, self.dim).to(x.device, x.dtype)
        for block, hooked in zip(self.blocks[:-1], self.grids):
            tokens = tokens_of(hooked(block(tokens), grid))
        return self.grids[-1](F.relu(self.norm(self.blocks[-1](tokens))), grid)


class TorchvisionViT(ViTFamily, TorchvisionModel):
    """torchvision's ViT-B; its units are the class token after the final norm (its head reads it)."""
    unit_pool = "class token"
    nonnegative_units = False
    last_grid = "the last block's input"

    def hookable(self):
        """Not the last block's patch tokens: the class token read by the head never sees them
        (their gradient is none), so the CAM methods hook the last block's input, as
        pytorch-grad-cam's ViT example hooks `blocks[-1].norm1`."""
        return list(self.grids)[:-1]
    head_path = "heads.head"
    stem_key = "conv_proj.weight"
    min_input_size = 32

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__(num_classes, in_channels)
        self.grids = nn.ModuleList(TokenGrid() for _ in self.encoder.layers)
        self.trained_grid = math.isqrt(self.encoder.pos_embedding.shape[1] - 1)

    @property
    def patch(self):
        return self.conv_proj.stride[0]

    def positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """The learnt position embeddings, the patches' interpolated bicubically to another grid
        (as timm does), so other input sizes than 224 px run; at 224 px they are unchanged."""
        embedding = self.encoder.pos_embedding
        if grid == (self.trained_grid, self.trained_grid):
            return embedding
        side = self.trained_grid
        patches = embedding[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
        return torch.cat([embedding[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(maps of the patch tokens after the final norm, the class token after it)."""
        grid = self.grid_of(x)
        tokens = tokens_of(self.conv_proj(x))
        tokens = torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1) + self.positions(grid)
        tokens = self.encoder.dropout(tokens)
        for layer, hooked in zip(self.encoder.layers[:-1], self.grids):
            tokens = layer(tokens)
            tokens = torch.cat([tokens[:, :1], tokens_of(hooked(tokens[:, 1:], grid))], dim=1)
        tokens = self.encoder.ln(self.encoder.layers[-1](tokens))
        return self.grids[-1](tokens[:, 1:], grid), tokens[:, 0]

    def forward_features(self, x):
        return self.encode(x)[0]

    def forward_head(self, maps):
        raise NotImplementedError("the class token is not in the maps: use forward(x) or forward_parts(x)")

    def forward_parts(self, x):
        maps, features = self.encode(x)
        return Parts(maps, features, self.fc(features))

    def forward(self, x, labels=None):
        _, features = self.encode(x)
        return self.fc(features) if labels is None else self.gated_head(features, labels)


for _name in ("vit_b_16", "vit_b_32"):
    register_model(type(_name, (TorchvisionViT,), {"arch": _name, "builder": _name}))
