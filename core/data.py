"""Datasets on disk: the sources (declared as data), preloaded as tensors, their preparation and
the `python -m core.data` command line. Batch augmentation is in core/augment.py; pictures are
read and converted in core/images.py (image folders here, uploads through core/inputs.py).

Every dataset is held in memory as one normalised float tensor (N, C, H, W): evaluation and
training then slice batches without per-sample Python work.
"""
from __future__ import annotations

import functools
import gzip
import itertools
import hashlib
import math
import os
import pickle
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .catalog import PROJECT_ROOT
from .errors import UserError
from .images import ImageError, load_image, to_uint8

DEFAULT_DATA_ROOT = Path(os.environ.get("UNITLENS_DATA", PROJECT_ROOT / "data"))
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


class DataError(UserError):
    """A dataset is unknown or not on disk; the message says how to get it."""


@dataclass
class DatasetInfo:
    """What a model must know about its data; stored in every checkpoint."""
    name: str
    class_names: list[str]
    channels: int
    input_size: int
    mean: list[float]
    std: list[float]
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class View:
    """How a model sees an image folder: the side it takes, its mean and std, and whether a
    picture is resized then centre-cropped (ImageNet's evaluation, for models made for it) or
    padded to a square (ours). Recorded in every checkpoint (input_size, mean, std, preprocess)."""
    input_size: int = 64
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    crop: bool = False


CROP = "resize-centre-crop"  # a checkpoint's "preprocess" for crop views
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # torchvision's families were made with them


def view_of(meta: dict) -> View | None:
    """The view a checkpoint's model has of an image folder (None for the fixed datasets, whose
    images are read as they are)."""
    if not str(meta.get("dataset", "")).startswith("imagefolder:"):
        return None
    return View(int(meta["input_size"]), tuple(meta["mean"]), tuple(meta["std"]), meta.get("preprocess") == CROP)


class TensorImageDataset(torch.utils.data.Dataset):
    """`(normalised image, label)` pairs backed by two tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo):
        self.images, self.labels, self.info = images, labels, info

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    def subset(self, limit: int | None) -> "TensorImageDataset":
        """A seeded, class-balanced sample of `limit` images in index order (`balanced_sample`):
        the first N of a folder read class by class would hold the first classes only."""
        if not limit or limit >= len(self):
            return self
        chosen = balanced_sample(self.labels, limit)
        return TensorImageDataset(self.images[chosen], self.labels[chosen], self.info)


SAMPLE_SEED = 0


def balanced_sample(labels: torch.Tensor, limit: int, seed: int = SAMPLE_SEED) -> torch.Tensor:
    """Indices of `limit` images, as many of each class as the classes allow, drawn at random with
    `seed` and returned in index order. Classes take turns in a shuffled order: each round gives one
    image of every class that has one left, so a class smaller than its share gives all it has and
    the others fill the rest."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    count = len(labels)
    if limit >= count:
        return torch.arange(count)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    by_class = torch.sort(shuffled, stable=True)
    sizes = torch.bincount(shuffled)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty(count, dtype=torch.long)  # each image's turn within its class
    rank[by_class.indices] = torch.arange(count) - starts[by_class.values]
    turns = torch.argsort(rank * count + torch.arange(count))  # round by round, shuffled order within
    return order[turns[:limit]].sort().values


def normalise(uint8_images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 normalised."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (uint8_images.float().div_(255.0) - mean_t).div_(std_t)


# ----------------------------------------------------------------------------- registry
DATASETS: dict[str, type["DatasetSource"]] = {}


def register_dataset(cls):
    DATASETS[cls.name] = cls
    return cls


class DatasetSource:
    """One dataset family: how to find it on disk and read it into uint8 tensors."""
    name = ""
    class_names: list[str] = []
    channels = 1
    input_size = 28
    mean: list[float] = []
    std: list[float] = []
    crop_padding = 4
    dark_background = False  # light objects on black (uploads with a light background get inverted)

    def __init__(self, root: Path):
        self.root = Path(root)

    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, list(self.class_names), self.channels, self.input_size,
                           list(self.mean), list(self.std),
                           {"crop_padding": self.crop_padding, "dark_background": self.dark_background})

    def check(self) -> None:
        """Raise DataError (one line) unless the data is on disk."""

    def read(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _torchvision_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    data = dataset.data
    data = torch.as_tensor(np.asarray(data))
    if data.ndim == 3:
        data = data.unsqueeze(1)
    elif data.shape[-1] == 3:  # N, H, W, C
        data = data.permute(0, 3, 1, 2)
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = dataset.labels
    return data.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.long)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format: zero, zero, type 8, the number of
    dimensions, each size as a big-endian int32, then the bytes) as an array."""
    data = path.read_bytes()
    if len(data) < 4 or data[:3] != b"\0\0\x08" or not 1 <= data[3] <= 4:
        raise DataError(f"{path.name}: not an IDX file of unsigned bytes")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise DataError(f"{path.name}: the IDX header is cut short; the file is truncated")
    shape = struct.unpack(f">{data[3]}I", data[4:header])
    if len(data) - header != math.prod(shape):
        raise DataError(f"{path.name}: {len(data) - header} bytes where {shape} needs {math.prod(shape)}; "
                        "the file is truncated or damaged")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


class TorchvisionSource(DatasetSource):
    """A dataset torchvision reads; each one below is declared by its data alone."""
    torchvision_class = ""        # its class in torchvision.datasets
    folder = ""                   # what must exist under the data root
    required_files: tuple[str, ...] = ()
    by_split_name = False         # torchvision takes split="train" rather than train=True
    missing_hint = ""             # how to get it, said when it is missing
    idx_files: dict[str, tuple[str, str]] = {}  # split -> (images, labels) read directly: no torchvision import

    @property
    def raw_dir(self) -> Path:
        return self.root / self.folder

    def check(self):
        missing = [f for f in self.required_files if not (self.raw_dir / f).exists()]
        if not self.raw_dir.is_dir() or missing:
            detail = f" (missing {missing[0]})" if self.raw_dir.is_dir() and missing else ""
            raise DataError(f"{self.name} not found under {self.raw_dir}{detail}; {self.missing_hint}")

    def torchvision_dataset(self, split: str, download: bool = False):
        from torchvision import datasets
        kind = getattr(datasets, self.torchvision_class)
        where = {"split": split} if self.by_split_name else {"train": split == "train"}
        return kind(str(self.root), download=download, **where)

    def read(self, split):
        self.check()
        if self.idx_files:  # importing torchvision costs 2 s on a first visit; IDX is a few lines
            images, labels = (read_idx(self.raw_dir / name) for name in self.idx_files[split])
            return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
        return _torchvision_arrays(self.torchvision_dataset(split))


def on_this_machine(name: str, root=None) -> bool:
    """Whether the dataset's files are on disk (the sidebar marks the others)."""
    try:
        get_source(name, root).check()
        return True
    except DataError:
        return False


def download_hint(name: str) -> str:
    return f"run `python -m core.data download {name}` (needs the network)"


@register_dataset
class FashionMNIST(TorchvisionSource):
    name, torchvision_class = "fashion-mnist", "FashionMNIST"
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    channels, input_size, crop_padding = 1, 28, 2
    mean, std = [0.2860], [0.3530]
    dark_background = True
    folder, required_files = "FashionMNIST/raw", FASHION_MNIST_FILES
    idx_files = {"train": FASHION_MNIST_FILES[:2], "test": FASHION_MNIST_FILES[2:]}  # (images, labels)
    missing_hint = "run `make data` or `python -m core.data prepare`"


@register_dataset
class CIFAR10(TorchvisionSource):
    """Read here, not by torchvision: its batches are pickles, and torchvision unpickles them
    whole (any object a replaced file names would be built); ours builds arrays only."""
    name, torchvision_class = "cifar10", "CIFAR10"
    class_names = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
    channels, input_size = 3, 32
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    folder, missing_hint = "cifar-10-batches-py", download_hint("cifar10")
    batches = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    required_files, label_key = batches["train"] + batches["test"], "labels"

    def read(self, split):
        self.check()
        parts = [self.read_batch(self.raw_dir / name) for name in self.batches[split]]
        images = np.concatenate([images for images, _ in parts]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([labels for _, labels in parts])
        return torch.from_numpy(images), torch.from_numpy(labels)

    def read_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            with open(path, "rb") as f:
                batch = ArrayUnpickler(f, encoding="latin1").load()
            images = batch.get("data") if isinstance(batch, dict) else None
            labels = np.asarray(batch.get(self.label_key, []) if isinstance(batch, dict) else [])
        except DataError as exc:
            raise DataError(f"{path.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - whatever a damaged or hostile file does, one line
            raise DataError(f"{path.name}: not a {self.name} batch ({type(exc).__name__}: {str(exc)[:120]})") from None
        if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
                or images.shape[1] != 3 * 32 * 32 or labels.shape != (len(images),) or labels.dtype.kind not in "iu"
                or len(labels) and not 0 <= labels.min() <= labels.max() < len(self.class_names)):
            raise DataError(f"{path.name}: not a {self.name} batch (expected 3072 bytes per image and a label each)")
        return images, labels.astype(np.int64)


@register_dataset
class CIFAR100(CIFAR10):
    name, torchvision_class = "cifar100", "CIFAR100"
    mean, std = [0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]
    folder, missing_hint = "cifar-100-python", download_hint("cifar100")
    batches = {"train": ("train",), "test": ("test",)}
    required_files, label_key = ("train", "test"), "fine_labels"

    @property
    def class_names(self):
        """From CIFAR-100's meta file, read with an unpickler that builds no object but plain
        containers and strings (torchvision itself unpickles the image batches)."""
        path = self.raw_dir / "meta"
        if not path.exists():
            return [str(i) for i in range(100)]
        with open(path, "rb") as f:
            return list(PlainUnpickler(f, encoding="latin1").load()["fine_label_names"])


@register_dataset
class STL10(TorchvisionSource):
    name, torchvision_class = "stl10", "STL10"
    class_names = ["airplane", "bird", "car", "cat", "deer",
                   "dog", "horse", "monkey", "ship", "truck"]
    channels, input_size, crop_padding = 3, 96, 12
    mean, std = [0.4467, 0.4398, 0.4066], [0.2603, 0.2566, 0.2713]
    folder, by_split_name, missing_hint = "stl10_binary", True, download_hint("stl10")


class PlainUnpickler(pickle.Unpickler):
    """Lists, dicts, strings and numbers only: any class or function in the stream is refused."""

    def find_class(self, module, name):
        raise DataError(f"refused to unpickle {module}.{name}: the file holds more than plain data")


class ArrayUnpickler(PlainUnpickler):
    """Plain data and numpy arrays of plain integer dtypes (what CIFAR's batches hold). The stream
    never reaches numpy's own constructors: a dtype or array it spells is taken down as plain data
    by the stand-ins below, checked, and only then made into an array from its raw bytes (numpy's
    dtype unpickling trusts its state: a forged one makes an object array of the file's pointers)."""
    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            return super().find_class(module, name)
        return {"_reconstruct": _PickledArray, "_frombuffer": _shaped, "ndarray": _NDARRAY,
                "dtype": _PickledDtype, "encode": _latin1_bytes}[name]

    def load(self):
        return _arrays_made(super().load())


_NDARRAY = object()  # what the stream names as numpy.ndarray: only ever compared with


class _PickledDtype:
    """`numpy.dtype(name, align, copy)` then its state, as plain data: an integer kind and a byte order."""
    KINDS = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"}

    def __init__(self, name, align=False, copy=True):
        if name not in self.KINDS:
            raise DataError(f"refused a numpy dtype {str(name)[:20]!r}: only plain integers are read")
        self.name, self.order = name, "|"

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, element size, alignment, flags): plain means no
        # subarray, no fields and no flags (a flag says it holds Python objects)
        if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None) and state[7] == 0):
            raise DataError("refused a numpy dtype whose state is more than a plain integer kind")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        kind = np.dtype(self.name)
        return kind.newbyteorder(self.order) if self.order in "<>" else kind


def _raw(data) -> bytes:
    if isinstance(data, str):  # a Python 2 pickle's byte string, read as latin-1
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise DataError("refused an array whose data is not bytes")


def _shaped(data, dtype, shape, order: str = "C") -> np.ndarray:
    """The checked array (protocol 5 spells `_frombuffer(data, dtype, shape, order)` directly)."""
    if not isinstance(dtype, _PickledDtype):
        raise DataError("refused an array without a plain dtype")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise DataError("refused an array with a malformed shape")
    raw, kind = _raw(data), dtype.numpy()
    if math.prod(shape) * kind.itemsize != len(raw):
        raise DataError("refused an array whose shape does not match its bytes")
    return np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if order == "F" else "C").copy()


class _PickledArray:
    """`_reconstruct(ndarray, (0,), b'b')` then the state (version, shape, dtype, fortran order, bytes)."""

    def __init__(self, cls, shape, typecode):
        if cls is not _NDARRAY:
            raise DataError("refused an array of a class other than numpy.ndarray")
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise DataError("refused an array with a malformed state")
        shape, dtype, fortran, data = state[-4:]
        self.array = _shaped(data, dtype, shape, "F" if fortran else "C")


def _arrays_made(value, made: dict | None = None):
    """The unpickled structure with every array stand-in replaced by its checked array. A pickle
    may share one list many times over (its memo): each is rebuilt once (`made`, by identity), or
    800 bytes of nested sharing unfold into gigabytes."""
    made = {} if made is None else made
    if id(value) in made:
        return made[id(value)]
    if isinstance(value, _PickledArray):
        if value.array is None:
            raise DataError("refused an array without its data")
        result = value.array
    elif isinstance(value, _PickledDtype):
        raise DataError("refused a bare numpy dtype")
    elif isinstance(value, dict):
        result = {key: _arrays_made(item, made) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        result = type(value)(_arrays_made(item, made) for item in value)
    else:
        return value
    made[id(value)] = result
    return result


LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1")


def _latin1_bytes(text, encoding="latin1"):
    """`_codecs.encode` as a Python 2 pickle uses it for byte strings: latin-1 only (another codec,
    punycode say, takes time quadratic in the text)."""
    if not isinstance(text, str) or str(encoding).lower() not in LATIN1:
        raise DataError("refused a text encoding other than latin-1")
    return text.encode("latin1")


HELD_OUT_FRACTION = 0.2   # of each class, when an image folder has no train/ and test/ of its own
SPLIT_SEED = 0


def held_out_rank(seed: int, cls: str, name: str) -> str:
    """A file's place in its class's held-out order: a hash of its name, so the split depends on the
    files alone, not on the order a disk lists them or on the machine."""
    return hashlib.sha256(f"{seed}/{cls}/{name}".encode("utf-8", "surrogateescape")).hexdigest()


class ImageFolderSource(DatasetSource):
    """`imagefolder:PATH`: PATH/train/<class>/* and PATH/test/<class>/* (or val/), or one tree PATH/<class>/*
    split once into training and held-out images: HELD_OUT_FRACTION of each class (at least one),
    chosen by `held_out_rank` with SPLIT_SEED. The rule and a hash of the held-out list are in
    `info().extra["split"]`, which the trainer records in the checkpoint."""
    channels = 3

    def __init__(self, root: Path, path: str, view: View | None = None):
        super().__init__(root)
        self.view = view or View()
        self.input_size = self.view.input_size
        path = path.strip()  # a pasted space is not part of a folder's name
        if not path:
            raise DataError("imagefolder: needs a folder, as in imagefolder:/path/to/images")
        self.path = Path(path).expanduser()
        self.name = f"imagefolder:{self.path}"
        held_out = "val" if (self.path / "val").is_dir() and not (self.path / "test").is_dir() else "test"
        split_dirs = [self.path / "train", self.path / held_out]  # ImageNet's layout has train/ and val/
        self.split_roots = ({"train": split_dirs[0], "test": split_dirs[1]}
                            if all(d.is_dir() for d in split_dirs)
                            else {"train": self.path, "test": self.path})
        self.class_names = (sorted(d.name for d in self.split_roots["train"].iterdir()
                                   if d.is_dir() and not d.name.startswith("."))  # .ipynb_checkpoints is no class
                            if self.split_roots["train"].is_dir() else [])
        self.mean, self.std = list(self.view.mean), list(self.view.std)

    @property
    def one_tree(self) -> bool:
        return self.split_roots["train"] == self.split_roots["test"]

    def check(self):
        """What can be said without reading every image (the app says it before a run starts):
        two or more class folders, each with a file named as an image Pillow reads (two, when one
        tree is split into training and held-out images)."""
        if not self.class_names:
            raise DataError(f"{self.path} is not an image folder (expected one sub-folder per class)")
        if len(self.class_names) < 2:
            raise DataError(f"{self.path} has 1 class folder ({self.class_names[0]}); a classifier needs two or more")
        for split in dict.fromkeys(self.split_roots.values()):
            for cls in self.class_names:
                if not holds_an_image(split / cls, 2 if self.one_tree else 1):
                    need = ("fewer than two images; with no train/ and test/ folders each class needs two or "
                            "more, one held out" if self.one_tree else "no image (.png, .jpg, .tif, …)")
                    raise DataError(f"{split / cls} holds {need}; an image folder has one sub-folder "
                                    "of images per class")

    def files(self, split: str) -> list[tuple[Path, int]]:
        """(file, label) of every image-named file in the split, class by class."""
        chosen = []
        for label, cls in enumerate(self.class_names):
            names = image_names(self.split_roots[split] / cls)
            if self.one_tree:
                names = [n for n in names if (n in self.held_out[cls]) == (split == "test")]
            chosen += [(self.split_roots[split] / cls / n, label) for n in names]
        return chosen

    @functools.cached_property
    def held_out(self) -> dict[str, set[str]]:
        """Per class of one tree, the names held out from training: the first HELD_OUT_FRACTION by
        `held_out_rank`, at least one. Hashed once per source (info and both splits read it)."""
        held = {}
        for cls in self.class_names:
            names = image_names(self.path / cls)
            count = max(1, round(HELD_OUT_FRACTION * len(names)))
            held[cls] = set(sorted(names, key=lambda n: held_out_rank(SPLIT_SEED, cls, n))[:count])
        return held

    def info(self) -> DatasetInfo:
        info = super().info()
        info.extra["crop"] = self.view.crop
        if self.one_tree and self.class_names:
            held = [f"{cls}/{n}" for cls, names in self.held_out.items() for n in names]
            info.extra["split"] = {
                "rule": f"held out {HELD_OUT_FRACTION:.0%} of each class (at least one), by a hash of "
                        f"the file name with seed {SPLIT_SEED}",
                "held_out": len(held),
                "held_out_sha256": hashlib.sha256("\n".join(sorted(held)).encode("utf-8", "surrogateescape")).hexdigest()}
        else:
            info.extra["split"] = {"rule": "the folder's own train/ and test/"}
        return info

    def read(self, split):
        self.check()
        info = self.info()
        images, labels = [], []
        for file, label in self.files(split):
            try:
                image = load_image(file)
            except ImageError:
                continue
            images.append(to_uint8(image, info, invert=False).pixels)
            labels.append(label)
        if not images:
            raise DataError(f"no readable images under {self.split_roots[split]}")
        labels = torch.tensor(labels)
        counts = torch.bincount(labels, minlength=len(self.class_names))
        if split == "train" and bool((counts == 0).any()):  # it trained on the others and reported 100%
            empty = self.class_names[int(torch.nonzero(counts == 0)[0])]
            raise DataError(f"{self.split_roots[split] / empty} holds no image Pillow can read; "
                            "a class without training images cannot be learnt")
        return torch.stack(images), labels


def image_entries(folder: Path):
    """The names of the files in `folder` named as an image Pillow reads, as the disk lists them
    (nothing for a folder that cannot be read)."""
    suffixes = tuple(Image.registered_extensions())
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower().endswith(suffixes) and entry.is_file():
                    yield entry.name
    except OSError:
        return


def image_names(folder: Path) -> list[str]:
    return sorted(image_entries(folder))


def holds_an_image(folder: Path, at_least: int = 1) -> bool:
    """Whether `folder` holds `at_least` image files (it stops counting there: a folder of a
    million files is not listed to say so)."""
    return next(itertools.islice(image_entries(folder), at_least - 1, None), None) is not None


def get_source(name: str, root: Path | str | None = None, view: View | None = None) -> DatasetSource:
    """The dataset called `name`; `view` says how an image folder is read (fixed datasets ignore it)."""
    root = Path(root) if root else DEFAULT_DATA_ROOT
    if name.startswith("imagefolder:"):
        return ImageFolderSource(root, name.split(":", 1)[1], view)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)} or imagefolder:PATH")
    return DATASETS[name](root)


_CACHE: dict[tuple, TensorImageDataset] = {}


def load_dataset(name: str = "fashion-mnist", split: str = "train", root=None,
                 view: View | None = None) -> TensorImageDataset:
    """The split as `(normalised tensor, int label)` pairs, exactly what a model eats at evaluation
    (an image folder as `view` says: a checkpoint's `view_of(meta)`)."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    source = get_source(name, root, view)
    key = (name, split, str(source.root), source.view if isinstance(source, ImageFolderSource) else None)
    if key not in _CACHE:
        info = source.info()
        uint8, labels = source.read(split)
        _CACHE[key] = TensorImageDataset(normalise(uint8, info.mean, info.std), labels, info)
    return _CACHE[key]


def dataset_info(name: str, root=None) -> DatasetInfo:
    return get_source(name, root).info()


def black_value(info: DatasetInfo) -> torch.Tensor:
    return torch.tensor([-m / s for m, s in zip(info.mean, info.std)], dtype=torch.float32)


def info_from_meta(meta: dict) -> DatasetInfo:
    source = DATASETS.get(meta["dataset"])
    return DatasetInfo(meta["dataset"], list(meta["class_names"]), int(meta["channels"]),
                       int(meta["input_size"]), list(meta["mean"]), list(meta["std"]),
                       {"dark_background": bool(source and source.dark_background),
                        "crop": meta.get("preprocess") == CROP})


def denormalise(x: torch.Tensor, info: DatasetInfo) -> np.ndarray:
    """(C, H, W) normalised -> H x W (x 3) float array in [0, 1] for display."""
    mean = torch.tensor(info.mean).view(-1, 1, 1)
    std = torch.tensor(info.std).view(-1, 1, 1)
    image = (x.detach().cpu() * std + mean).clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- preparation
def prepare_fashion_mnist(root: Path | str | None = None, allow_apt: bool = True,
                          allow_download: bool = True) -> str:
    """Make Fashion-MNIST available under `root`; returns how it was found.

    Order: already there; Debian's dataset-fashion-mnist (installed if we are root with apt);
    torchvision's download; otherwise DataError with instructions.
    """
    source = FashionMNIST(Path(root) if root else DEFAULT_DATA_ROOT)
    try:
        source.check()
        return "already present"
    except DataError:
        pass
    if allow_apt and not DEBIAN_FASHION_MNIST.is_dir() and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
        if subprocess.run(install, **quiet).returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], **quiet)
            subprocess.run(install, **quiet)
    if all((DEBIAN_FASHION_MNIST / f"{f}.gz").exists() for f in FASHION_MNIST_FILES):
        source.raw_dir.mkdir(parents=True, exist_ok=True)
        for name in FASHION_MNIST_FILES:
            tmp = source.raw_dir / f".{name}.tmp"
            with gzip.open(DEBIAN_FASHION_MNIST / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, source.raw_dir / name)
        source.check()
        return f"unpacked from {DEBIAN_FASHION_MNIST}"
    if allow_download:
        try:
            from torchvision.datasets import FashionMNIST as TV
            TV(str(source.root), train=True, download=True)
            TV(str(source.root), train=False, download=True)
            source.check()
            return "downloaded by torchvision"
        except Exception as exc:  # no network: fall through to the instructions
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"could not get Fashion-MNIST ({reason}); install the Debian package "
                            f"dataset-fashion-mnist or put the four IDX files in {source.raw_dir}") from None
    raise DataError(f"Fashion-MNIST is not under {source.raw_dir}; install the Debian package "
                    "dataset-fashion-mnist or run `python -m core.data prepare`")


def download(name: str, root=None) -> None:
    """Explicit, user-requested download of a torchvision dataset."""
    root = str(root or DEFAULT_DATA_ROOT)
    if name == "fashion-mnist":
        prepare_fashion_mnist(root)
    elif isinstance(DATASETS.get(name), type) and issubclass(DATASETS[name], TorchvisionSource):
        source = DATASETS[name](Path(root))
        try:
            for split in ("train", "test"):
                source.torchvision_dataset(split, download=True)
        except (OSError, RuntimeError, ValueError) as exc:  # no network, a mirror down, a damaged archive
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"could not download {name} ({reason[:200]}); check the network, or put its "
                            f"files under {root} by hand") from None
    else:
        raise DataError(f"cannot download {name!r}")


def dataset_image(name: str, index: int, split: str = "test", root=None,
                  view: View | None = None) -> tuple[Image.Image, int]:
    """Image `index` of a split as the PIL image a user could have uploaded, and its label."""
    dataset = load_dataset(name, split, root, view)
    array = (denormalise(dataset.images[index], dataset.info) * 255).round().astype(np.uint8)
    return Image.fromarray(array), int(dataset.labels[index])


def first_per_class(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """The first `per_class` indices of every class, in index order (the fixed image sets the
    faithfulness analysis and the training snapshots look at)."""
    picks = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    return torch.cat(picks).sort().values if picks else torch.zeros(0, dtype=torch.long)


def split_indices(name: str, label: int | None = None, split: str = "test", root=None,
                  view: View | None = None) -> list[int]:
    """The indices of a split's images of class `label`, or of all its images (their number varies by dataset)."""
    labels = load_dataset(name, split, root, view).labels
    return list(range(len(labels))) if label is None else torch.nonzero(labels == label).flatten().tolist()


def main(argv=None) -> int:
    from .cli import OneLineParser
    parser = OneLineParser(prog="python -m core.data", description="prepare datasets")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    prep = sub.add_parser("prepare", help="make the default dataset (Fashion-MNIST) available offline")
    prep.add_argument("--root", default=None)
    prep.add_argument("--no-download", action="store_true")
    down = sub.add_parser("download", help="download a dataset (needs the network)")
    down.add_argument("name", choices=sorted(DATASETS))
    down.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            print(f"Fashion-MNIST: {prepare_fashion_mnist(args.root, allow_download=not args.no_download)}")
        else:
            download(args.name, args.root)
            print(f"{args.name}: downloaded")
    except DataError as exc:
        print(f"error: {exc}", file=os.sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from .cli import run_main
    raise SystemExit(run_main(main))
