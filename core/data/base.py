"""The shared face of every dataset: what a model knows of its data (`DatasetInfo`, `View`), the
source registry, the in-memory split (`TensorImageDataset`) and the seeded class-balanced sample.
One file per kind of source beside this one; `core.data` puts them together."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..catalog import PROJECT_ROOT
from ..errors import UserError

DEFAULT_DATA_ROOT = Path(os.environ.get("UNITLENS_DATA", PROJECT_ROOT / "data"))


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
    """`(normalised image, label)` pairs backed by two tensors. An image folder's split holds its
    readable files only; `numbers` is then each row's place in the folder's listing (None: row i
    is image i): the number pages and results give an image by, as a streamed split counts."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, unreadable: int = 0,
                 numbers: torch.Tensor | None = None):
        self.images, self.labels, self.info = images, labels, info
        self.unreadable = unreadable  # files of the split that could not be read, left out (an image folder's)
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    def take(self, indices) -> torch.Tensor:
        return self.images[torch.as_tensor(indices)]

    def batches(self, batch_size: int, positions=None, pin_memory: bool = False):
        """(images, readable) a slice at a time over `positions` (all by default): the face a
        StreamedImages shares, where every image here was readable."""
        count = len(self) if positions is None else len(positions)
        for start in range(0, count, batch_size):
            x = (self.images[start:start + batch_size] if positions is None
                 else self.images[torch.as_tensor(positions[start:start + batch_size])])
            yield x, torch.ones(len(x), dtype=torch.bool)

    def subset(self, limit: int | None) -> "TensorImageDataset":
        """A seeded, class-balanced sample of `limit` images in index order (`balanced_sample`):
        the first N of a folder read class by class would hold the first classes only."""
        if not limit or limit >= len(self):
            return self
        chosen = balanced_sample(self.labels, limit)
        return TensorImageDataset(self.images[chosen], self.labels[chosen], self.info, self.unreadable,
                                  self.listed(chosen))

    def listed(self, rows: torch.Tensor) -> torch.Tensor:
        """The split's image numbers of `rows`: their places in the listing (as a streamed split counts)."""
        rows = torch.as_tensor(rows)
        return rows if self.numbers is None else self.numbers[rows]


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


def first_per_class(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """The first `per_class` indices of every class, in index order (the fixed image sets the
    faithfulness analysis and the training snapshots look at)."""
    picks = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    return torch.cat(picks).sort().values if picks else torch.zeros(0, dtype=torch.long)
