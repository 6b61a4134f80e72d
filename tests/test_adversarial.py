"""Adversarial detection (LSG paper Table 4): PGD, targets and the detector by hand on tiny
models; the whole analysis on a real trained checkpoint."""
import pytest
import torch
import torch.nn as nn

from core.analysis.adversarial import detector_auc, layer_features, other_classes, per_class_draw, targeted_pgd
from core.analysis.engine import Analyzer
from core.errors import UserError
from core.store import Store


class TwoPixels(nn.Module):
    """logits = the two pixels of a 1 x 1 x 2 image: the gradient of a target's cross-entropy
    lowers the other pixel and raises the target's, whatever the start."""

    def forward(self, x):
        return x.flatten(1)


def test_pgd_ends_at_the_corner_of_the_ball_the_target_wants_in_pixel_units():
    """Normalised with mean 0.5, std 0.25: epsilon 0.3 pixels is 1.2 normalised units. From pixel
    0.5 (normalised 0) target class 1 pushes pixel 0 to 0.2 (-1.2) and pixel 1 to 0.8 (+1.2); from
    pixel 0.9 (1.6) the ball's top 1.2 lies above white, so pixel 1 stops at 1.0 (2.0)."""
    images = torch.tensor([[[[0.0, 0.0]]], [[[0.0, 1.6]]]])
    targets = torch.tensor([1, 1])
    out = targeted_pgd(TwoPixels(), images, targets, epsilon=0.3, step=0.05, steps=40, mean=[0.5], std=[0.25],
                       generator=torch.Generator().manual_seed(0))
    assert out[0].flatten().tolist() == pytest.approx([-1.2, 1.2], abs=1e-6)
    assert out[1].flatten().tolist() == pytest.approx([-1.2, 2.0], abs=1e-6)
    # epsilon 0: nothing moves, random start included
    still = targeted_pgd(TwoPixels(), images, targets, 0.0, 0.05, 5, [0.5], [0.25], torch.Generator().manual_seed(0))
    assert torch.equal(still, images)


def test_targets_are_never_the_own_class_and_cover_the_others():
    labels = torch.arange(4).repeat(500)
    targets = other_classes(labels, 4, torch.Generator().manual_seed(0))
    assert not bool((targets == labels).any())
    for c in range(4):
        assert set(targets[labels == c].tolist()) == set(range(4)) - {c}


def test_each_class_gives_its_count_or_all_it_has():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    draw = per_class_draw(labels, 3, 2, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[draw], minlength=3).tolist() == [2, 1, 2]
    assert len(set(draw.tolist())) == len(draw)


def test_detector_auc_is_one_when_separable_and_a_half_when_the_features_say_nothing():
    y = torch.tensor([0] * 20 + [1] * 20)
    x = torch.cat([torch.zeros(20, 3), torch.ones(20, 3)])
    assert detector_auc(x, y, x, y, seed=0, trees=10) == 1.0
    same = torch.ones(40, 3)
    assert detector_auc(same, y, same, y, seed=0, trees=10) == 0.5


def test_layer_features_concatenate_every_depth_layer_pooled(tiny_checkpoints):
    """ResNet-20's nine blocks: 3 x 16 + 3 x 32 + 3 x 64 = 336 columns; the last 64 are the
    penultimate features a; the logits are the same pass's."""
    model = Analyzer.from_path(tiny_checkpoints["ce"]).model.eval()
    x = torch.rand(5, 1, 28, 28)
    features, logits = layer_features(model, x)
    assert features.shape == (5, 336)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
        assert torch.allclose(features[:, -64:], model.forward_parts(x).features, atol=1e-6)


def test_the_analysis_on_a_trained_model(tiny_checkpoints, tmp_path):
    """Small sizes: every attacked image is scored, the AUCs lie in [0, 1], one per repeat; a
    size above what the sample holds says how many it had; bad parameters are one UserError."""
    engine = Analyzer.from_path(tiny_checkpoints["lsg"], Store(tmp_path / "c.duckdb"), limit=500, train_limit=600,
                                feature_dir=None)
    result = engine.run("adversarial_detection", sizes=(3, 100), test_per_class=4, steps=3, repeats=2, trees=10)
    # the training limit's 600 images hold 60 a class: 100 is run as 60
    assert result["images_a_class"] == [3, 60] and result["test_images"] == 40 and result["feature_width"] == 336
    assert len(result["auc"]) == 2 and all(len(row) == 2 for row in result["auc"])
    assert all(0.0 <= auc <= 1.0 for row in result["auc"] for auc in row)
    assert result["auc_mean"][0] == pytest.approx(sum(result["auc"][0]) / 2)
    assert 0.0 <= result["attack_success_test"] <= 1.0
    again = Analyzer.from_path(tiny_checkpoints["lsg"], Store(tmp_path / "c.duckdb"), limit=500, train_limit=600,
                               feature_dir=None)
    assert again.cached("adversarial_detection", sizes=(3, 100), test_per_class=4, steps=3, repeats=2,
                        trees=10) == result
    with pytest.raises(UserError, match="sizes >= 1"):
        engine.run("adversarial_detection", sizes=(0,), steps=1)
    on_training = Analyzer.from_path(tiny_checkpoints["lsg"], Store(tmp_path / "c.duckdb"), split="train",
                                     limit=500, train_limit=600, feature_dir=None)
    with pytest.raises(UserError, match="held-out images: run it on the test split"):
        on_training.run("adversarial_detection", sizes=(3,), steps=1)
