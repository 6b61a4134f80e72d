"""The face every model has (as in timm), and the registry.

- `forward_features(x)` -> the units' maps M (N, K, h, w), after the last activation;
- `forward_head(maps)` -> logits = fc(GAP(maps));
- `forward(x)` = both; `forward(x, labels)` runs the LSG gated path when the model has a gate;
- `forward_parts(x)` -> (maps, features a = GAP(maps), logits) of one pass, for what reads them all.

The units are the inputs of the last linear layer `fc`, so `logits = W a + b` and zeroing unit k
is `logits - a_k W[:, k]`: every analysis rests on this algebra. It holds for a family exactly when
its head is GAP then one linear layer (a dropout before it is the identity in eval mode); a head
with a hidden layer, a non-linearity or attention pooling after GAP would break it, and such a
family must make the hidden layer's outputs its units (as `vgg` does).

Everything else in Unit Lens relies only on this face, `fc`, `unit_filters`, `target_layer` and
`cam_layers`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn as nn

from ..lsg import gated_logits  # the formula, shared with the post-hoc gate fit

MODELS: dict[str, type["UnitModel"]] = {}
# names an earlier version gave our CIFAR-style networks, which torchvision's now carry: an old
# checkpoint is told apart by a key only ours has
LEGACY_ARCHS = {"resnet18": ("resnet18_cifar", "stem.0.weight"), "vgg11_bn": ("vgg11_bn_cifar", "fc.weight")}


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    """No NaN or infinity in any floating tensor of a state dict: what is saved, loaded or trained on."""
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def pooled_output(output: torch.Tensor) -> torch.Tensor:
    """A depth layer's output (`UnitModel.depth_layers`) averaged over its map (N, C, h, w) or its
    tokens (N, T, D), or a hidden linear layer's neurons (N, D) as they are: (N, units) float32."""
    if output.dim() == 2:
        return output.float()
    return output.float().mean(dim=(2, 3)) if output.dim() == 4 else output.float().mean(dim=1)


@contextmanager
def pooled_outputs(layers: dict[str, nn.Module]):
    """While open, every forward pass leaves each layer's `pooled_output` in the yielded dict, by
    the layer's name (autograd kept); the hooks go on leaving."""
    seen: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda module, inputs, output, name=name:
                                           seen.__setitem__(name, pooled_output(output)))
               for name, layer in layers.items()]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def register_model(cls):
    MODELS[cls.arch] = cls
    return cls


def resolve_arch(arch: str, keys) -> str:
    """The registered name of a checkpoint's arch: an old name of ours when its keys are ours."""
    if arch in LEGACY_ARCHS and LEGACY_ARCHS[arch][1] in keys:
        return LEGACY_ARCHS[arch][0]
    return arch


class Parts(NamedTuple):
    maps: torch.Tensor      # (N, K, h, w) the units' maps
    features: torch.Tensor  # (N, K) their global average: the head's input a
    logits: torch.Tensor    # (N, C)


class UnitModel(nn.Module):
    arch = ""
    head_path = "fc"        # where the last linear layer sits (torchvision's name, so its keys load)
    channels = (1, 3)       # the input channels the family takes
    min_input_size = 8      # below this its maps shrink to nothing
    default_input_size = 0  # the size it was made for (0: the dataset's)
    imagenet_norm = False   # made for ImageNet's mean and std
    units_have_maps = True  # False: the units are a hidden layer's neurons, their maps 1 x 1
    nonnegative_units = True  # False: the units take either sign (no ReLU before the head)
    stem_key = "stem.0.weight"  # the first convolution's weight: its input channels are the model's
    arch_options: tuple[str, ...] = ()  # the constructor's options a run may set (recorded in the checkpoint)

    @classmethod
    def adapt_state_dict(cls, state: dict) -> dict:
        """A state dict as the family's weights files spell it, made this model's (the identity
        but where a family renamed its keys since its weights were published)."""
        return state

    def __init__(self, num_classes: int, in_channels: int, num_features: int):
        super().__init__()
        self.num_classes, self.in_channels, self.num_features = num_classes, in_channels, num_features
        if self.head_path == "fc" and not isinstance(self, TorchvisionModel):  # a torchvision model brings its own
            self.fc = nn.Linear(num_features, num_classes)  # first: a seed's draws as they always were
        self.gate: nn.Parameter | None = None

    @property
    def fc(self) -> nn.Linear:
        """The last linear layer: logits = fc(a)."""
        module = self
        for name in self.head_path.split("."):  # not get_submodule: it asks hasattr(self, "fc"), this property
            module = module._modules[name]
        return module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def pool(maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))

    def head_input(self, features: torch.Tensor) -> torch.Tensor:
        """What the head sees of the features: the family's dropout where it has one (the
        identity in eval mode)."""
        return features

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_input(self.pool(maps)))

    def forward_parts(self, x: torch.Tensor) -> Parts:
        maps = self.forward_features(x)
        features = self.pool(maps)
        return Parts(maps, features, self.fc(self.head_input(features)))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.forward_features(x)
        if labels is None:
            return self.forward_head(maps)
        return self.gated_head(self.head_input(self.pool(maps)), labels)

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
        """The layer whose output the gradient-based CAM methods explain by default."""
        raise NotImplementedError

    def cam_layers(self) -> dict[str, nn.Module]:
        """Layers a gradient-based CAM method may hook, the last block first (CAM itself is
        defined on the units' maps only)."""
        return {"last block": self.target_layer}

    def depth_layers(self) -> dict[str, nn.Module]:
        """Layers whose channels are analysed as units layer by layer, shallowest first (the
        selectivity by layer): the CAM layers, unless a family lists more."""
        return dict(reversed(list(self.cam_layers().items())))

    @property
    def unit_filters(self) -> nn.Conv2d | None:
        """The convolution whose output channels are the units (their incoming filters, for
        filter correlation and the filter L1 norm), or None where no convolution makes them
        (DenseNet concatenates many layers' outputs; VGG's and the RS paper's networks' units are a
        hidden linear layer's neurons; an MLP has no convolution)."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1] if convs and convs[-1].out_channels == self.num_features else None


def arch_options(no_bn: bool = False, dropout: float = 0.0) -> dict:
    """The constructor options of a run's --no-bn and --dropout (recorded in its checkpoint as
    they were given), only those set, so a default model is built exactly as before."""
    return {**({"batch_norm": False} if no_bn else {}), **({"dropout": float(dropout)} if dropout else {})}


def create_model(arch: str, num_classes: int, in_channels: int, **options) -> UnitModel:
    """The registered family built for these classes and channels; `options` only those the family
    lists in `arch_options` (batch_norm, dropout for our CIFAR-style ResNets)."""
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch[:40]!r}; the {len(MODELS)} known are listed by python -m core.train --help")
    family = MODELS[arch]
    if in_channels not in family.channels:
        raise ValueError(f"{arch} takes colour images (3 channels), not {in_channels}; "
                         "choose a colour dataset or a CIFAR-style arch (resnet20)")
    unknown = sorted(set(options) - set(family.arch_options))
    if unknown:
        raise ValueError(f"{arch} has no option {unknown[0]} (batch norm and dropout are options of our CIFAR-style "
                         "ResNets: resnet20, resnet20w, resnet18_cifar)")
    return family(num_classes=num_classes, in_channels=in_channels, **options)


class TorchvisionModel(UnitModel):
    """A torchvision classifier given the face: built by torchvision's own constructor
    (`weights=None`: nothing is downloaded), its modules adopted under their own names, so a
    state dict torchvision wrote loads with its keys unchanged."""
    builder = ""            # the constructor's name in torchvision.models
    channels = (3,)
    min_input_size, default_input_size, imagenet_norm = 32, 224, True

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        import torchvision.models  # 0.5 s: only when such a model is built
        network = getattr(torchvision.models, self.builder)(weights=None, num_classes=num_classes)
        super().__init__(num_classes, in_channels, network.get_submodule(self.head_path).in_features)
        for name, module in network.named_children():
            setattr(self, name, module)
        for name, parameter in network.named_parameters(recurse=False):  # (ViT's class token)
            setattr(self, name, parameter)
