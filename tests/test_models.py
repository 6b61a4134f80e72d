"""The one face every model shows."""
import pytest
import torch

from core.models import MODELS, create_model


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_face(arch, channels, size):
    model = create_model(arch, num_classes=7, in_channels=channels).eval()
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        maps = model.forward_features(x)
        assert maps.ndim == 4 and maps.shape[:2] == (2, model.num_features)
        assert (maps >= 0).all()  # after the last ReLU
        torch.testing.assert_close(model(x), model.forward_head(maps))
        torch.testing.assert_close(model.forward_head(maps), model.fc(maps.mean(dim=(2, 3))))
        parts = model.forward_parts(x)  # one pass, every part of it
        torch.testing.assert_close(parts.maps, maps)
        torch.testing.assert_close(parts.features, maps.mean(dim=(2, 3)))
        torch.testing.assert_close(parts.logits, model(x))
    assert model.fc.weight.shape == (7, model.num_features)
    assert model.last_conv.out_channels == model.num_features


def test_widths():
    assert create_model("resnet20", 10, 1).num_features == 64
    assert create_model("resnet20w", 10, 1).num_features == 128
    assert create_model("resnet18", 10, 3).num_features == 512


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch"):
        create_model("alexnet", 10, 1)
