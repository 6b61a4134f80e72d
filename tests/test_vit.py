"""Vision Transformers under the same face: our small ViT trained by our trainer with every
objective, its analyses and pages, and torchvision's ViT-B against torchvision's own logits."""
import shutil
import sys

import pytest
import torch

from core.cam import CAM_METHODS, create_cam
from core.models import create_model
from core.models.vit import TokenGrid, sincos_positions

from . import ui_env
from .conftest import ROOT


def test_the_tiny_vits_face_and_its_maps_on_the_patch_grid():
    """forward_head(forward_features(x)) is the forward pass; each unit's map is its value on
    the 7 x 7 patch tokens of a 28 px image (8 x 8 at 32 px), non-negative (the ReLU), and its
    unit is the map's mean."""
    torch.manual_seed(0)
    model = create_model("vit_tiny", 10, 1).eval()
    for channels, size, grid in ((1, 28, 7), (1, 32, 8)):
        x = torch.randn(3, channels, size, size)
        with torch.no_grad():
            maps = model.forward_features(x)
            parts = model.forward_parts(x)
            assert maps.shape == (3, 64, grid, grid) and (maps >= 0).all() and (maps > 0).any()
            torch.testing.assert_close(model.forward_head(maps), model(x))
            torch.testing.assert_close(parts.features, maps.mean(dim=(2, 3)))
            torch.testing.assert_close(parts.logits, model.fc(parts.features))
    assert model.unit_filters is None and model.nonnegative_units
    assert list(model.cam_layers()) == ["block 6 (after the final norm)", "block 5", "block 4", "block 3",
                                        "block 2", "block 1"]


def test_token_grid_lays_tokens_out_row_by_row():
    """Token t of a 2 x 3 grid is patch (t // 3, t % 3): token 4 lands at row 1, column 1."""
    tokens = torch.arange(12.0).reshape(1, 6, 2)  # 6 tokens of 2 channels
    maps = TokenGrid()(tokens, (2, 3))
    assert maps.shape == (1, 2, 2, 3)
    assert maps[0, 0, 1, 1] == tokens[0, 4, 0] == 8 and maps[0, 1, 0, 2] == tokens[0, 2, 1] == 5


def test_sine_cosine_positions_by_hand():
    """dim 4: one frequency (1) per axis, [sin y, cos y, sin x, cos x]."""
    positions = sincos_positions((2, 2), 4)
    import math
    assert positions.shape == (4, 4)
    torch.testing.assert_close(positions[3], torch.tensor([math.sin(1), math.cos(1), math.sin(1), math.cos(1)]))
    torch.testing.assert_close(positions[1], torch.tensor([0.0, 1.0, math.sin(1), math.cos(1)]))


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_every_cam_method_maps_a_vit_at_the_input_size(method):
    """The gradient methods hook a block's tokens on the patch grid, any block; CAM is the head's
    weights on the units' maps (exact for mean-pooled tokens)."""
    torch.manual_seed(0)
    model = create_model("vit_tiny", 10, 1).eval()
    x = torch.randn(2, 1, 28, 28)
    maps = create_cam(method, model)(x, [1, 2])
    assert maps.shape == (2, 28, 28) and torch.isfinite(torch.as_tensor(maps)).all()
    if CAM_METHODS[method].any_layer:
        assert create_cam(method, model, "block 3")(x, [1, 2]).shape == (2, 28, 28)


def test_torchvision_vit_gives_torchvisions_logits_and_its_class_token_units():
    """vit_b_32 from one random state dict, keys unchanged: torchvision's logits at 224 px; the
    units are the class token after the final norm (768, either sign), the maps the 7 x 7 patch
    tokens; another input size runs with interpolated positions."""
    import torchvision
    torch.manual_seed(0)
    theirs = torchvision.models.vit_b_32(weights=None, num_classes=5).eval()
    ours = create_model("vit_b_32", 5, 3).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
        parts = ours.forward_parts(x)
        assert parts.maps.shape == (1, 768, 7, 7) and parts.features.shape == (1, 768)
        torch.testing.assert_close(parts.logits, theirs(x), rtol=1e-5, atol=1e-5)
        assert (parts.features < 0).any() and not ours.nonnegative_units
        assert ours(torch.randn(1, 3, 96, 96)).shape == (1, 5)
    assert ours.num_features == 768 and ours.unit_filters is None
    # the CAM methods hook blocks whose tokens reach the class token: the last block's input first
    assert list(ours.cam_layers())[:2] == ["block 11 (the last block's input)", "block 10"]
    for method in ("layercam", "gradcam"):
        assert create_cam(method, ours)(x, [1]).shape == (1, 224, 224)


def test_selectivity_says_it_does_not_apply_to_signed_units():
    from core.analysis import ANALYSES
    reason = ANALYSES["selectivity"].unsuited(create_model("vit_b_32", 3, 3))
    assert reason.startswith("Unit selectivity does not apply to vit_b_32: its units take either sign")
    assert ANALYSES["selectivity"].unsuited(create_model("vit_tiny", 3, 1)) is None
    assert "a transformer's tokens" in ANALYSES["filter_correlation"].unsuited(create_model("vit_tiny", 3, 1))


METHODS = {"ce": {}, "minimax": {}, "lsg": {"warmup_epochs": 0}, "maxnte": {}, "label_smoothing": {},
           "confidence_penalty": {}, "selectivity": {}}


@pytest.fixture(scope="module")
def vit_checkpoints(tmp_path_factory, data_root):
    """vit_tiny trained by our trainer, one short run per objective (AdamW, as the bundle's)."""
    from core.trainer import TrainConfig, train
    folder = tmp_path_factory.mktemp("vit_ckpts")
    for method, options in METHODS.items():
        train(TrainConfig(method=method, options=options, arch="vit_tiny", optimizer="adamw", lr=0.003,
                          weight_decay=0.05, epochs=2, limit=300, batch_size=100, out=str(folder / f"vit_{method}.pt"),
                          data_root=str(data_root), snapshot_per_class=2))
    return folder


@pytest.mark.parametrize("method", METHODS)
def test_every_objective_trains_a_vit(vit_checkpoints, method):
    """Each objective's run moves every block's weights from the seeded start, and the gate of LSG
    sits on the head's 64 inputs."""
    from core.checkpoints import load
    loaded = load(vit_checkpoints / f"vit_{method}.pt")
    assert loaded.meta["arch"] == "vit_tiny" and loaded.meta["optimizer"] == "adamw"
    assert loaded.meta["schedule"].startswith("adamw")
    torch.manual_seed(0)
    start = create_model("vit_tiny", 10, 1).state_dict()
    trained = loaded.model.state_dict()
    for block in range(6):
        key = f"blocks.{block}.qkv.weight"
        assert not torch.equal(start[key], trained[key]), key
    assert (loaded.model.gate is not None) == (method == "lsg")
    if method == "lsg":
        assert loaded.model.gate.shape == (10, 64)


def test_the_analyses_of_a_vit(vit_checkpoints):
    """The default report runs; the figures that read a convolution say they do not apply; the
    selectivity of every unit is a number in [-1, 1] and the JSON's ablation has no filter norm."""
    from core.analysis.engine import Analyzer
    from core.checkpoints import load
    from core.store import MemoryStore
    engine = Analyzer(load(vit_checkpoints / "vit_lsg.pt"), MemoryStore(), feature_dir=None)
    results = engine.report()
    assert "filter_correlation" not in results and "a transformer's tokens" in engine.skipped["filter_correlation"]
    si = results["selectivity"]["per_unit"]
    assert len(si) == 64 and all(-1 <= v <= 1 for v in si if v is not None)
    assert results["unit_ablation"]["filter_l1_norm"] is None
    assert len(results["gate"]["gate"]) == 10 and len(results["trajectory"]["epochs"]) == 2
    assert set(results) >= {"accuracy", "nontarget_entropy", "influential", "class_masking", "noise_ablation"}


@pytest.mark.slow
def test_every_page_draws_a_vit_beside_a_cnn(vit_checkpoints, tiny_checkpoints, tmp_path_factory):
    """Compare shows a CNN and a ViT side by side; every page draws both without an error."""
    from .test_app import draw_every_page, shown
    models = tmp_path_factory.mktemp("vit_app")
    shutil.copy(tiny_checkpoints["ce"], models / "cnn.pt")
    for method in ("ce", "lsg"):
        shutil.copy(vit_checkpoints / f"vit_{method}.pt", models / f"vit_{method}.pt")
    previous = ui_env.apply(ui_env.app_environment(models, tmp_path_factory.mktemp("vit_work")))
    sys.path.insert(0, str(ROOT))
    try:
        at = draw_every_page(["cnn", "vit_lsg"])
        at.switch_page("pages/compare.py").run()
        assert {"cnn", "vit_lsg"} <= {shown(s.value) for s in at.subheader}
    finally:
        ui_env.restore(previous)


@pytest.mark.slow
def test_an_imported_torchvision_vit_on_every_page(tiny_checkpoints, tmp_path_factory):
    """A random-weight vit_b_32 saved by torchvision, imported on a folder of colour photos: the
    checkpoint gives torchvision's logits, and every page draws it beside a CNN, saying what does
    not apply to units of either sign instead of failing."""
    import torchvision

    from core.checkpoints import load
    from core.import_weights import import_weights
    from .test_app import draw_every_page
    from .test_import_weights import photo_folder
    work = tmp_path_factory.mktemp("vit_import")
    torch.manual_seed(0)
    theirs = torchvision.models.vit_b_32(num_classes=3).eval()
    torch.save(theirs.state_dict(), work / "vit.pth")
    folder = photo_folder(work / "photos")
    models = tmp_path_factory.mktemp("vit_import_models")
    import_weights(work / "vit.pth", "vit_b_32", models / "vitb.pt", dataset=f"imagefolder:{folder}")
    loaded = load(models / "vitb.pt")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), theirs(x), rtol=1e-5, atol=1e-5)
    shutil.copy(tiny_checkpoints["ce"], models / "cnn.pt")
    previous = ui_env.apply(ui_env.app_environment(models, tmp_path_factory.mktemp("vit_import_work")))
    sys.path.insert(0, str(ROOT))
    try:
        draw_every_page(["vitb", "cnn"])
    finally:
        ui_env.restore(previous)
