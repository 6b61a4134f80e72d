"""The Representative Substitution paper's own networks. The shallow convolutional network: four
3x3 convolutions of 64, 64, 128 and 128 filters at stride 1, then a hidden fully connected layer
before the classifier. The MLP: hidden layers of 128, 512, 2048 and 2048 neurons. In both the
units are the last hidden layer's neurons (the inputs of `fc`, so logits = W a + b holds), maps
1 x 1 as VGG's, and every hidden layer is a depth layer, analysed layer by layer as the paper's
Figs. 1, 3 and 5 do."""
from __future__ import annotations

import torch.nn as nn

from .base import UnitModel, register_model


def conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.ReLU(inplace=True))


def he_initialised(body: nn.Module) -> None:
    """He initialisation of every convolution and linear layer of `body` (biases zero): with no
    batch norm, PyTorch's default trains these networks slowly."""
    for m in body.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


@register_model
class ShallowCNN(UnitModel):
    """The paper gives the filters and kernels only; the rest is ours and stated here: a 2x2
    max-pool after the second and the fourth convolution, the maps averaged to 4 x 4 (so any input
    size gives the same hidden layer) and a hidden layer of 256 neurons after a ReLU."""
    arch = "shallow_cnn"
    stem_key = "convs.0.0.weight"
    units_have_maps = False
    hidden = 256

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_classes, in_channels, self.hidden)
        self.convs = nn.Sequential(conv(in_channels, 64), conv(64, 64), nn.MaxPool2d(2, ceil_mode=True),
                                   conv(64, 128), conv(128, 128), nn.MaxPool2d(2, ceil_mode=True))
        self.hidden_fc = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128 * 16, self.hidden),
                                       nn.ReLU(inplace=True))
        he_initialised(self.convs)
        he_initialised(self.hidden_fc)

    def forward_features(self, x):
        return self.hidden_fc(self.convs(x))[:, :, None, None]

    @property
    def target_layer(self):
        return self.convs[4]

    def cam_layers(self):
        return {"last conv": self.convs[4]}

    def depth_layers(self):
        """The four convolutions (after their ReLU), shallowest first, then the hidden layer."""
        convs = [m for m in self.convs if isinstance(m, nn.Sequential)]
        return {**{f"conv {i + 1}": m for i, m in enumerate(convs)}, "hidden fc": self.hidden_fc}


@register_model
class MLP(UnitModel):
    """The image is average-pooled to 28 x 28 first (the identity on Fashion-MNIST), so one MLP
    takes any input size; each hidden layer is a linear layer and a ReLU. With no spatial layer it
    has no class activation maps (`cam_layers` is empty)."""
    arch = "mlp"
    stem_key = "layers.0.0.weight"
    units_have_maps = False
    widths = (128, 512, 2048, 2048)
    side = 28

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__(num_classes, in_channels, self.widths[-1])
        self.resize = nn.AdaptiveAvgPool2d(self.side)
        sizes = (in_channels * self.side ** 2, *self.widths)
        self.layers = nn.Sequential(*(nn.Sequential(nn.Linear(a, b), nn.ReLU(inplace=True))
                                      for a, b in zip(sizes, sizes[1:])))
        he_initialised(self.layers)

    def forward_features(self, x):
        return self.layers(self.resize(x).flatten(1))[:, :, None, None]

    @property
    def target_layer(self):
        return None

    def cam_layers(self):
        return {}

    def depth_layers(self):
        return {f"hidden {i + 1}": layer for i, layer in enumerate(self.layers)}
