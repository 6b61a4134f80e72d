"""Image folders too large to hold are streamed (a DataLoader's workers decode them), and
`torchrun -m core.analyze` shares the forward passes between processes: both give the figures
of one process holding the folder whole (issue 29). Tested on a generated folder with one file
that is not an image, a random ResNet-18 and two CPU processes under gloo."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from core import data
from core.analysis.engine import REPORT, Analyzer
from core.data import StreamedImages, TensorImageDataset
from core.store import Store

from .conftest import PYTHON, ROOT

CLASSES, PER_CLASS = 4, 10


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A one-tree folder of 4 x 10 JPEGs plus a file named .JPEG that is text (its name's hash
    holds it out: the pages meet it in the test split), and a random ResNet-18 imported for it at 32 px."""
    import torchvision

    from bench.imagenet_scale import make_folder
    from core.import_weights import import_weights
    work = tmp_path_factory.mktemp("stream")
    folder = make_folder(work / "images", CLASSES, PER_CLASS, size=(40, 30))
    (folder / "n00000001" / "1_text.JPEG").write_text("not a picture")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=CLASSES).state_dict(), work / "r18.pth")
    import_weights(work / "r18.pth", "resnet18", work / "r18.pt", dataset=f"imagefolder:{folder}", input_size=32)
    return work / "r18.pt"


def analyzer(path, store_path, monkeypatch, preload_mb: str, **options) -> Analyzer:
    monkeypatch.setenv("UNITLENS_PRELOAD_MB", preload_mb)
    data.forget()  # the held or streamed split is kept per process: read it again under this budget
    return Analyzer.from_path(path, Store(store_path), feature_dir=None, **options)


def test_a_streamed_folder_gives_the_figures_of_the_held_one(folder_model, tmp_path, monkeypatch):
    held = analyzer(folder_model, tmp_path / "held.duckdb", monkeypatch, "1024")
    held_results = held.report(REPORT)
    held_images = {split: held.dataset(split) for split in ("test", "train")}
    streamed = analyzer(folder_model, tmp_path / "streamed.duckdb", monkeypatch, "0")
    assert isinstance(held_images["test"], TensorImageDataset)
    assert isinstance(streamed.dataset("test"), StreamedImages)
    monkeypatch.setenv("UNITLENS_LOADER_WORKERS", "1")  # a worker process decodes, as on a large folder
    results = streamed.report(REPORT)

    for split in ("test", "train"):
        ours, theirs = streamed.features(split, None), held.features(split, None)
        assert torch.equal(ours.labels, theirs.labels)
        assert torch.allclose(ours.features, theirs.features, atol=1e-5)
        assert torch.allclose(ours.logits, theirs.logits, atol=1e-5)
        # the rows are the readable files; the text file's position has none
        listed = len(streamed.dataset(split))
        assert len(ours.labels) == listed - (1 if ours.index is not None else 0)
        rows = torch.arange(len(ours.labels))
        pictures = streamed.dataset(split).take(ours.positions(rows))
        assert torch.allclose(pictures, held_images[split].images, atol=1e-6)
    assert sum(streamed.features(s, None).index is not None for s in ("test", "train")) == 1
    assert any("1 of the" in notice and "could not be read" in notice for notice in streamed.store.notices)

    assert results["accuracy"]["accuracy"] == held_results["accuracy"]["accuracy"]
    assert results["accuracy"]["per_class"] == held_results["accuracy"]["per_class"]
    assert results["selectivity"]["per_unit"] == pytest.approx(held_results["selectivity"]["per_unit"], abs=1e-5)
    assert results["gate"]["phi"] == pytest.approx(held_results["gate"]["phi"], abs=1e-5)


def test_pictures_are_numbered_by_their_place_in_the_folder(folder_model, tmp_path, monkeypatch):
    """A page shows an image folder's picture by its place in the listing, decoding that one file
    (a 1000-class split is not read for one picture); the analyses name the same numbers whether
    the split was held or streamed, and the file that is no image keeps its number and no row."""
    import numpy as np

    from core.checkpoints import load
    from core.data import DataError, dataset_image, denormalise, split_indices, view_of
    meta = load(folder_model).meta
    name, view = meta["dataset"], view_of(meta)
    data.forget()
    split = "test"
    listed = {split: [path.name for path, _ in data.listing(name, view=view)[0].files(split)]}
    junk = listed[split].index("1_text.JPEG")
    assert split_indices(name, split=split, view=view) == list(range(len(listed[split])))
    assert junk in split_indices(name, 1, split=split, view=view)
    with pytest.raises(DataError, match="1_text.JPEG cannot be read as an image"):
        dataset_image(name, junk, split, view=view)
    with pytest.raises(DataError, match=f"lists {len(listed[split])} images"):
        dataset_image(name, len(listed[split]), split, view=view)
    assert not data._CACHE  # no split was read whole for them

    tops = {}
    for budget in ("1024", "0"):
        engine = analyzer(folder_model, tmp_path / f"{budget}.duckdb", monkeypatch, budget, split=split)
        tops[budget] = engine.run("top_images", top=PER_CLASS * CLASSES)["index"]
    assert tops["1024"] == tops["0"]
    held = analyzer(folder_model, tmp_path / "held.duckdb", monkeypatch, "1024").dataset(split)
    assert held.numbers is not None and junk not in held.numbers.tolist()
    assert sorted(tops["0"][0]) == held.numbers.tolist()  # every readable image ranked, by its number
    for row, number in enumerate(held.numbers.tolist()):
        picture, label = dataset_image(name, number, split, view=view)
        from_held = (denormalise(held.images[row], held.info) * 255).round().astype(np.uint8)
        assert np.array_equal(np.asarray(picture), from_held) and label == int(held.labels[row])


def test_compare_says_a_picked_file_is_no_picture(folder_model, tmp_path):
    """The test image a user picks on Compare that is no picture gets one line, not an error."""
    from streamlit.testing.v1 import AppTest

    from core.checkpoints import load
    from core.data import split_indices, view_of

    from . import ui_env
    from .test_app import no_errors
    meta = load(folder_model).meta
    files = data.listing(meta["dataset"], view=view_of(meta))[0].files("test")
    names = [files[n][0].name for n in split_indices(meta["dataset"], 1, view=view_of(meta))]  # the class's, as picked
    junk, other = names.index("1_text.JPEG"), next(i for i, name in enumerate(names) if name != "1_text.JPEG")
    previous = ui_env.apply(ui_env.app_environment(folder_model.parent, tmp_path, {}))
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        at.switch_page("pages/compare.py").run()
        at.selectbox(key="compare_class").set_value("n00000001").run()
        at.number_input(key="compare_index").set_value(junk).run()
        no_errors(at)
        said = [i.value.replace("\\", "") for i in at.info]  # drawn as plain text: markdown escaped
        assert any("1_text.JPEG cannot be read as an image" in line and line.endswith("pick another.") for line in said)
        at.number_input(key="compare_index").set_value(other).run()
        no_errors(at)
        assert not any("cannot be read" in i.value for i in at.info)
    finally:
        ui_env.restore(previous)


def test_kept_rows_say_which_images_they_are():
    from core.analysis.features import kept
    dataset = TensorImageDataset(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 1, 0]), None)
    features, logits = torch.arange(8.0).view(4, 2), torch.zeros(4, 2)
    all_read = kept(dataset, features, logits, torch.ones(4, dtype=torch.bool))
    assert all_read.index is None and all_read.positions(torch.tensor([2])).tolist() == [2]
    some = kept(dataset, features, logits, torch.tensor([True, False, True, True]))
    assert some.index.tolist() == [0, 2, 3] and some.labels.tolist() == [0, 1, 0]
    assert some.features.tolist() == [[0.0, 1.0], [4.0, 5.0], [6.0, 7.0]]
    assert some.positions(torch.tensor([1, 2])).tolist() == [2, 3]


def test_torchrun_shares_the_forward_passes_and_gives_one_process_figures(folder_model, tmp_path):
    """Two CPU processes (gloo) each run half of every forward pass; rank 0 gathers them in order,
    analyses and prints one report, equal to a single process's; the folder is streamed in both."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "UNITLENS_PRELOAD_MB": "0",
           "UNITLENS_LOADER_WORKERS": "0"}
    args = ["-m", "core.analyze", str(folder_model), "--json"]
    shared = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *args, "--cache", str(tmp_path / "two" / "c.duckdb")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert shared.returncode == 0, shared.stderr[-2000:]
    alone = subprocess.run([PYTHON, *args, "--cache", str(tmp_path / "one" / "c.duckdb")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    two, one = json.loads(shared.stdout), json.loads(alone.stdout)  # one report: rank 1 printed nothing
    assert two["accuracy"] == one["accuracy"]
    for key, value in one["headline"].items():
        assert two["headline"][key] == pytest.approx(value, abs=1e-5), key
    assert two["selectivity"]["per_unit"] == pytest.approx(one["selectivity"]["per_unit"], abs=1e-5)
    # the gathered features, kept by rank 0 beside its cache, are the single process's, row for row
    for split in ("test", "train"):
        files = [next((tmp_path / run).rglob(f"*-{split}-all.pt")) for run in ("two", "one")]
        assert all("-streamed-" in f.name for f in files)  # never read back by a process that holds the split
        saved = [torch.load(f, weights_only=True) for f in files]
        assert torch.equal(saved[0]["labels"], saved[1]["labels"])
        assert torch.allclose(saved[0]["features"], saved[1]["features"], atol=1e-5)
        assert ("index" in saved[0]) == ("index" in saved[1])


def test_training_on_a_streamed_folder_matches_training_on_the_held_one(tmp_path, monkeypatch):
    """Same seed, same order, same decoded pictures: one epoch on a streamed folder (a loader
    worker decoding) gives the weights of one on the folder held whole; with an unreadable file
    added, a streamed run still completes and its test accuracy counts readable images only."""
    from bench.imagenet_scale import make_folder
    from core.checkpoints import load

    from .conftest import run_cli
    folder = make_folder(tmp_path / "images", 3, 8, size=(24, 20))
    args = ["--dataset", f"imagefolder:{folder}", "--input-size", "16", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--snapshot-per-class", "1"]
    runs = {}
    for budget, workers in (("1024", "0"), ("0", "1")):
        monkeypatch.setenv("UNITLENS_PRELOAD_MB", budget)
        monkeypatch.setenv("UNITLENS_LOADER_WORKERS", workers)
        data.forget()
        out = tmp_path / f"{budget}.pt"
        result = run_cli("core.train", *args, "--out", str(out))
        assert result.returncode == 0, result.stderr
        runs[budget] = load(out)
        assert any(isinstance(split, StreamedImages) for split in data._CACHE.values()) == (budget == "0")
    held, streamed = runs["1024"].model.state_dict(), runs["0"].model.state_dict()
    assert all(torch.allclose(held[k].float(), streamed[k].float(), atol=1e-6) for k in held)
    assert runs["0"].meta["test_accuracy"] == runs["1024"].meta["test_accuracy"]

    (folder / "n00000002" / "2_junk.JPEG").write_text("not a picture")
    data.forget()
    result = run_cli("core.train", *args, "--out", str(tmp_path / "junk.pt"))
    assert result.returncode == 0, result.stderr
    meta = load(tmp_path / "junk.pt").meta
    assert meta["complete"] and meta["test_images"] == 6  # the junk file fell among the training images
    assert "note: 1 training and 0 held-out files of the folder could not be read" in result.stderr

    (folder / "n00000000" / "0_5.JPEG").write_text("damaged since")  # one of the held-out images
    data.forget()
    result = run_cli("core.train", *args, "--out", str(tmp_path / "damaged.pt"))
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "damaged.pt").meta["test_images"] == 5  # what test_accuracy is over
    assert "note: 1 training and 1 held-out files of the folder could not be read" in result.stderr
    monkeypatch.setenv("UNITLENS_PRELOAD_MB", "1024")  # held whole, the same files are left out and said
    data.forget()
    result = run_cli("core.train", *args, "--out", str(tmp_path / "held-damaged.pt"))
    assert result.returncode == 0 and "note: 1 training and 1 held-out files" in result.stderr


def claims_giant_size(path, side: int = 60_000) -> None:
    """A real small JPEG whose frame header is rewritten to claim `side` x `side` pixels."""
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buffer, "JPEG")
    raw = bytearray(buffer.getvalue())
    frame = raw.index(b"\xff\xc0")  # baseline frame: marker, length, precision, height, width
    raw[frame + 5:frame + 9] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("budget", ["1024", "0"])
def test_bad_folders_at_scale_get_one_line(tmp_path, monkeypatch, budget):
    """Held or streamed: a class folder of thousands of empty files named as images, a class of
    a 10 GB file (sparse: no disk used) beside non-images, and a JPEG that claims 60,000 x 60,000
    pixels (left out of a split that has readable images, never decoded)."""
    from bench.imagenet_scale import make_folder

    from .conftest import assert_one_line_error, run_cli
    monkeypatch.setenv("UNITLENS_PRELOAD_MB", budget)
    empty = make_folder(tmp_path / "empty", 2, 4, size=(24, 20))
    for i in range(3000):
        (empty / "n00000001" / f"blank_{i}.jpg").touch()
    for i in range(4):
        (empty / "n00000001" / f"1_{i}.JPEG").unlink()
    huge = make_folder(tmp_path / "huge", 2, 4, size=(24, 20))
    for i in range(4):
        (huge / "n00000000" / f"0_{i}.JPEG").unlink()
    with open(huge / "n00000000" / "big.jpg", "wb") as f:
        f.truncate(10 * 2**30)
    for i in range(50):
        (huge / "n00000000" / f"notes_{i}.png").write_bytes(b"%PDF-1.4 " + bytes(200))
    for folder in (empty, huge):
        data.forget()
        result = run_cli("core.train", "--dataset", f"imagefolder:{folder}", "--input-size", "16", "--epochs", "1",
                         "--device", "cpu", "--out", str(tmp_path / "m.pt"))
        assert "holds no image Pillow can read" in assert_one_line_error(result)
    assert not (tmp_path / "m.pt").exists()

    claims = make_folder(tmp_path / "claims", 2, 6, size=(24, 20))
    claims_giant_size(claims / "n00000000" / "0_0.JPEG")  # whichever split it falls in
    data.forget()
    result = run_cli("core.train", "--dataset", f"imagefolder:{claims}", "--input-size", "16", "--epochs", "1",
                     "--device", "cpu", "--out", str(tmp_path / "c.pt"))
    assert result.returncode == 0, result.stderr
    from core.checkpoints import load
    meta = load(tmp_path / "c.pt").meta
    assert meta["complete"]
