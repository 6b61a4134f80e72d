"""Model registry. Every model has one face (as in timm):

- `forward_features(x)` -> penultimate maps M (N, K, h, w), after the last block's ReLU;
- `forward_head(maps)` -> logits = fc(GAP(maps));
- `forward(x)` = both; `forward(x, labels)` runs the LSG gated path when the model has a gate;
- `forward_parts(x)` -> (maps, features a = GAP(maps), logits) of one pass, for what reads them all.

Everything else in Unit Lens relies only on this face, `fc`, `last_conv` and `target_layer`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lsg import gated_logits  # the formula, shared with the post-hoc gate fit

MODELS: dict[str, type["UnitModel"]] = {}


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    """No NaN or infinity in any floating tensor of a state dict: what is saved, loaded or trained on."""
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def register_model(cls):
    MODELS[cls.arch] = cls
    return cls


class Parts(NamedTuple):
    maps: torch.Tensor      # (N, K, h, w) penultimate maps
    features: torch.Tensor  # (N, K) their global average: the head's input a
    logits: torch.Tensor    # (N, C)


class UnitModel(nn.Module):
    arch = ""

    def __init__(self, num_classes: int, in_channels: int, num_features: int):
        super().__init__()
        self.num_classes, self.in_channels, self.num_features = num_classes, in_channels, num_features
        self.fc = nn.Linear(num_features, num_classes)
        self.gate: nn.Parameter | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def pool(maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(maps))

    def forward_parts(self, x: torch.Tensor) -> Parts:
        maps = self.forward_features(x)
        features = self.pool(maps)
        return Parts(maps, features, self.fc(features))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.forward_features(x)
        if labels is None:
            return self.forward_head(maps)
        return self.gated_head(self.pool(maps), labels)

    def gated_head(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """LSG path: `W (G_y * a) + b` for labels y."""
        if self.gate is None:
            raise RuntimeError("this model has no gate")
        return gated_logits(features, labels, self.gate, self.fc.weight, self.fc.bias)

    def add_gate(self, init: float = 0.5) -> nn.Parameter:
        """Attach a C x K gate in [0, 1] (LSG training); a no-op if one exists."""
        if self.gate is None:
            self.gate = nn.Parameter(torch.full((self.num_classes, self.num_features), init,
                                                device=self.fc.weight.device))
        return self.gate

    @property
    def target_layer(self) -> nn.Module:
        """The last block, where Grad-CAM hooks."""
        raise NotImplementedError

    def cam_layers(self) -> dict[str, nn.Module]:
        """Layers a gradient-based CAM method may hook, the last block first (CAM itself is
        defined on the last block only)."""
        return {"last block": self.target_layer}

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolutional layer, for filter correlation."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)][-1]


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(UnitModel):
    """CIFAR-style ResNet: 3x3 stem without max-pool, so 28-px inputs keep spatial maps."""
    widths: tuple[int, ...] = (16, 32, 64)
    depths: tuple[int, ...] = (3, 3, 3)

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_classes, in_channels, self.widths[-1])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, self.widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(self.widths[0]), nn.ReLU(inplace=True))
        layers, in_planes = [], self.widths[0]
        for i, (width, depth) in enumerate(zip(self.widths, self.depths)):
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(in_planes, width, 2 if (j == 0 and i > 0) else 1))
                in_planes = width
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x):
        return self.layers(self.stem(x))

    @property
    def target_layer(self):
        return self.layers[-1][-1]

    def cam_layers(self):
        """The last block of every stage, deepest first (28, 14 and 7 px maps on Fashion-MNIST)."""
        count = len(self.layers)
        return {f"stage {count - i}" + (" (last)" if i == 0 else ""): self.layers[count - 1 - i][-1]
                for i in range(count)}


@register_model
class ResNet20(ResNet):
    arch = "resnet20"


@register_model
class ResNet20Wide(ResNet):
    """The minimax paper's 128 penultimate maps."""
    arch = "resnet20w"
    widths = (16, 32, 128)


@register_model
class ResNet18(ResNet):
    arch = "resnet18"
    widths = (64, 128, 256, 512)
    depths = (2, 2, 2, 2)


@register_model
class VGG11BN(UnitModel):
    """VGG-11 with batch norm; the last max-pool is dropped so the last block keeps its maps."""
    arch = "vgg11_bn"
    config = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_classes, in_channels, 512)
        layers, channels = [], in_channels
        for item in self.config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False),
                           nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)

    def forward_features(self, x):
        return self.features(x)

    @property
    def target_layer(self):
        return self.features[-1]


def create_model(arch: str, num_classes: int, in_channels: int) -> UnitModel:
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(MODELS)}")
    return MODELS[arch](num_classes=num_classes, in_channels=in_channels)
