"""The one face every model shows, and torchvision's families under it."""
import pytest
import torch

from core.models import MODELS, create_model
from core.models.base import TorchvisionModel
from core.models.vit import ViTFamily

CNNS = {a: family for a, family in MODELS.items() if not issubclass(family, ViTFamily)}  # ViTs: tests/test_vit.py
OURS = sorted(a for a, family in CNNS.items() if not issubclass(family, TorchvisionModel))
TORCHVISION = sorted(a for a, family in CNNS.items() if issubclass(family, TorchvisionModel))


def check_face(model, x):
    with torch.no_grad():
        maps = model.forward_features(x)
        assert maps.ndim == 4 and maps.shape[:2] == (len(x), model.num_features)
        torch.testing.assert_close(model(x), model.forward_head(maps))
        torch.testing.assert_close(model.forward_head(maps), model.fc(maps.mean(dim=(2, 3))))
        parts = model.forward_parts(x)  # one pass, every part of it
        torch.testing.assert_close(parts.maps, maps)
        torch.testing.assert_close(parts.features, maps.mean(dim=(2, 3)))
        torch.testing.assert_close(parts.logits, model(x))
    assert model.fc.weight.shape == (model.num_classes, model.num_features)
    return maps


@pytest.mark.parametrize("arch", OURS)
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_face(arch, channels, size):
    model = create_model(arch, num_classes=7, in_channels=channels).eval()
    maps = check_face(model, torch.randn(2, channels, size, size))
    assert (maps >= 0).all()  # after the last ReLU
    if model.units_have_maps:
        assert model.unit_filters.out_channels == model.num_features
    else:  # a hidden layer's neurons: no one convolution makes them
        assert model.unit_filters is None and maps.shape[-2:] == (1, 1)


def test_the_shallow_cnn_is_the_rs_papers_by_hand():
    """Four 3x3 convolutions of 64, 64, 128, 128 filters at stride 1; the units are the hidden
    layer's 256 neurons, its output before fc; the depth layers are the four convolutions then
    it, each channel a unit (a hook on the hidden layer reads the penultimate features)."""
    from core.models.base import pooled_output
    model = create_model("shallow_cnn", num_classes=10, in_channels=1).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(w, (3, 3), (1, 1)) for w in (64, 64, 128, 128)]
    assert list(model.depth_layers()) == ["conv 1", "conv 2", "conv 3", "conv 4", "hidden fc"]
    seen = {}
    handles = [m.register_forward_hook(lambda mod, i, out, name=name: seen.update({name: pooled_output(out)}))
               for name, m in model.depth_layers().items()]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        parts = model.forward_parts(x)
    for handle in handles:
        handle.remove()
    assert [seen[name].shape[1] for name in model.depth_layers()] == [64, 64, 128, 128, 256]
    torch.testing.assert_close(seen["hidden fc"], parts.features)
    from core.analysis import ANALYSES  # its units have no maps to draw
    assert "a hidden layer's neurons" in ANALYSES["influential_maps"].unsuited(model)


@pytest.mark.parametrize("arch", TORCHVISION)
def test_torchvision_families_give_torchvisions_logits_from_one_state_dict(arch):
    """torchvision's model and ours from one random state dict, loaded with its keys unchanged:
    the same logits (eval, float32, 1e-5), and the face holds (the units' maps pooled, then fc)."""
    import torchvision
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, arch)(weights=None, num_classes=5).eval()
    with torch.no_grad():  # BN statistics that are not the identity, so the eval path is exercised
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = create_model(arch, 5, 3).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())  # the keys, unchanged and in order
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    maps = check_face(ours, x)
    assert maps.shape[-1] == (1 if not ours.units_have_maps else maps.shape[-1])
    filters = ours.unit_filters
    assert filters is None or filters.out_channels == ours.num_features


def test_units_of_each_family():
    """The units are the last linear layer's inputs: 2048 for ResNet-50, 1024 for DenseNet-121,
    1280 for EfficientNet-B0, 4096 for VGG-16 (a hidden layer's neurons, with no maps)."""
    counts = {"resnet50": 2048, "wide_resnet50_2": 2048, "densenet121": 1024, "efficientnet_b0": 1280, "vgg16": 4096}
    for arch, units in counts.items():
        model = create_model(arch, 3, 3)
        assert model.num_features == units, arch
    assert not create_model("vgg16", 3, 3).units_have_maps and create_model("densenet121", 3, 3).unit_filters is None


def test_widths():
    assert create_model("resnet20", 10, 1).num_features == 64
    assert create_model("resnet20w", 10, 1).num_features == 128
    assert create_model("resnet18_cifar", 10, 3).num_features == 512


def test_unknown_arch_and_grey_images_for_a_colour_family():
    with pytest.raises(ValueError, match="unknown arch"):
        create_model("alexnet", 10, 1)
    with pytest.raises(ValueError, match="resnet50 takes colour images"):
        create_model("resnet50", 10, 1)


def test_an_old_checkpoint_that_called_our_cifar_network_resnet18_still_loads(tmp_path):
    """Before torchvision's families, our CIFAR-style network was 'resnet18': its keys say which it is."""
    from core.checkpoints import load, save_checkpoint
    model = create_model("resnet18_cifar", 10, 1)
    meta = {"arch": "resnet18", "dataset": "fashion-mnist", "class_names": [str(i) for i in range(10)],
            "channels": 1, "input_size": 28, "mean": [0.5], "std": [0.5], "method": "ce"}
    save_checkpoint(tmp_path / "old.pt", model, meta)
    loaded = load(tmp_path / "old.pt")
    assert loaded.meta["arch"] == "resnet18_cifar" and type(loaded.model).__name__ == "ResNet18Cifar"


def test_the_unit_ablation_controls_without_batch_norm_and_with_dropout(tmp_path, data_root):
    """--no-bn builds resnet20 with no batch norm (biases instead) and --dropout a dropout before
    the head, active in training and the identity in eval; both are recorded and rebuilt on load;
    another family refuses them in one line."""
    from core.checkpoints import load
    from core.models import arch_options
    from core.trainer import TrainConfig, TrainingError, train, validate
    plain = create_model("resnet20", 10, 1, **arch_options(no_bn=True, dropout=0.5))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert plain.stem[0].bias is not None and plain.head_dropout.p == 0.5
    # without batch norm every residual branch starts at zero: a block passes its (non-negative) input on
    maps = torch.rand(2, 16, 28, 28)
    assert torch.equal(plain.layers[0][1](maps), maps) and plain.layers[2][0].conv1.weight.abs().sum() > 0
    assert all(block.conv2.weight.abs().sum() == 0 for stage in plain.layers for block in stage)
    features = torch.ones(4, 64)
    plain.train()
    dropped = plain.head_input(features)
    assert set(dropped.unique().tolist()) <= {0.0, 2.0} and (dropped == 0).any()
    plain.eval()
    assert torch.equal(plain.head_input(features), features)
    out = tmp_path / "controls.pt"
    train(TrainConfig(epochs=1, limit=200, batch_size=100, out=str(out), data_root=str(data_root),
                      snapshot_per_class=0, no_bn=True, dropout=0.5))
    loaded = load(out)
    assert loaded.meta["no_bn"] is True and loaded.meta["dropout"] == 0.5
    assert loaded.model.head_dropout.p == 0.5 and not any(isinstance(m, torch.nn.BatchNorm2d)
                                                           for m in loaded.model.modules())
    with pytest.raises(TrainingError, match="options of our CIFAR-style ResNets"):
        validate(TrainConfig(arch="vit_tiny", no_bn=True, out=str(tmp_path / "x.pt")))


def test_the_mlp_is_the_rs_papers_by_hand():
    """Hidden layers of 128, 512, 2048 and 2048 neurons over the 28 x 28 pixels; the units are
    the last layer's 2048, its output before fc; a 32 px colour image is averaged to 28 x 28
    first; no spatial layer, so no CAM layer and no faithfulness analysis."""
    from core.analysis import ANALYSES
    model = create_model("mlp", num_classes=10, in_channels=1).eval()
    linears = [m for m in model.layers.modules() if isinstance(m, torch.nn.Linear)] + [model.fc]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 128), (128, 512), (512, 2048),
                                                                    (2048, 2048), (2048, 10)]
    assert list(model.depth_layers()) == ["hidden 1", "hidden 2", "hidden 3", "hidden 4"]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        hidden = x.flatten(1)
        for layer in model.layers:
            hidden = torch.relu(layer[0](hidden))
        torch.testing.assert_close(model.forward_parts(x).features, hidden)
    colour = create_model("mlp", num_classes=10, in_channels=3).eval()
    assert colour.layers[0][0].in_features == 3 * 784 and colour(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model.cam_layers() == {} and "no spatial layer" in ANALYSES["faithfulness"].unsuited(model)
