"""torchvision's EfficientNets B0-B7: the units are the last 1x1 convolution's channels after its
SiLU (1280 for B0); the head is `classifier` = dropout then the linear layer, whose dropout
`head_input` applies (the identity in eval mode, so the analyses' algebra holds)."""
from __future__ import annotations

from .base import TorchvisionModel, register_model


class TorchvisionEfficientNet(TorchvisionModel):
    head_path = "classifier.1"
    stem_key = "features.0.0.weight"

    def forward_features(self, x):
        return self.features(x)

    def head_input(self, features):
        return self.classifier[0](features)

    @property
    def target_layer(self):
        return self.features[-1]

    def cam_layers(self):
        return {"last block": self.features[-1], "stage 7": self.features[-2], "stage 6": self.features[-3]}


for _name in (f"efficientnet_b{i}" for i in range(8)):
    register_model(type(_name, (TorchvisionEfficientNet,), {"arch": _name, "builder": _name}))
