"""torchvision's ResNets and Wide ResNet: the units are layer4's output channels (2048 for
ResNet-50), their maps layer4's output before the global pool (7 x 7 at 224 px)."""
from __future__ import annotations

from .base import TorchvisionModel, register_model


class TorchvisionResNet(TorchvisionModel):
    stem_key = "conv1.weight"

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    @property
    def target_layer(self):
        return self.layer4[-1]

    def cam_layers(self):
        return {"layer4 (last)": self.layer4[-1], "layer3": self.layer3[-1], "layer2": self.layer2[-1]}


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2"):
    register_model(type(_name, (TorchvisionResNet,), {"arch": _name, "builder": _name}))
