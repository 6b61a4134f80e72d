"""The CAM table (core/cam.py) and the faithfulness measures (core/analysis/faithfulness.py):
hand-built models with exact expected numbers, then every method on a real checkpoint."""
import numpy as np
import pytest
import torch

from core.analysis.faithfulness import deletion_insertion
from core.data import first_per_class
from core.cam import CAM_METHODS, create_cam
from core.checkpoints import load
from core.data import load_dataset


class MeanPixelModel(torch.nn.Module):
    """Two classes; P(class 0) is the mean pixel value, so every curve is known by hand."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([m.log(), (1 - m).log()], dim=1)


def test_deletion_and_insertion_auc_by_hand():
    """Pixels 0.4, 0.3, 0.2, 0.1 on a black background, 4 steps of one pixel each.
    Most relevant first (the faithful map), class-0 probability while deleting: .25, .15,
    .075, .025, 0 -> trapezoid area .09375; inserting: 0, .1, .175, .225, .25 -> .15625.
    The reversed map deletes .25, .225, .175, .1, 0 -> .15625 (less faithful: higher)."""
    x = torch.tensor([0.4, 0.3, 0.2, 0.1]).view(1, 1, 2, 2)
    faithful = np.array([[[4.0, 3.0], [2.0, 1.0]]])
    classes, black = torch.tensor([0]), torch.tensor([0.0])
    deletion, insertion = deletion_insertion(MeanPixelModel(), x, faithful, classes, black, steps=4)
    assert deletion.item() == pytest.approx(0.09375, abs=1e-6)
    assert insertion.item() == pytest.approx(0.15625, abs=1e-6)
    deletion, _ = deletion_insertion(MeanPixelModel(), x, -faithful, classes, black, steps=4)
    assert deletion.item() == pytest.approx(0.15625, abs=1e-6)


def test_subset_takes_the_first_images_of_every_class():
    labels = torch.tensor([1, 0, 1, 1, 0, 2])
    assert first_per_class(labels, 3, 2).tolist() == [0, 1, 2, 4, 5]


@pytest.fixture(scope="module")
def bundled_ce():
    model = load("checkpoints/ce.pt").model
    test = load_dataset("fashion-mnist", "test").subset(6)
    return model, test.images, test.labels.tolist()


@pytest.mark.parametrize("name", list(CAM_METHODS))
def test_every_cam_method_gives_finite_maps_and_keeps_no_hooks(bundled_ce, name):
    model, x, classes = bundled_ce
    maps = create_cam(name, model)(x, classes)
    assert maps.shape == (6, 28, 28) and maps.dtype == np.float32 and np.isfinite(maps).all()
    layer = model.target_layer
    assert not layer._forward_hooks and not layer._backward_hooks and not layer._forward_pre_hooks


@pytest.mark.parametrize("layer", ["stage 3 (last)", "stage 1"])
def test_our_layercam_is_pytorch_grad_cams_and_leaves_no_gradients(bundled_ce, layer):
    """LayerCAM is ours (the default view then imports no library); it must give the library's maps."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model, x, classes = bundled_ce
    model.zero_grad(set_to_none=True)
    ours = create_cam("layercam", model, layer)(x, classes)
    assert all(p.grad is None for p in model.parameters())
    with pytorch_grad_cam.LayerCAM(model=model, target_layers=[model.cam_layers()[layer]]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    assert not ours.min(axis=(1, 2)).any() and np.allclose(ours.max(axis=(1, 2)), 1, atol=1e-5)  # [0, 1] per image
    model.zero_grad(set_to_none=True)


def test_class_agnostic_methods_are_flagged(bundled_ce):
    model, x, _ = bundled_ce
    for name, method in CAM_METHODS.items():
        one, other = create_cam(name, model)(x[:2], [0, 0]), create_cam(name, model)(x[:2], [5, 5])
        assert np.allclose(one, other) == (not method.class_specific), name


def test_gradcam_weights_are_the_heads_row_over_the_map_size(bundled_ce):
    """Grad-CAM weighs map k by the mean gradient of the class logit over the map's positions.
    Through this network's head (global average pool, then linear) that gradient is
    W[c, k] / (h w) at every position, so Grad-CAM = ReLU(CAM) up to a constant (core/cam.py)."""
    model, x, classes = bundled_ce
    maps = model.forward_features(x).detach().requires_grad_(True)
    logits = model.forward_head(maps)
    logits[torch.arange(len(classes)), torch.tensor(classes)].sum().backward()
    h, w = maps.shape[-2:]
    expected = model.fc.weight[torch.tensor(classes)].detach() / (h * w)
    torch.testing.assert_close(maps.grad, expected[:, :, None, None].expand_as(maps))


@pytest.mark.slow  # Score-CAM's 64 passes an image; the measures themselves are tested by hand above
def test_faithfulness_analysis_on_a_real_checkpoint(tiny_checkpoints, tmp_path):
    """One image per class, every method plus the random baseline; figures in range, cached,
    and in core.analyze's JSON."""
    from core.analysis.engine import Analyzer, summary
    from core.store import Store
    engine = Analyzer.from_path(tiny_checkpoints["ce"], Store(tmp_path / "c.duckdb"), feature_dir=None)
    result = engine.run("faithfulness", per_class=1, steps=4)
    assert result["images"] == 10 and len(set(result["indices"])) == 10
    assert set(result["methods"]) == {"cam", "gradcam++", "layercam", "scorecam", "eigencam", "random"}
    for entry in result["methods"].values():
        for measure in ("deletion", "insertion"):
            assert 0.0 <= entry[measure]["mean"] <= 1.0 and entry[measure]["std"] >= 0.0
        for measure in ("road_morf", "road_lerf"):
            assert -1.0 <= entry[measure]["mean"] <= 1.0
    assert engine.cached("faithfulness", per_class=1, steps=4) == result
    assert summary({"faithfulness": result}, engine.meta)["faithfulness"] == result["methods"]


def test_gradient_methods_hook_the_chosen_stage_and_cam_stays_on_the_last(bundled_ce):
    model, x, classes = bundled_ce
    from core.cam import shared_layers
    assert list(model.cam_layers()) == ["stage 3 (last)", "stage 2", "stage 1"]
    assert shared_layers([model, model]) == list(model.cam_layers())
    last, earlier = (create_cam("layercam", model, layer)(x, classes) for layer in ("stage 3 (last)", "stage 2"))
    assert earlier.shape == last.shape and not np.allclose(earlier, last)
    np.testing.assert_allclose(create_cam("cam", model, "stage 2")(x, classes), create_cam("cam", model)(x, classes))
    assert not model.layers[1][-1]._forward_hooks and not model.layers[1][-1]._backward_hooks
    with pytest.raises(ValueError, match="no layer"):
        create_cam("gradcam", model, "stage 9")


@pytest.mark.parametrize("name", ["scorecam", "gradcam", "layercam"])
def test_a_cam_is_not_disturbed_by_another_threads_forward_passes(bundled_ce, name):
    """Streamlit lets an abandoned run go on computing while the next one starts: a prediction in one
    thread must not land in the activations another thread's CAM hooked (Score-CAM once failed with
    "shape '[11, 64]' is invalid" here)."""
    import threading
    model, x, classes = bundled_ce
    alone = create_cam(name, model)(x[:2], classes[:2])
    stop, other = threading.Event(), x[:5]

    def predict_meanwhile():
        with torch.inference_mode():
            while not stop.is_set():
                model(other)
    thread = threading.Thread(target=predict_meanwhile)
    thread.start()
    try:
        together = [create_cam(name, model)(x[:2], classes[:2]) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    for maps in together:
        np.testing.assert_allclose(maps, alone, atol=1e-5)
