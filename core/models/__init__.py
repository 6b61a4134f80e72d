"""Model families, one file each, every model with the face of `base.UnitModel`:

- `cifar`: our small CIFAR-style networks for 28-64 px inputs (resnet20, resnet20w, resnet18_cifar,
  vgg11_bn_cifar);
- `resnet`, `densenet`, `efficientnet`, `vgg`: torchvision's ImageNet classifiers, built with
  torchvision's own constructors (no weights downloaded), whose state dicts load with their keys
  unchanged;
- `shallow`: the Representative Substitution paper's shallow CNN (four convolutions, a hidden
  fully connected layer whose neurons are the units) and MLP (no spatial layer, no CAM);
- `vit`: Vision Transformers, ours for small images (vit_tiny) and torchvision's ViT-B, their
  units' maps on the patch grid.
"""
from .base import (LEGACY_ARCHS, MODELS, Parts, UnitModel, all_finite, arch_options, create_model,  # noqa: F401
                   register_model, resolve_arch)
from . import cifar, densenet, efficientnet, resnet, shallow, vgg, vit  # noqa: F401  (each registers its models)
