"""torchvision's VGGs, with and without batch norm. Their head has two hidden linear layers, so
GAP-then-linear holds only for the last one: the units are the 4096 outputs of the second hidden
layer (after its ReLU and dropout), the inputs of `classifier.6`. They are neurons, not channels:
their maps are 1 x 1 (`units_have_maps` is False), and the gradient-based CAM methods explain the
last convolutional block instead."""
from __future__ import annotations

import torch

from .base import TorchvisionModel, register_model


class TorchvisionVGG(TorchvisionModel):
    head_path = "classifier.6"
    stem_key = "features.0.weight"
    units_have_maps = False

    def forward_features(self, x):
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:6](x)[:, :, None, None]

    @property
    def target_layer(self):
        return self.features[-1]

    def cam_layers(self):
        return {"last conv block": self.features[-1]}

    @property
    def unit_filters(self):
        return None


for _name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"):
    register_model(type(_name, (TorchvisionVGG,), {"arch": _name, "builder": _name}))
