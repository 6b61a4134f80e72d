"""`imagefolder:PATH`: a researcher's own images, one sub-folder per class."""
from __future__ import annotations

import functools
import hashlib
import itertools
import os
from pathlib import Path

import torch
from PIL import Image

from ..images import ImageError, load_image, looks_readable, to_uint8
from .base import DataError, DatasetInfo, DatasetSource, View, balanced_sample, normalise

PRELOAD_MB = 1024  # a split larger than this as float tensors is streamed (UNITLENS_PRELOAD_MB)

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
        self.unreadable: dict[str, int] = {}  # split -> files `read` left out
        self.numbers: dict[str, torch.Tensor] = {}  # split -> where `read` left some out, the listing's number of each row
        self._files: dict[str, list[tuple[Path, int]]] = {}

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
        """(file, label) of every image-named file in the split, class by class; listed once per
        source (deciding to stream and streaming both read it: a million names)."""
        if split not in self._files:
            self._files[split] = self._list(split)
        return self._files[split]

    def _list(self, split: str) -> list[tuple[Path, int]]:
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

    def preloaded_bytes(self, split: str) -> int:
        """What the split takes held whole as float32 (what `read` then `normalise` make)."""
        side = self.input_size
        return len(self.files(split)) * self.channels * side * side * 4

    def streamed(self, split: str) -> bool:
        """Whether the split is read a batch at a time rather than held whole: above the preload
        budget (ImageNet's validation split at 224 px is 30 GB as floats)."""
        return self.preloaded_bytes(split) > preload_budget()

    def stream(self, split: str) -> "StreamedImages":
        """The split to be decoded a batch at a time. A training split is first checked, as `read`
        checks it, for a class without one readable image (it would be trained as absent and
        reported at 100%): file headers only, each class until its first good one."""
        self.check()
        files = self.files(split)
        if split == "train":
            found = set()
            for path, label in files:
                if label not in found and looks_readable(path):
                    found.add(label)
            self.refuse_a_class_without_images(split, found)
        return StreamedImages(files, self.info())

    def refuse_a_class_without_images(self, split: str, labels_found) -> None:
        """A training split with a class of no readable image would train on the others and report
        100%: refused, naming the class's folder."""
        missing = [cls for label, cls in enumerate(self.class_names) if label not in set(labels_found)]
        if split == "train" and missing:
            raise DataError(f"{self.split_roots[split] / missing[0]} holds no image Pillow can read; "
                            "a class without training images cannot be learnt")

    def read(self, split):
        self.check()
        info = self.info()
        images, labels, numbers = [], [], []
        self.unreadable[split] = 0  # a split read again (another budget) counts afresh
        self.numbers.pop(split, None)
        for number, (file, label) in enumerate(self.files(split)):
            try:
                images.append(pixels_of(file, info))
            except ImageError:
                self.unreadable[split] += 1
                continue
            labels.append(label)
            numbers.append(number)
        if not images:
            raise DataError(f"no readable images under {self.split_roots[split]}")
        self.refuse_a_class_without_images(split, labels)
        if len(numbers) < len(self.files(split)):
            self.numbers[split] = torch.tensor(numbers)
        return torch.stack(images), torch.tensor(labels)


def pixels_of(path: Path, info: DatasetInfo) -> torch.Tensor:
    """A file as the uint8 (C, H, W) picture a model of `info` reads (colours as they are); raises
    ImageError where Pillow cannot read it."""
    return to_uint8(load_image(path), info, invert=False).pixels


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


def preload_budget() -> int:
    """Bytes a split may take held whole: UNITLENS_PRELOAD_MB, else PRELOAD_MB."""
    text = os.environ.get("UNITLENS_PRELOAD_MB", "").strip()
    try:
        megabytes = float(text) if text else PRELOAD_MB
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:
        raise DataError(f"UNITLENS_PRELOAD_MB must be a number of megabytes (0: stream every image folder), not {text!r}")
    return int(megabytes * 2**20)


def loader_workers() -> int:
    """Decoding processes beside the forward pass: UNITLENS_LOADER_WORKERS, else one core in two
    up to 8 (the forward pass keeps the rest); 0 decodes in this process."""
    text = os.environ.get("UNITLENS_LOADER_WORKERS", "").strip()
    if text:
        if not text.isdigit():
            raise DataError(f"UNITLENS_LOADER_WORKERS must be a whole number, not {text!r}")
        return int(text)
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # a decoding worker's own torch work is one image at a time


class StreamedImages(torch.utils.data.Dataset):
    """A split too large to hold: its files and labels in memory, each picture decoded (as `read`
    decodes it) only when a batch needs it, by a DataLoader's worker processes. Item i is
    (normalised image, readable): a file Pillow cannot read gives zeros and False, and the
    forward pass leaves it out (its position is recorded), as `read` skips it."""

    def __init__(self, files: list[tuple[Path, int]], info: DatasetInfo):
        self.files = [str(path) for path, _ in files]  # strings: cheap to send to the workers
        self.labels = torch.tensor([label for _, label in files], dtype=torch.long)
        self.info = info
        self.shape = (info.channels, info.input_size, info.input_size)
        self.numbers: torch.Tensor | None = None  # a subset's: each item's number in the whole split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        try:
            pixels = pixels_of(Path(self.files[index]), self.info)
        except ImageError:
            return torch.zeros(self.shape), False
        return normalise(pixels[None], self.info.mean, self.info.std)[0], True

    def subset(self, limit: int | None) -> "StreamedImages":
        """As TensorImageDataset.subset: the seeded class-balanced sample, in index order."""
        if not limit or limit >= len(self):
            return self
        chosen = balanced_sample(self.labels, limit).tolist()
        part = StreamedImages([], self.info)
        part.files, part.labels, part.numbers = [self.files[i] for i in chosen], self.labels[chosen], self.listed(chosen)
        return part

    def listed(self, items: torch.Tensor) -> torch.Tensor:
        """The split's image numbers of `items` (each file keeps its place, read or not)."""
        items = torch.as_tensor(items)
        return items if self.numbers is None else self.numbers[items]

    def take(self, indices) -> torch.Tensor:
        """The images at `indices` (a few: the faithfulness set, one picture for a page)."""
        images = []
        for index in torch.as_tensor(indices).tolist():
            image, readable = self[index]
            if not readable:
                raise DataError(f"{self.files[index]} can no longer be read as an image")
            images.append(image)
        return torch.stack(images) if images else torch.zeros(0, *self.shape)

    def batches(self, batch_size: int, positions=None, pin_memory: bool = False):
        """(images, readable) a batch at a time over `positions` (all by default), in order."""
        chosen = self if positions is None else torch.utils.data.Subset(self, torch.as_tensor(positions).tolist())
        workers = loader_workers() if len(chosen) > batch_size else 0
        loader = torch.utils.data.DataLoader(
            chosen, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory,
            worker_init_fn=_one_thread if workers else None, prefetch_factor=4 if workers else None,
            multiprocessing_context="fork" if workers else None)
        yield from loader
