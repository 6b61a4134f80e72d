"""Datasets on disk: the sources (declared as data, one file per kind: `torchvision_sources`,
`imagefolder`, on the shared face in `base`), read into tensors, and `python -m core.data`.
Batch augmentation is in core/augment.py; pictures are read and converted in core/images.py.

A split is held in memory as one normalised float tensor (N, C, H, W): evaluation and training
then slice batches without per-sample Python work. An image folder too large for that
(`imagefolder.preload_budget`) is streamed instead: decoded a batch at a time by worker processes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..images import ImageError
from .base import (CROP, DATASETS, DEFAULT_DATA_ROOT, IMAGENET_MEAN, IMAGENET_STD, SAMPLE_SEED, DataError,
                   DatasetInfo, DatasetSource, TensorImageDataset, View, balanced_sample, black_value,
                   denormalise, first_per_class, info_from_meta, normalise, register_dataset, view_of)
from .imagefolder import (HELD_OUT_FRACTION, SPLIT_SEED, ImageFolderSource, StreamedImages, held_out_rank,
                          holds_an_image, image_entries, image_names, loader_workers, pixels_of, preload_budget)
from .safe_pickle import ArrayUnpickler, PlainUnpickler
from .torchvision_sources import (CIFAR10, CIFAR100, DEBIAN_FASHION_MNIST, FASHION_MNIST_FILES, STL10,
                                  FashionMNIST, TorchvisionSource, _torchvision_arrays, download,
                                  download_hint, prepare_fashion_mnist, read_idx)


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
                 view: View | None = None) -> TensorImageDataset | StreamedImages:
    """The split, normalised exactly as a model eats it at evaluation (an image folder as `view`
    says: a checkpoint's `view_of(meta)`): held whole, or streamed when an image folder's split is
    larger than the preload budget. Both have `labels`, `info`, `subset`, `take` and `batches`."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    folder = listing(name, root, view)  # an image folder: the one listing the pages number pictures by
    source = folder[0] if folder else get_source(name, root, view)
    key = (name, split, str(source.root), source.view if isinstance(source, ImageFolderSource) else None)
    if key not in _CACHE and isinstance(source, ImageFolderSource) and source.streamed(split):
        _CACHE[key] = source.stream(split)
    if key not in _CACHE:
        info = source.info()
        uint8, labels = source.read(split)
        _CACHE[key] = TensorImageDataset(normalise(uint8, info.mean, info.std), labels, info,
                                         getattr(source, "unreadable", {}).get(split, 0),
                                         getattr(source, "numbers", {}).get(split))
    return _CACHE[key]


_LISTINGS: dict[tuple, tuple[ImageFolderSource, DatasetInfo]] = {}


def listing(name: str, root=None, view: View | None = None) -> tuple[ImageFolderSource, DatasetInfo] | None:
    """An image folder's checked source, whose `files(split)` number its images without decoding
    one, and its info (None for the fixed datasets): a page picks one picture of a folder without
    reading them all. Listed once per process, as `load_dataset` reads a split once."""
    if not name.startswith("imagefolder:"):
        return None
    key = (name, str(root or DEFAULT_DATA_ROOT), view)
    if key not in _LISTINGS:
        source = get_source(name, root, view)
        source.check()
        _LISTINGS[key] = source, source.info()
    return _LISTINGS[key]


def forget() -> None:
    """Read every split and list every folder afresh on next use (files changed on disk, or
    another preload budget): what this process read is otherwise kept."""
    _CACHE.clear()
    _LISTINGS.clear()


def streams(name: str, split: str, root=None, view: View | None = None) -> bool:
    """Whether `load_dataset` streams the split (an image folder above the preload budget)."""
    folder = listing(name, root, view)
    return folder is not None and folder[0].streamed(split)


def split_labels(name: str, split: str = "test", root=None, view: View | None = None) -> torch.Tensor:
    """The label of each of a split's images by number; an image folder's from its listing, read or not."""
    folder = listing(name, root, view)
    if folder is None:
        return load_dataset(name, split, root, view).labels
    return torch.tensor([label for _, label in folder[0].files(split)], dtype=torch.long)


def listed_pixels(name: str, index: int, split: str = "test", root=None,
                  view: View | None = None) -> tuple[torch.Tensor, int]:
    """An image folder's `index`-th listed file as the uint8 (C, H, W) its models read, decoded
    alone, and its label; DataError where it cannot be read or is not listed."""
    source, info = listing(name, root, view)
    files = source.files(split)
    if not 0 <= index < len(files):
        raise DataError(f"the {split} split of {source.path} lists {len(files)} images, not an image {index}")
    path, label = files[index]
    try:
        return pixels_of(path, info), label
    except ImageError as exc:
        raise DataError(f"{path} cannot be read as an image ({exc})") from None


def dataset_info(name: str, root=None) -> DatasetInfo:
    return get_source(name, root).info()


def on_this_machine(name: str, root=None) -> bool:
    """Whether the dataset's files are on disk (the sidebar marks the others)."""
    try:
        get_source(name, root).check()
        return True
    except DataError:
        return False


def sample_image(name: str, split: str = "test", root=None, view: View | None = None) -> torch.Tensor:
    """A readable image of the split, normalised as its models read it (to time a model on one),
    without reading an image folder's split."""
    folder = listing(name, root, view)
    if folder is None:
        return load_dataset(name, split, root, view).take([0])[0]
    source, info = folder
    for path, _ in source.files(split):
        try:
            return normalise(pixels_of(path, info)[None], info.mean, info.std)[0]
        except ImageError:
            continue
    raise DataError(f"no readable image under {source.split_roots[split]}")


def dataset_image(name: str, index: int, split: str = "test", root=None,
                  view: View | None = None) -> tuple[Image.Image, int]:
    """Image `index` of a split as the PIL image a user could have uploaded, and its label. An
    image folder's is its `index`-th listed file, decoded alone (the split is not read for one
    picture); one that cannot be read raises DataError."""
    if not name.startswith("imagefolder:"):
        dataset = load_dataset(name, split, root, view)
        array = (denormalise(dataset.take([index])[0], dataset.info) * 255).round().astype(np.uint8)
        return Image.fromarray(array), int(dataset.labels[index])
    pixels, label = listed_pixels(name, index, split, root, view)
    return Image.fromarray(pixels.permute(1, 2, 0).numpy()), label


def split_indices(name: str, label: int | None = None, split: str = "test", root=None,
                  view: View | None = None) -> list[int]:
    """The numbers of a split's images of class `label`, or of all its images (their number
    varies by dataset); an image folder's from its listing, read or not."""
    labels = split_labels(name, split, root, view)
    return list(range(len(labels))) if label is None else torch.nonzero(labels == label).flatten().tolist()


def main(argv=None) -> int:
    from ..cli import OneLineParser
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
