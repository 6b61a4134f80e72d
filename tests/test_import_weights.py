"""A researcher's own weights: torchvision state dicts (.pth) and .safetensors files imported,
analysed and shown; every refusal one line with nothing written, nothing ever unpickled."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoints import load
from core.import_weights import import_weights
from core.weights import WeightsError, read_weights

from .conftest import assert_one_line_error, run_cli


def photo_folder(root, classes=("cat", "dog", "fox"), per_class=5, size=(120, 90)):
    """Colour JPEGs of different sizes and aspect, one folder per class (no train/ or test/)."""
    rng = np.random.default_rng(0)
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1] + 7 * i, size[0], 3), dtype=np.uint8)
            pixels[..., c % 3] //= 2  # each class a cast of its own
            Image.fromarray(pixels).save(root / cls / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random-weight ResNet-50 and DenseNet-121 saved by torchvision's own models, as a user would."""
    import torchvision
    from safetensors.torch import save_file
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    r50 = torchvision.models.resnet50(num_classes=3)
    torch.save(r50.state_dict(), folder / "r50.pth")
    torch.save(torchvision.models.densenet121(num_classes=3).state_dict(), folder / "d121.pth")
    save_file({k: v.contiguous() for k, v in r50.state_dict().items()}, str(folder / "r50.safetensors"))
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in r50.state_dict().items()}},
               folder / "r50-training.pth")
    photo_folder(folder / "photos")
    return folder


def test_a_torchvision_state_dict_imports_with_its_logits_unchanged(weights, tmp_path):
    import torchvision
    reference = torchvision.models.resnet50(num_classes=3).eval()
    reference.load_state_dict(torch.load(weights / "r50.pth", weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    for name in ("r50.pth", "r50.safetensors", "r50-training.pth"):
        out = tmp_path / f"{name}.pt"
        meta = import_weights(weights / name, "resnet50", out, dataset=f"imagefolder:{weights / 'photos'}")
        loaded = load(out)
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), reference(x), rtol=1e-5, atol=1e-5)
        assert meta["class_names"] == ["cat", "dog", "fox"] and meta["input_size"] == 224
        assert meta["mean"] == [0.485, 0.456, 0.406] and meta["preprocess"] == "resize-centre-crop"
        assert loaded.meta["source"]["sha256"] == __import__("hashlib").sha256((weights / name).read_bytes()).hexdigest()
        assert loaded.model.num_features == 2048


def test_an_image_folder_is_read_as_an_imagenet_model_sees_it(weights):
    """224 px from the shorter side resized to 256 and the centre cropped, at ImageNet's mean and std."""
    from core.data import View, load_dataset
    view = View(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), crop=True)
    test = load_dataset(f"imagefolder:{weights / 'photos'}", "test", view=view)
    assert test.images.shape == (3, 3, 224, 224)  # one of five held out per class
    picture = Image.open(next(iter(sorted((weights / "photos" / "cat").iterdir()))))
    from core.images import resize_and_centre_crop
    steps = []
    pixels = resize_and_centre_crop(picture.convert("RGB"), 224, steps)
    w, h = picture.size  # 120 x 90+: the shorter side 90 -> 256
    assert pixels.shape == (3, 224, 224) and steps[0].startswith(f"resized {w}x{h} to {round(w * 256 / h)}x256")


@pytest.mark.slow
def test_imported_resnet50_and_densenet121_give_every_default_figure(weights, tmp_path):
    """core.analyze on both, at 64 px to stay quick on a CPU: every figure of the default report,
    filter correlation said not to apply to DenseNet (no one convolution makes its units)."""
    cache = tmp_path / "c.duckdb"
    for arch, name in (("resnet50", "r50.pth"), ("densenet121", "d121.pth")):
        out = tmp_path / f"{arch}.pt"
        done = run_cli("core.import_weights", str(weights / name), "--arch", arch, "--out", str(out),
                       "--dataset", f"imagefolder:{weights / 'photos'}", "--input-size", "64")
        assert done.returncode == 0 and done.stdout.startswith(f"saved {out}"), done.stderr
        report = run_cli("core.analyze", str(out), "--json", "--cache", str(cache))
        assert report.returncode == 0, report.stderr
        row = json.loads(report.stdout)  # one model: its object
        assert row["accuracy"]["accuracy"] is not None and len(row["selectivity"]["per_unit"]) == load(out).model.num_features
        if arch == "densenet121":
            assert row["headline"]["c_ic"] is None and "does not apply to densenet121" in report.stderr + json.dumps(row)
        else:
            assert row["headline"]["c_ic"] is not None


class Payload:
    """What a hostile pickle does when unpickled: writes a file."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_every_refusal_is_one_line_and_writes_nothing(weights, tmp_path):
    import torchvision
    marker = tmp_path / "pwned"
    torch.save({"fc.weight": Payload(marker)}, tmp_path / "hostile.pth")
    torch.save(torchvision.models.resnet18(num_classes=3), tmp_path / "module.pth")  # a whole model pickled
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, str(tmp_path / "scripted.pt"))
    (tmp_path / "notes.pth").write_text("not weights")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    folder = f"imagefolder:{weights / 'photos'}"
    cases = [
        ("hostile.pth", "resnet50", {}, "not a state dict"),
        ("module.pth", "resnet18", {}, "pickled whole model"),
        ("scripted.pt", "resnet18", {}, "TorchScript"),
        ("notes.pth", "resnet18", {}, "not a PyTorch weights file"),
        ("empty.safetensors", "resnet18", {}, "empty file"),
        ("bad.safetensors", "resnet18", {}, "not a readable safetensors file"),
        ("r50.pth", "resnet18", {}, "not a state dict of resnet18"),  # another architecture's keys
        ("r50.pth", "resnet50", {"classes": "10"}, "its head has 3 classes, not the 10 given"),
        ("r50.pth", "alexnet", {}, "unknown --arch"),
        ("r50.pth", "resnet50", {"dataset": "fashion-mnist"}, "1 channel(s); the model 3 and 3"),
    ]
    for name, arch, options, words in cases:
        out = tmp_path / "out.pt"
        with pytest.raises(WeightsError) as caught:
            import_weights(weights / name if (weights / name).exists() else tmp_path / name, arch, out,
                           **{"dataset": folder, **options})
        assert words in str(caught.value) and "\n" not in str(caught.value), (name, str(caught.value))
        assert not out.exists()
    assert not marker.exists()
    # the command line says the same in one line, with no traceback
    result = run_cli("core.import_weights", str(tmp_path / "module.pth"), "--arch", "resnet18",
                     "--dataset", folder, "--out", str(tmp_path / "x.pt"))
    assert "pickled whole model" in assert_one_line_error(result) and not (tmp_path / "x.pt").exists()
    existing = tmp_path / "mine.pt"
    existing.write_text("a file of the user's")
    with pytest.raises(WeightsError, match="never overwrites"):
        import_weights(weights / "r50.pth", "resnet50", existing, dataset=folder)
    assert existing.read_text() == "a file of the user's"


def test_a_torchscript_archive_is_refused_from_its_directory_before_anything_is_read(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "s.pt"))
    assert any(n.endswith("constants.pkl") for n in zipfile.ZipFile(tmp_path / "s.pt").namelist())
    with pytest.raises(WeightsError, match="TorchScript"):
        read_weights(tmp_path / "s.pt")


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """torchvision's ResNet-18 with an ImageNet-sized head, as a downloaded file would be."""
    import torchvision
    path = tmp_path_factory.mktemp("r18") / "r18.pth"
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    return path


def test_a_run_starts_from_the_weights_with_a_new_head_for_its_classes(resnet18_file, weights):
    """--init: every weight but the head is the file's; the 1000-class head is replaced by one of
    the folder's 3 classes (seeded); the LSG gate has the real unit count (512)."""
    from core.losses import create_objective
    from core.trainer import TrainConfig, build, load_data
    config = TrainConfig(method="lsg", arch="resnet18", dataset=f"imagefolder:{weights / 'photos'}",
                         init=str(resnet18_file), input_size=32, out="unused.pt")
    data = load_data(config, torch.device("cpu"))
    assert data.images.shape[1:] == (3, 32, 32) and data.info.extra["crop"]
    model, _, _ = build(config, create_objective("lsg"), data.info, torch.device("cpu"))
    source = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(model.conv1.weight, source["conv1.weight"]) and model.fc.weight.shape == (3, 512)
    assert model.gate.shape == (3, 512)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ce", "minimax", "lsg", "maxnte", "label_smoothing", "confidence_penalty",
                                    "selectivity"])
def test_fine_tuning_an_imported_resnet18_works_with_every_objective(method, resnet18_file, weights, tmp_path):
    from core.trainer import TrainConfig, train
    options = {"warmup_epochs": 0, "period": 1} if method == "lsg" else {}
    out = tmp_path / f"{method}.pt"
    train(TrainConfig(method=method, options=options, arch="resnet18", dataset=f"imagefolder:{weights / 'photos'}",
                      init=str(resnet18_file), input_size=32, epochs=1, batch_size=4, lr=0.01, out=str(out)))
    loaded = load(out)
    assert loaded.meta["init"] == str(resnet18_file) and loaded.meta["preprocess"] == "resize-centre-crop"
    assert loaded.model.num_classes == 3 and loaded.meta["test_images"] == 3


def test_a_weights_file_among_the_models_is_named_not_ignored(weights, tmp_path):
    """A .pth in a model folder is listed as a weights file to add; a state dict saved as .pt is
    refused as 'not a Unit Lens checkpoint but a state dict', with the way to import it."""
    import shutil

    from core.catalog import weight_files
    from core.checkpoints import CheckpointError
    shutil.copy(weights / "r50.pth", tmp_path / "r50.pth")
    shutil.copy(weights / "r50.pth", tmp_path / "r50.pt")
    assert [p.name for p in weight_files([tmp_path])] == ["r50.pth"]
    with pytest.raises(CheckpointError, match="not a Unit Lens checkpoint but a state dict: make it one with "
                                              "python -m core.import_weights"):
        load(tmp_path / "r50.pt")


def test_head_only_epochs_train_the_new_head_and_leave_the_body_as_the_file_had_it(resnet18_file, weights, tmp_path):
    from core.trainer import TrainConfig, train
    out = tmp_path / "probe.pt"
    train(TrainConfig(method="ce", arch="resnet18", dataset=f"imagefolder:{weights / 'photos'}", init=str(resnet18_file),
                      input_size=32, epochs=1, head_only_epochs=1, batch_size=4, lr=0.05, out=str(out)))
    source = torch.load(resnet18_file, weights_only=True)
    state = load(out).model.state_dict()
    for key in ("conv1.weight", "layer4.1.conv2.weight", "bn1.running_mean", "layer1.0.bn1.running_var"):
        assert torch.equal(state[key], source[key]), key
    assert load(out).meta["head_only_epochs"] == 1
    with pytest.raises(Exception, match="head-only epochs must lie in 0..1"):
        train(TrainConfig(method="ce", epochs=1, head_only_epochs=2, out=str(tmp_path / "x.pt")))


def test_our_own_grey_network_imports_with_its_channel_count(tmp_path, data_root):
    """A resnet20 state dict of a Fashion-MNIST model (one channel), as another script saved it."""
    from core.models import create_model
    torch.save(create_model("resnet20", 10, 1).state_dict(), tmp_path / "mine.pth")
    meta = import_weights(tmp_path / "mine.pth", "resnet20", tmp_path / "mine.pt", dataset="fashion-mnist",
                          mean=[0.286], std=[0.353])
    assert meta["channels"] == 1 and meta["input_size"] == 28 and load(tmp_path / "mine.pt").model.in_channels == 1


def test_torchvisions_published_densenet_keys_and_the_legacy_format_import(tmp_path):
    """torchvision's hosted DenseNet weights spell 'norm.1' for 'norm1' (its own loader renames them),
    files written before PyTorch 1.6 are not zip archives, and older files lack batch norm's
    num_batches_tracked: all three load, to the same logits."""
    import re
    import torchvision
    torch.manual_seed(0)
    reference = torchvision.models.densenet121(num_classes=3).eval()
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.", r"\1.\2.", k): v
           for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "d121.pth", _use_new_zipfile_serialization=False)
    meta = import_weights(tmp_path / "d121.pth", "densenet121", tmp_path / "d121.pt", classes="3",
                          dataset=f"imagefolder:{photo_folder(tmp_path / 'p')}")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load(tmp_path / "d121.pt").model(x), reference(x), rtol=1e-5, atol=1e-5)
    assert meta["num_features"] == 1024
