"""torchvision's DenseNets: the units are the channels after the last norm and ReLU (1024 for
DenseNet-121), the concatenated outputs of every layer before them; the head is `classifier`.
No one convolution makes the units, so filter correlation and the filter L1 norm do not apply."""
from __future__ import annotations

import re

import torch.nn as nn

from .base import TorchvisionModel, register_model


class TorchvisionDenseNet(TorchvisionModel):
    head_path = "classifier"
    stem_key = "features.conv0.weight"
    # torchvision's published DenseNet weights still say 'norm.1' for 'norm1' (its own loader renames them)
    OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")

    @classmethod
    def adapt_state_dict(cls, state):
        renamed = {}
        for key, value in state.items():
            match = cls.OLD_KEY.match(key)
            renamed[match.group(1) + match.group(2) if match else key] = value
        return renamed

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__(num_classes, in_channels)
        self.final_relu = nn.ReLU()  # torchvision applies it as a function; a module can be hooked

    def forward_features(self, x):
        return self.final_relu(self.features(x))

    @property
    def target_layer(self):
        return self.final_relu

    def cam_layers(self):
        return {"last block": self.final_relu, "dense block 3": self.features.denseblock3}


for _name in ("densenet121", "densenet161", "densenet169", "densenet201"):
    register_model(type(_name, (TorchvisionDenseNet,), {"arch": _name, "builder": _name}))
