"""Compare on an image (core.compare): one model's explanation against the formulas, and the
scales and warnings across models, by hand."""
import numpy as np
import pytest
import torch

from core.compare import Explained, explain_image, scales, unlike_training
from core.data import dataset_image


@pytest.fixture(scope="module")
def bundled_ce():
    from core.catalog import ROOT_CHECKPOINTS
    from core.checkpoints import load
    loaded = load(ROOT_CHECKPOINTS / "ce.pt")
    return loaded.model, loaded.meta


def test_one_model_explains_the_picture_as_the_formulas_say(bundled_ce, data_root):
    model, meta = bundled_ce
    image, label = dataset_image("fashion-mnist", 0, root=data_root)
    view = explain_image(model, meta, image, "predicted", ["cam"])
    out = view.out
    assert out["target"] == out["predicted"] == label  # the bundled CE model reads test image 0 right
    logits = torch.from_numpy(out["logits"])
    np.testing.assert_allclose(out["probabilities"][2.0], torch.softmax(logits / 2, 0).numpy(), rtol=1e-6)
    features = torch.from_numpy(out["features"])
    by_hand = torch.argsort(model.fc.weight.detach()[label] * features, descending=True)[:8].tolist()
    assert out["class_units"] == by_hand
    assert view.seen.shape == (28, 28) and 0 <= view.seen.min() and view.seen.max() <= 1
    assert view.ood is None and any("normalised" in step for step in view.steps)

    bag = explain_image(model, meta, image, "Bag", ["cam"]).out
    assert bag["target"] == meta["class_names"].index("Bag") and bag["predicted"] == label
    assert explain_image(model, meta, image, "no such class", ["cam"]).out["target"] == label


def test_the_maps_faithfulness_on_the_image_is_for_the_explained_class(bundled_ce, data_root):
    """Computed apart (the page fills it in last), for the class explained, not the predicted one."""
    from core.analysis.faithfulness import deletion_insertion
    from core.compare import faithfulness_of
    from core.data import black_value, info_from_meta
    model, meta = bundled_ce
    image, label = dataset_image("fashion-mnist", 0, root=data_root)
    view = explain_image(model, meta, image, "Bag", ["cam", "layercam"])
    got = faithfulness_of(model, view)
    bag = meta["class_names"].index("Bag")
    assert view.out["target"] == bag != label and set(got) == {"cam", "layercam"}
    for name, saliency in view.out["cams"].items():
        deletion, insertion = deletion_insertion(model, view.x, saliency[None], torch.tensor([bag]),
                                                 black_value(info_from_meta(meta)))
        assert got[name] == pytest.approx({"deletion": float(deletion[0]), "insertion": float(insertion[0])},
                                          abs=1e-6)  # the page's one thread against all of them
        assert 0 <= got[name]["deletion"] <= 1 and 0 <= got[name]["insertion"] <= 1
    # the page keeps the AUCs by this digest: the same image, class and maps give it, another class does not
    from core.compare import view_digest
    again = explain_image(model, meta, image, "Bag", ["cam", "layercam"])
    assert view_digest(again) == view_digest(view)
    assert view_digest(explain_image(model, meta, image, "Coat", ["cam", "layercam"])) != view_digest(view)
    assert view_digest(explain_image(model, meta, image, "Bag", ["cam"])) != view_digest(view)


def test_top_units_take_their_class_from_the_gate_none_for_an_empty_column(bundled_ce, data_root):
    model, meta = bundled_ce
    image, _ = dataset_image("fashion-mnist", 1, root=data_root)
    gate = np.zeros((10, model.fc.weight.shape[1]), np.float32)
    gate[4, :] = 1.0  # every unit to class 4 ...
    gate[:, 0:64:2] = 0.0  # ... but the even ones to none
    gate[7, 1:64:4] = 1.0  # ... and every fourth one to classes 4 and 7 alike (a tie, said)
    out = explain_image(model, meta, image, "predicted", ["cam"], gate=gate).out
    assert [u["class"] for u in out["top_units"]] == [None if u["unit"] % 2 == 0 else 4 for u in out["top_units"]]
    assert [u["tied"] for u in out["top_units"]] == [[7] if u["unit"] % 4 == 1 else [] for u in out["top_units"]]
    assert any(u["tied"] for u in out["top_units"])  # this image's top units include such a unit
    names = meta["class_names"]
    assert [u["class_name"] for u in out["top_units"]] == [
        "none" if u["unit"] % 2 == 0 else f"{names[4]} = {names[7]}" if u["unit"] % 4 == 1 else names[4]
        for u in out["top_units"]]
    assert out["gate_row"].tolist() == gate[out["target"]].tolist()


def view(maps_max: float, cam_max: float, ood: dict | None = None, label: str = "m") -> Explained:
    maps = np.zeros((2, 3, 3), np.float32)
    maps[1, 2, 2] = maps_max
    cam = np.full((28, 28), min(0.0, cam_max) * 2, np.float32)  # all below 0 for a negative max
    cam[5, 5] = cam_max
    return Explained({"label": label}, {"maps": maps, "cams": {"cam": cam}}, np.zeros((28, 28)), [], ood)


def test_shared_and_own_colour_scales_by_hand():
    shown = [view(2.0, 8.0), view(0.5, 8.0)]
    shared = scales(shown, shared=True)
    assert [(s.top, s.text) for s in shared.maps] == [(2.0, "0 to 2"), (2.0, "max 0.5 on the shared 0 to 2")]
    assert [(c["cam"].top, c["cam"].text) for c in shared.cams] == [(8.0, "0 to 8"), (8.0, "0 to 8")]
    own = scales(shown, shared=False)
    assert [(s.top, s.text) for s in own.maps] == [(2.0, "0 to 2"), (0.5, "0 to 0.5")]
    assert scales([], shared=True).maps == []
    against = [view(1.0, -0.7), view(1.0, -0.04)]  # a class no model sees: CAM below 0 everywhere
    for shared_scale in (True, False):
        cams = [c["cam"] for c in scales(against, shared=shared_scale).cams]
        assert [(c.top, c.text) for c in cams] == [(0.0, "nothing above 0; max -0.7"), (0.0, "nothing above 0; max -0.04")]


def test_the_unlike_training_phrase_names_each_model_that_finds_the_picture_strange():
    far = {"distance": 123.4, "threshold": 100.0, "quantile": 0.99, "unlike_training": True}
    near = {"distance": 50.0, "threshold": 100.0, "quantile": 0.99, "unlike_training": False}
    shown = [view(1, 1, far, "ce"), view(1, 1, near, "lsg"), view(1, 1, None, "minimax")]
    assert unlike_training(shown) == ["ce: feature distance 123, above 100 (99% of test images are closer)"]
    assert unlike_training(shown, label=lambda m: m["label"].upper())[0].startswith("CE:")


def test_input_pictures_from_every_form_an_input_takes():
    """A PIL image, floats in [0, 1] (H, W), bytes (C, H, W) as IAM keeps them: the same picture."""
    from PIL import Image

    from core.render import input_picture
    grey = np.array([[0, 64], [128, 255]], np.uint8)
    expected = np.repeat(grey[..., None], 3, axis=2)
    for form in (Image.fromarray(grey), grey.astype(np.float32) / 255.0, grey[None].tolist()):
        np.testing.assert_array_equal(np.asarray(input_picture(np.asarray(form) if isinstance(form, list) else form, 2)),
                                      expected)
    colour = np.arange(12, dtype=np.uint8).reshape(3, 2, 2) * 20  # (C, H, W) bytes -> (H, W, C)
    np.testing.assert_array_equal(np.asarray(input_picture(colour, 2)), colour.transpose(1, 2, 0))


def test_a_flat_picture_is_said_to_hold_nothing(bundled_ce, data_root):
    """A blank upload gets a confident prediction from a CE model (its softmax says nothing of
    that): the explanation marks it flat, and a real picture is not."""
    from PIL import Image
    model, meta = bundled_ce
    blank = explain_image(model, meta, Image.new("RGB", (64, 64), (255, 255, 255)), "predicted", [])
    assert blank.flat
    image, _ = dataset_image("fashion-mnist", 0, root=data_root)
    assert not explain_image(model, meta, image, "predicted", []).flat
    nearly = Image.fromarray((np.random.default_rng(0).integers(100, 100 + 8, (28, 28))).astype(np.uint8))
    assert explain_image(model, meta, nearly, "predicted", []).flat  # within 8 of 255: still nothing to see
    from core.data import dataset_info
    from core.inputs import prepare
    cifar = dataset_info("cifar10")  # a colour model: a solid colour is flat in every channel
    assert prepare(Image.new("RGB", (32, 32), (200, 0, 0)), cifar).flat
    assert not prepare(Image.fromarray(np.uint8([[[0, 0, 0], [255, 0, 0]]] * 32).repeat(16, 1)), cifar).flat
