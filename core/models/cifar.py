"""Our CIFAR-style networks for 28-64 px inputs: a 3x3 stem without max-pool, so a 28 px image
keeps spatial maps in the last block (7 x 7 for resnet20 on Fashion-MNIST)."""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .base import UnitModel, register_model


def norm_layer(planes: int, batch_norm: bool) -> nn.Module:
    """Batch norm, or nothing (the ablation abstract's control without it)."""
    return nn.BatchNorm2d(planes) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, batch_norm: bool = True):
        super().__init__()
        bias = not batch_norm  # a bias is what batch norm's shift replaces
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=bias)
        self.bn1 = norm_layer(planes, batch_norm)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=bias)
        self.bn2 = norm_layer(planes, batch_norm)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=bias),
                                          norm_layer(planes, batch_norm))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def initialise(model: nn.Module, batch_norm: bool) -> None:
    """He-normal convolutions, zero biases. Without batch norm nothing rescales the signal, so the
    weights keep the forward pass's variance (fan_in) and each residual branch starts at zero
    (Fixup's and SkipInit's start: the network begins shallow). With He's fan_out alone, nine blocks
    without batch norm became NaN at lr 0.1 and stayed at chance at 0.02 on Fashion-MNIST."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out" if batch_norm else "fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if not batch_norm:  # after the pass above, which would draw these again
        for block in (m for m in model.modules() if isinstance(m, BasicBlock)):
            nn.init.zeros_(block.conv2.weight)


class ResNet(UnitModel):
    """CIFAR-style ResNet: 3x3 stem without max-pool, so 28-px inputs keep spatial maps.
    `batch_norm=False` and `dropout` (before the head; the identity in eval mode) are the ablation
    abstract's controls."""
    widths: tuple[int, ...] = (16, 32, 64)
    depths: tuple[int, ...] = (3, 3, 3)
    arch_options = ("batch_norm", "dropout")

    def __init__(self, num_classes: int = 10, in_channels: int = 1, batch_norm: bool = True, dropout: float = 0.0):
        super().__init__(num_classes, in_channels, self.widths[-1])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, self.widths[0], 3, 1, 1, bias=not batch_norm),
                                  norm_layer(self.widths[0], batch_norm), nn.ReLU(inplace=True))
        layers, in_planes = [], self.widths[0]
        for i, (width, depth) in enumerate(zip(self.widths, self.depths)):
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(in_planes, width, 2 if (j == 0 and i > 0) else 1, batch_norm))
                in_planes = width
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        initialise(self, batch_norm)
        self.head_dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward_features(self, x):
        return self.layers(self.stem(x))

    def head_input(self, features):
        return self.head_dropout(features) if self.head_dropout is not None else features

    @property
    def target_layer(self):
        return self.layers[-1][-1]

    def depth_layers(self):
        """Every residual block, shallowest first (nine in ResNet-20)."""
        return {f"stage {i + 1} block {j + 1}": block for i, stage in enumerate(self.layers)
                for j, block in enumerate(stage)}

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
class ResNet18Cifar(ResNet):
    """ResNet-18's widths and depths on the CIFAR stem: not torchvision's resnet18 (other keys,
    other shapes), hence the name (checkpoints that call it resnet18 still load)."""
    arch = "resnet18_cifar"
    widths = (64, 128, 256, 512)
    depths = (2, 2, 2, 2)


@register_model
class VGG11BNCifar(UnitModel):
    """VGG-11 with batch norm and no hidden linear layers; the last max-pool is dropped so the
    last block keeps its maps. Not torchvision's vgg11_bn (checkpoints that call it so still load)."""
    arch = "vgg11_bn_cifar"
    stem_key = "features.0.weight"
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
