"""The fixed datasets (Fashion-MNIST, CIFAR-10/100, STL-10), each declared by its data alone, read
without torchvision where their format is simple; their preparation and explicit download."""
from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import torch

from .base import DEFAULT_DATA_ROOT, DATASETS, DataError, DatasetSource, register_dataset
from .safe_pickle import ArrayUnpickler, PlainUnpickler

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


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
