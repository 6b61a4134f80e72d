"""Real Fashion-MNIST, batch augmentation, preprocessing of uploads."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.augment import augment_batch
from core.data import DataError, black_value, load_dataset
from core.images import ImageError, load_image
from core.inputs import prepare


def test_fashion_mnist_loads_normalised(data_root):
    test = load_dataset("fashion-mnist", "test", data_root)
    assert len(test) == 10_000 and test.images.shape == (10_000, 1, 28, 28)
    assert test.info.class_names[9] == "Ankle boot"
    assert sorted(torch.bincount(test.labels).tolist()) == [1000] * 10
    # normalised with the training mean/std: the test mean is near 0, the std near 1
    assert abs(test.images.mean().item()) < 0.05 and abs(test.images.std().item() - 1) < 0.05
    image, label = test[0]
    assert image.shape == (1, 28, 28) and isinstance(label, int)


def test_fashion_mnist_is_read_from_its_idx_files_as_torchvision_reads_it(data_root):
    from core.data import FashionMNIST, _torchvision_arrays
    source = FashionMNIST(data_root)
    for split in ("train", "test"):
        ours, theirs = source.read(split), _torchvision_arrays(source.torchvision_dataset(split))
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_idx_by_hand_and_damaged_idx_files(tmp_path):
    from core.data import read_idx
    good = tmp_path / "good"
    good.write_bytes(b"\0\0\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6)))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    short = tmp_path / "short"
    short.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_idx(short)
    header_only = tmp_path / "header-only"
    header_only.write_bytes(good.read_bytes()[:6])
    with pytest.raises(DataError, match="truncated"):
        read_idx(header_only)
    text = tmp_path / "text"
    text.write_text("not idx")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(text)


def test_unknown_dataset_and_missing_data(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist-ish")
    with pytest.raises(DataError, match="not found"):
        load_dataset("cifar10", "test", tmp_path)


def test_augment_without_padding_or_flip_is_identity():
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(augment_batch(x, 0, flip=False), x)


def test_augment_crops_are_windows_of_the_padded_batch():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    out = augment_batch(x, padding=2, flip=False, generator=torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_augment_flip_is_mirror_and_fill_is_black():
    x = torch.randn(64, 1, 4, 4)
    out = augment_batch(x, 0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, s.flip(2)) for o, s in zip(out, x)]
    same = [torch.equal(o, s) for o, s in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same)) and 10 < sum(flipped) < 54
    fill = torch.tensor([-7.0])
    out = augment_batch(torch.zeros(16, 1, 4, 4), 2, flip=False, fill=fill,
                        generator=torch.Generator().manual_seed(1))
    assert set(out.unique().tolist()) <= {0.0, -7.0} and (out == -7.0).any()


def png_bytes(image: Image.Image, fmt="PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def test_preprocess_matches_the_dataset_pipeline(data_root):
    test = load_dataset("fashion-mnist", "test", data_root)
    raw = ((test.images[0, 0] * 0.3530 + 0.2860) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    upload = load_image(png_bytes(Image.fromarray(raw, "L")))
    x = prepare(upload, test.info).x
    assert x.shape == (1, 1, 28, 28)
    torch.testing.assert_close(x[0], test.images[0], atol=1e-5, rtol=0)


def test_preprocess_colour_resize_and_value(data_root):
    info = load_dataset("fashion-mnist", "test", data_root).info
    white = Image.new("RGB", (300, 100), (255, 255, 255))
    x = prepare(load_image(png_bytes(white)), info, invert=False).x
    assert x.shape == (1, 1, 28, 28)
    torch.testing.assert_close(x, torch.full_like(x, (1 - 0.2860) / 0.3530))
    inverted = prepare(load_image(png_bytes(white)), info).x  # a light background is inverted by default
    torch.testing.assert_close(inverted, torch.full_like(x, -0.2860 / 0.3530))
    assert torch.allclose(black_value(info), torch.tensor([-0.2860 / 0.3530]))


def test_exif_rotation_is_applied(data_root):
    info = load_dataset("fashion-mnist", "test", data_root).info
    array = np.zeros((40, 40), np.uint8)
    array[:, :10] = 255  # bright left strip
    image = Image.fromarray(array, "L")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    x = prepare(load_image(png_bytes(image, "JPEG", exif=exif.tobytes(), quality=95)), info).x
    top_row, left_col = x[0, 0, 0, :].mean(), x[0, 0, :, 0].mean()
    assert top_row > 1.0 and left_col < top_row  # the strip now runs along the top


def test_bad_images_give_one_line_reasons():
    for data in (b"", b"not an image at all", png_bytes(Image.new("L", (50, 50)))[:60]):
        with pytest.raises(ImageError) as info:
            load_image(data)
        assert "\n" not in str(info.value)


def test_cifar100_class_names_are_read_without_building_objects(tmp_path):
    """The meta file is unpickled by an unpickler that refuses every class: plain data reads,
    anything that would build an object (and could run code) is a one-line DataError."""
    import collections
    import pickle

    from core.data import CIFAR100, DataError
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"class {i}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": ["a"]}))
    assert CIFAR100(tmp_path).class_names == names
    (folder / "meta").write_bytes(pickle.dumps(collections.OrderedDict(fine_label_names=names)))
    with pytest.raises(DataError, match="refused to unpickle collections.OrderedDict"):
        CIFAR100(tmp_path).class_names


def test_split_indices_count_the_split_whatever_its_size(tmp_path, data_root):
    """Compare's image picker draws from these: all images of the split, or those of one class."""
    from core.data import split_indices
    for split in ("train", "test"):
        for cls, count in (("cat", 2), ("dog", 3)):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / split / cls / f"{i}.png")
    name = f"imagefolder:{tmp_path}"
    assert split_indices(name, root=data_root) == [0, 1, 2, 3, 4]
    assert split_indices(name, 0, root=data_root) == [0, 1] and split_indices(name, 1, root=data_root) == [2, 3, 4]
    boots = split_indices("fashion-mnist", 9, root=data_root)
    assert len(boots) == 1000 and len(split_indices("fashion-mnist", root=data_root)) == 10_000
    assert all(load_dataset("fashion-mnist", "test", data_root).labels[i] == 9 for i in boots[:20])


def write_cifar10(root, batch_for):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        (folder / name).write_bytes(batch_for(i))
    return folder


def test_cifar_batches_are_read_as_arrays_and_nothing_else(tmp_path):
    """CIFAR's batches are pickles: ours builds numpy arrays of bytes and plain data only (torchvision's
    reader would build whatever a replaced file names). Pixel (image, channel, row, column) of a batch's
    row of 3072 bytes is channel * 1024 + row * 32 + column, as CIFAR lays it out."""
    import pickle

    from core.data import DataError
    rows = np.arange(6 * 2 * 3072, dtype=np.int64).reshape(6, 2, 3072) % 251

    def batch(i, protocol=2):  # protocol 2 spells bytes through _codecs.encode, as Python 2's files read
        return pickle.dumps({"batch_label": f"batch {i}", "data": rows[i].astype(np.uint8),
                             "labels": [i, 9 - i], "filenames": ["a.png", "b.png"]}, protocol=protocol)
    write_cifar10(tmp_path / "p2", batch)
    write_cifar10(tmp_path / "p5", lambda i: batch(i, protocol=5))
    for root in (tmp_path / "p2", tmp_path / "p5"):
        train = load_dataset("cifar10", "train", root)
        assert len(train) == 10 and train.labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
        test = load_dataset("cifar10", "test", root)
        assert test.labels.tolist() == [5, 4]
        raw = (test.images * torch.tensor(test.info.std).view(3, 1, 1) + torch.tensor(test.info.mean).view(3, 1, 1))
        assert raw[1, 2, 3, 4].mul(255).round().item() == rows[5, 1, 2 * 1024 + 3 * 32 + 4]

    class ForgedDtype:  # numpy's own dtype unpickling trusts the state it is given (an object dtype in
        def __init__(self, kind, state):  # a sub-array without its flag made an array of the file's pointers)
            self.kind, self.state = kind, state

        def __reduce__(self):
            return np.dtype, (self.kind, False, True), self.state

    class ForgedArray:  # an array of that dtype over the file's bytes: plain pickle.loads then reading it segfaults
        def __reduce__(self):
            return np.ndarray, ((1,), ForgedDtype("V8", (3, "|", (np.dtype("O"), (1,)), None, None, 8, 8, 0)), b"A" * 8)

    marker = tmp_path / "pwned"
    evil = b"\x80\x04cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    for hostile, reason in ((evil, "refused to unpickle os.system"),
                            (pickle.dumps({"data": np.array([object()] * 3072).reshape(1, -1), "labels": [0]}),
                             "refused a numpy dtype 'O8'"),
                            (pickle.dumps({"data": ForgedDtype("V8", (3, "|", (np.dtype("O"), (1,)), None, None, 8, 8, 0)),
                                           "labels": [0]}), "refused a numpy dtype"),
                            (pickle.dumps({"data": ForgedArray(), "labels": [0]}), "refused a numpy dtype"),
                            (pickle.dumps({"data": ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 63)), "labels": [0]}),
                             "state is more than a plain"),
                            (pickle.dumps({"data": rows[0].astype(np.uint8), "labels": [[1], [1, 2]]}),
                             "not a cifar10 batch"),
                            (b"K\x01}b.", "not a cifar10 batch"),
                            (pickle.dumps({"data": rows[0].astype(np.uint8), "labels": [0, 10]}), "not a cifar10 batch"),
                            (b"\x80\x04truncated", "not a cifar10 batch")):
        root = tmp_path / f"hostile{len(reason)}{len(hostile)}"
        write_cifar10(root, lambda i: hostile if i == 5 else batch(i))
        with pytest.raises(DataError, match=reason):
            load_dataset("cifar10", "test", root)
    assert not marker.exists()


def image_tree(root, sizes: dict[str, int], side: int = 8):
    """One folder per class of small PNGs, each a different shade (no train/ or test/)."""
    for c, (cls, count) in enumerate(sizes.items()):
        (root / cls).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (side, side), (i % 256, 60 * c, i // 256)).save(root / cls / f"img{i:03d}.png")
    return root


def test_an_image_folder_without_splits_is_split_once_into_training_and_held_out_images(tmp_path):
    """No image is in both splits; each class holds out round(20%) (at least one); the split depends on
    the file names alone (a copy of the folder elsewhere splits the same way) and is described with a
    hash of the held-out list, which the trainer records in the checkpoint."""
    from core.data import ImageFolderSource
    sizes = {"circle": 30, "square": 12, "star": 3}
    source = ImageFolderSource(tmp_path, str(image_tree(tmp_path / "a", sizes)))
    train, test = ({(p.parent.name, p.name) for p, _ in source.files(s)} for s in ("train", "test"))
    assert not train & test and len(train | test) == sum(sizes.values())
    held = {cls: sum(1 for c, _ in test if c == cls) for cls in sizes}
    assert held == {"circle": 6, "square": 2, "star": 1}
    images, labels = source.read("test")
    assert images.shape == (9, 3, 64, 64) and torch.bincount(labels).tolist() == [6, 2, 1]
    copy = ImageFolderSource(tmp_path, str(image_tree(tmp_path / "b", sizes)))
    assert {(p.parent.name, p.name) for p, _ in copy.files("test")} == test
    split = source.info().extra["split"]
    assert split["held_out"] == 9 and split["held_out_sha256"] == copy.info().extra["split"]["held_out_sha256"]
    held_star = next(name for cls, name in test if cls == "star")
    (tmp_path / "b" / "star" / held_star).unlink()  # another folder, another held-out list
    assert ImageFolderSource(tmp_path, str(tmp_path / "b")).info().extra["split"]["held_out_sha256"] != split["held_out_sha256"]


def test_a_folder_with_train_and_test_is_read_as_it_is(tmp_path):
    from core.data import ImageFolderSource
    image_tree(tmp_path / "train", {"a": 4, "b": 4})
    image_tree(tmp_path / "test", {"a": 1, "b": 2})
    source = ImageFolderSource(tmp_path, str(tmp_path))
    assert len(source.files("train")) == 8 and len(source.files("test")) == 3
    assert source.info().extra["split"] == {"rule": "the folder's own train/ and test/"}


def test_hidden_folders_are_no_classes(tmp_path):
    from core.data import ImageFolderSource
    image_tree(tmp_path, {"a": 2, "b": 2, ".ipynb_checkpoints": 2})
    assert ImageFolderSource(tmp_path, str(tmp_path)).class_names == ["a", "b"]


def test_a_limit_is_a_seeded_class_balanced_sample():
    """Counted by hand: 4 classes of 200 read class by class, 500 kept -> 125 each (the first 500 kept
    200, 200, 100 and 0); a class smaller than its share gives all it has, the others fill the rest."""
    from core.data import balanced_sample
    labels = torch.arange(4).repeat_interleave(200)
    chosen = balanced_sample(labels, 500)
    assert torch.bincount(labels[chosen]).tolist() == [125, 125, 125, 125]
    assert chosen.tolist() == sorted(set(chosen.tolist())) and torch.equal(chosen, balanced_sample(labels, 500))
    assert not torch.equal(chosen, balanced_sample(labels, 500, seed=1))
    uneven = torch.tensor([0] * 10 + [1] * 200 + [2] * 200)
    assert torch.bincount(uneven[balanced_sample(uneven, 300)]).tolist() == [10, 145, 145]
    assert torch.bincount(uneven[balanced_sample(uneven, 7)]).tolist() in ([3, 2, 2], [2, 3, 2], [2, 2, 3])
    assert balanced_sample(uneven, 1000).tolist() == list(range(410))


def test_the_trainers_limit_keeps_every_class_of_an_image_folder(tmp_path):
    """`--limit 40` on 4 classes x 25 (read class by class): 10 training images of each class, and the
    held-out split (5 a class) whole. Training records the split in the checkpoint."""
    from core.checkpoints import load
    from core.trainer import TrainConfig, load_data, train
    folder = image_tree(tmp_path / "shapes", {"a": 25, "b": 25, "c": 25, "d": 25})
    config = TrainConfig(method="ce", dataset=f"imagefolder:{folder}", limit=40, epochs=1, batch_size=8,
                         out=str(tmp_path / "m.pt"))
    data = load_data(config, torch.device("cpu"))
    assert torch.bincount(data.labels).tolist() == [10, 10, 10, 10]
    assert torch.bincount(data.test_labels).tolist() == [5, 5, 5, 5]
    train(config)
    meta = load(tmp_path / "m.pt").meta
    assert meta["data_split"]["held_out"] == 20 and meta["test_images"] == 20


def test_a_cifar_batch_that_shares_one_list_deeply_or_asks_for_another_codec_is_cheap(tmp_path):
    """800 bytes of pickle that share one list 2^30 ways (the memo), rebuilt once each; a byte
    string spelt through a codec other than latin-1 (punycode: quadratic time) is refused."""
    import pickle
    import time as clock

    from core.data import ArrayUnpickler, DataError
    nested = []
    for _ in range(30):
        nested = [nested, nested]
    data = pickle.dumps({"data": nested, "labels": []}, protocol=2)
    assert len(data) < 1000
    started = clock.perf_counter()
    loaded = ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    assert clock.perf_counter() - started < 5 and loaded["data"][0] is loaded["data"][1]
    puny = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x08\x00\x00\x00punycodeq\x02\x86q\x03Rq\x04."
    with pytest.raises(DataError, match="latin-1"):
        ArrayUnpickler(io.BytesIO(puny), encoding="latin1").load()


def test_a_class_folder_whose_images_cannot_be_read_is_said_not_learnt(tmp_path):
    """It trained on the other classes and reported 100%."""
    from core.data import ImageFolderSource
    image_tree(tmp_path, {"a": 5, "b": 5})
    for i in range(5):
        (tmp_path / "b" / f"img{i:03d}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="b holds no image Pillow can read"):
        ImageFolderSource(tmp_path, str(tmp_path)).read("train")


def test_a_random_resized_crop_of_the_whole_image_at_its_own_aspect_is_the_image():
    """Area 1 and aspect 1 give the identity box: every pixel sampled at its own centre."""
    from core.augment import random_resized_crop
    x = torch.rand(3, 3, 8, 8)
    torch.testing.assert_close(random_resized_crop(x, torch.Generator().manual_seed(0), (1.0, 1.0), (1.0, 1.0)), x)
    theta_free = random_resized_crop(x, torch.Generator().manual_seed(0))
    assert theta_free.shape == x.shape and torch.isfinite(theta_free).all()
    again = random_resized_crop(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(theta_free, again)  # seeded: the same crops
