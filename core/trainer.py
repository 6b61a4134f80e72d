"""The training engine behind `python -m core.train` and the dashboard's sidebar.

Data lives in memory as one tensor (on the GPU when training there); batches are sliced and
augmented as whole tensors on the training device, every batch has the same shape (the last
partial batch of an epoch is dropped), and the step never waits for the host: loss and accuracy
accumulate on the device and are read only when progress is logged. Progress events
(core.progress) go to a JSON-lines file the app tails. Checkpoints are written atomically at
every epoch end with the epoch's snapshot (core.trajectory), so a killed run loses at most the
epoch in progress and `resume=True` continues from the last one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import math
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import lsg, trajectory
from .analysis.features import extract, extract_rows, kept
from .checkpoints import MAX_CLASSES, MAX_TEXT, CheckpointError, parse_meta, read_payload, save_checkpoint
from .augment import augment_batch, random_resized_crop
from .cli import TerminalLine
from .data import (CROP, IMAGENET_MEAN, IMAGENET_STD, DataError, DatasetInfo, StreamedImages, View, black_value,
                   get_source, load_dataset)
from .distributed import Distributed
from .errors import UserError
from .graphed_step import StepRunner, portable_state
from .losses import Objective, create_objective
from .models import MODELS, all_finite, arch_options, create_model
from .processes import training_process_start
from .progress import ProgressLog, format_seconds, is_progress_log
from .sgd import SGD, Schedule, warmup_cosine
from .weights import initial_state


# On a GPU, batches are gathered and augmented up to this many images, and this many bytes of
# padded float images, at a time (RunData.batches)
GPU_CHUNK_IMAGES, GPU_CHUNK_BYTES = 16384, 256 * 2**20


class TrainingError(UserError):
    """The run cannot start or cannot go on; the message is one line."""


class Cancelled(Exception):
    """SIGTERM or Ctrl-C: stop after writing what is safe to write."""


@dataclass
class TrainConfig:
    method: str = "ce"
    options: dict = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    arch: str = "resnet20"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    limit: int | None = None
    augment: bool = True
    snapshot_per_class: int = trajectory.PER_CLASS
    device: str = "auto"
    out: str = ""
    progress: str = ""
    resume: bool = False
    compile: bool = False
    cuda_graphs: bool = True  # on a GPU, each kind of step replayed from one CUDA graph
    data_root: str | None = None
    log_interval_s: float = 1.0
    after_pids: tuple[int, ...] = ()  # wait for these earlier runs' processes to end (the app's queue on a CPU)
    init: str = ""                    # start from these weights (a weights file or a checkpoint of the arch)
    input_size: int | None = None     # an image folder read at this size (default: 64, or the arch's own)
    head_only_epochs: int = 0         # the first epochs train the last linear layer alone (a new head on --init)
    optimizer: str = "sgd"            # "sgd" (Nesterov) or "adamw" (what transformers are trained with)
    no_bn: bool = False               # our CIFAR-style ResNets without batch norm (the ablation abstract's control)
    dropout: float = 0.0              # dropout before the head (the same paper's other control)

    # what decides the weights: recorded in the checkpoint and compared on --resume
    RECORDED = ("method", "options", "arch", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                "seed", "limit", "augment", "snapshot_per_class")
    RECORDED_IF_SET = ("init", "input_size", "head_only_epochs", "optimizer", "no_bn", "dropout")  # absent from checkpoints made before them, which still resume

    def recorded_options(self) -> dict:
        return {**{key: getattr(self, key) for key in self.RECORDED},
                **{key: getattr(self, key) for key in self.RECORDED_IF_SET
                   if getattr(self, key) and getattr(self, key) != getattr(TrainConfig, key)}}

    def view(self) -> View | None:
        """How an image folder is read for this run: at --input-size, and for torchvision's
        families as they were made (ImageNet's mean and std, resize then centre crop)."""
        if not self.dataset.startswith("imagefolder:"):
            return None
        family = MODELS.get(self.arch)
        size = self.input_size or (family.default_input_size if family else 0) or View.input_size
        if family is not None and family.imagenet_norm:
            return View(size, tuple(IMAGENET_MEAN), tuple(IMAGENET_STD), crop=True)
        return View(size)

    def progress_path(self) -> Path:
        return Path(self.progress) if self.progress else Path(self.out).with_suffix(".progress.jsonl")


# ----------------------------------------------------------------------------- validation
def validate(config: TrainConfig) -> Objective:
    """Every check that needs no heavy work, so bad options fail at once."""
    try:
        objective = create_objective(config.method, **config.options)
        objective.validate_run(config.epochs)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if config.arch not in MODELS:
        raise TrainingError(f"unknown arch {config.arch[:40]!r}; the {len(MODELS)} known are listed by --help")
    if set(arch_options(config.no_bn, config.dropout)) - set(MODELS[config.arch].arch_options):
        raise TrainingError(f"--no-bn and --dropout are options of our CIFAR-style ResNets (resnet20, resnet20w, "
                            f"resnet18_cifar), not of {config.arch}")
    checks = [
        (1 <= config.epochs <= trajectory.MAX_EPOCHS, f"epochs must lie in 1..{trajectory.MAX_EPOCHS}, got {config.epochs}"),
        (1 <= config.batch_size <= 65536, f"batch size must lie in 1..65536, got {config.batch_size}"),
        (math.isfinite(config.lr) and 0 < config.lr <= 1e6, f"lr must be a number in (0, 1e6], got {config.lr}"),
        (math.isfinite(config.momentum) and 0 <= config.momentum < 1, f"momentum must lie in [0, 1), got {config.momentum}"),
        (math.isfinite(config.weight_decay) and 0 <= config.weight_decay <= 1,
         f"weight decay must be a number in [0, 1], got {config.weight_decay}"),
        (0 <= config.seed < 2**63, f"seed must be a whole number from 0 to 2^63 - 1, got {config.seed}"),
        (config.limit is None or config.limit >= 1, f"limit must be >= 1, got {config.limit}"),
        (0 <= config.snapshot_per_class <= trajectory.MAX_SUBSET,
         f"snapshot images per class must lie in 0..{trajectory.MAX_SUBSET}, got {config.snapshot_per_class}"),
        (math.isfinite(config.dropout) and 0 <= config.dropout < 1, f"dropout must lie in [0, 1), got {config.dropout}"),
        (config.optimizer in ("sgd", "adamw"), f"optimizer must be sgd or adamw, got {config.optimizer[:20]!r}"),
        (config.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {config.device!r}"),
        (config.device != "cuda" or torch.cuda.is_available(), "--device cuda asked for, but no CUDA device is available"),
        (bool(config.out), "an output path (--out) is required"),
        (all(pid > 0 for pid in config.after_pids), f"--after takes process ids, got {list(config.after_pids)}"),
        (os.getpid() not in config.after_pids, "--after names this very process: it would wait for itself forever"),
        (0 <= config.head_only_epochs <= config.epochs,
         f"head-only epochs must lie in 0..{config.epochs} (the epochs), got {config.head_only_epochs}"),
        (math.isfinite(config.log_interval_s) and 0 <= config.log_interval_s <= 3600,
         f"log interval must be 0 to 3600 seconds, got {config.log_interval_s}"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainingError(message)
    try:
        source = get_source(config.dataset, config.data_root)
        source.check()
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    if config.init and not Path(config.init).expanduser().is_file():
        raise TrainingError(f"--init {config.init}: no such file")
    if config.input_size is not None:
        least = max(8, MODELS[config.arch].min_input_size)
        if not config.dataset.startswith("imagefolder:"):
            raise TrainingError(f"--input-size applies to an image folder; {config.dataset}'s images have their own size")
        if not least <= config.input_size <= 512:
            raise TrainingError(f"--input-size must lie in {least}..512 for {config.arch}, got {config.input_size}")
    names = source.info().class_names  # refused now, not in a checkpoint the app would refuse after the run
    if not 2 <= len(names) <= MAX_CLASSES:
        raise TrainingError(f"{config.dataset} has {len(names)} classes; Unit Lens takes 2 to {MAX_CLASSES}")
    odd = next((n for n in names if not n.strip() or len(n) > MAX_TEXT), None)
    if odd is not None:
        raise TrainingError(f"a class name must be a visible text of at most {MAX_TEXT} characters, not "
                            f"{odd[:40]!r}{'…' if len(odd) > 40 else ''}")
    if source.channels not in MODELS[config.arch].channels:
        raise TrainingError(f"{config.arch} takes colour images (3 channels); {config.dataset} has {source.channels}: "
                            "choose a colour dataset or a CIFAR-style arch (resnet20)")
    out, progress = Path(config.out), config.progress_path()
    if out.absolute() == progress.absolute():
        raise TrainingError("--progress and --out name the same file; give the progress log a path of its own")
    dataset = source.info().name  # the path of an image folder as read (~ expanded)
    if config.resume and out.is_file() and not out.is_symlink():
        resumable_payload(out, recorded(config, objective, dataset))  # this very run's checkpoint, or refused
    else:
        check_ours(out, "checkpoint", lambda path: checkpoint_of(path, config, dataset))
    check_ours(progress, "progress log", is_progress_log)
    check_writable(out.parent)
    check_writable(progress.parent)
    return objective


def check_ours(path: Path, what: str, ours) -> None:
    """Training writes `path`: refuse a link, a folder, or a file it did not write (nothing of
    anyone else's is overwritten or appended to)."""
    if path.is_symlink():
        raise TrainingError(f"{path} is a link; give the {what} a path of its own")
    if path.is_dir():
        raise TrainingError(f"{path} is a folder; give the {what} a file path")
    if path.exists() and path.stat().st_size and not ours(path):
        raise TrainingError(f"{path} exists and is not a {what} of this run: nothing is overwritten; "
                            "choose another path or remove it first")


def checkpoint_of(path: Path, config: TrainConfig, dataset: str) -> bool:
    """A Unit Lens checkpoint of the same method, dataset and architecture (a rerun or a resume)."""
    try:
        saved = parse_meta(read_payload(path), path.name)
    except CheckpointError:
        return False
    return (saved.get("method"), saved.get("dataset"), saved.get("arch")) == (config.method, dataset, config.arch)



def resumable_payload(out: Path, expected: dict) -> dict:
    """The checkpoint at `out` if --resume may continue it: made with every recorded option of this
    run (`expected`) and holding its training state (or complete). Checked in validate, before the
    run's log is written to, and again when it is loaded (a queued run may wait for hours)."""
    try:
        payload = read_payload(out)
        saved = parse_meta(payload, out.name)
    except CheckpointError as exc:
        raise TrainingError(f"cannot resume: {exc}") from None
    for key, value in expected.items():
        if saved.get(key) != value:
            raise TrainingError(f"cannot resume {out.name}: its {key.replace('_', ' ')} is {saved.get(key)!r}, "
                                f"this run's is {value!r}")
    if payload.get("train_state") is None and not saved.get("complete"):
        raise TrainingError(f"cannot resume {out.name}: it holds no training state")
    return payload


def recorded(config: TrainConfig, objective: Objective, dataset: str) -> dict:
    """What decides the weights: compared on --resume (the checkpoint's metadata holds the same)."""
    return {"dataset": dataset, **config.recorded_options(), "options": objective.values}


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise TrainingError(f"cannot write to {folder}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device() -> str:
    """Where training runs on this machine (`--device auto`), in words for the app."""
    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)}), CUDA graphs"
    return f"CPU ({os.cpu_count()} cores)"


def evaluate(model, images: torch.Tensor, labels: torch.Tensor, on_gpu: bool = False):
    """The test split through the analysis engine's forward pass (its FeatureCache), leaving
    the model's train mode as it was. On a GPU the images are already there, in bf16 and
    large batches."""
    was_training = model.training
    cache = extract(model, images, labels, 2500 if on_gpu else 500, autocast=on_gpu)
    model.train(was_training)
    return cache


def library_versions() -> dict:
    """Recorded in the checkpoint. torchvision's from its package metadata: importing it took
    1.8 s of a run's start-up on a 2-core machine, only to read a string."""
    return {"torch": torch.__version__, "torchvision": importlib.metadata.version("torchvision"),
            "python": platform.python_version()}


@contextlib.contextmanager
def cudnn_autotuned(on_gpu: bool):
    """On a GPU, let cuDNN time its algorithms for each convolution once (every batch has the same
    shape, so once is all); a profile of the graphed step showed its default choices of weight-
    gradient kernels taking about a third of the step. Not when deterministic cuDNN was asked
    for (tests compare runs bit for bit); the process's setting is restored after the run."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or (on_gpu and not torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextlib.contextmanager
def cancel_on_sigterm():
    """Turn SIGTERM (the app's Cancel) into Cancelled in the main thread."""
    def handler(signum, frame):
        raise Cancelled("cancelled by signal")
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- the run's parts
@dataclass
class RunData:
    """Both splits on the training device as tensors (the test labels stay on the host, where the
    epoch's snapshot reads them), or, for an image folder too large to hold, streamed
    (`core.data.StreamedImages`: decoded a batch at a time); and what augmentation needs."""
    info: DatasetInfo
    images: torch.Tensor | StreamedImages
    labels: torch.Tensor
    test_images: torch.Tensor | StreamedImages
    test_labels: torch.Tensor
    fill: torch.Tensor          # a black pixel after normalisation: what padding shows
    padding: int
    whole_test_split: bool      # False: --limit kept a sample of the test images
    resized_crop: bool = False  # augment by random resized crops (ImageNet's) instead of padded crops
    unreadable: dict = field(default_factory=dict)  # split -> files left out (a streamed test split's, as met)

    def __post_init__(self):
        if self.streamed:  # which training images a stream found unreadable, however many epochs see them
            self.unreadable_train = torch.zeros(len(self.labels), dtype=torch.bool)

    @property
    def streamed(self) -> bool:
        return isinstance(self.images, StreamedImages)

    def chunk_images(self) -> int:
        """How many images a GPU gathers and augments at once: GPU_CHUNK_IMAGES, fewer for large
        images (the padded float copy stays under GPU_CHUNK_BYTES); a streamed split's loader
        hands over one batch at a time."""
        if self.streamed:
            return 1
        _, c, h, w = self.images.shape
        padded = c * (h + 2 * self.padding) * (w + 2 * self.padding) * self.images.element_size()
        return min(GPU_CHUNK_IMAGES, GPU_CHUNK_BYTES // padded)

    def batches(self, order: torch.Tensor, steps: int, batch_size: int, augment: bool, generator,
                per_chunk: int = 1):
        """The epoch's `steps` batches in `order`, gathered and augmented `per_chunk` batches at a
        time: one on the CPU, where the step's arithmetic dwarfs it, many on a GPU, where a
        batch's dozen small gather and augmentation kernels cost more host time than the whole
        graphed step (issue 13)."""
        gathered = self.streamed_chunks(order, steps, batch_size) if self.streamed else (
            (self.images[idx], self.labels[idx])
            for idx in (order[first * batch_size:(first + min(per_chunk, steps - first)) * batch_size]
                        for first in range(0, steps, per_chunk)))
        for x, y in gathered:
            if augment:
                if self.resized_crop:  # torchvision's families, trained as on ImageNet
                    x = augment_batch(random_resized_crop(x, generator), 0, True, generator)
                else:
                    x = augment_batch(x, self.padding, True, generator, self.fill)
            x = x.contiguous(memory_format=torch.channels_last)
            for i in range(0, len(x), batch_size):
                yield x[i:i + batch_size], y[i:i + batch_size]

    def streamed_chunks(self, order: torch.Tensor, steps: int, batch_size: int):
        """A streamed split's batches in `order`, decoded by the loader's workers. A batch keeps
        its size (a graphed step replays one shape): a file that cannot be read is stood in for
        by a readable image of the same batch; a batch with none is skipped."""
        positions = order[:steps * batch_size].cpu()
        device = self.labels.device
        batches = self.images.batches(batch_size, positions, pin_memory=device.type == "cuda")
        for first, (x, readable) in zip(range(0, len(positions), batch_size), batches):
            y = self.labels[positions[first:first + len(x)].to(device)]
            if not bool(readable.all()):
                self.unreadable_train[positions[first:first + len(x)][~readable]] = True
                if not bool(readable.any()):
                    continue
                stand_in = torch.nonzero(readable).flatten()
                swap = stand_in[torch.arange(int((~readable).sum())) % len(stand_in)]
                x[~readable], y[(~readable).to(device)] = x[swap], y[swap.to(device)]
            yield x.to(device, non_blocking=True), y

    def test_pass(self, model, on_gpu: bool):
        """The test split's FeatureCache (see `evaluate`); a streamed one's readable images."""
        if not isinstance(self.test_images, StreamedImages):
            return evaluate(model, self.test_images, self.test_labels, on_gpu)
        was_training = model.training
        cache = kept(self.test_images, *extract_rows(model, self.test_images))
        model.train(was_training)
        self.unreadable["test"] = len(self.test_images) - len(cache.labels)
        return cache

    def unreadable_notice(self) -> str | None:
        """One line on the files left out, once the first epoch has met them all."""
        train = int(self.unreadable_train.sum()) if self.streamed else self.unreadable.get("train", 0)
        test = self.unreadable.get("test", 0)
        if not train and not test:
            return None
        return (f"{train} training and {test} held-out files of the folder could not be read as images and "
                "were left out")


def load_data(config: TrainConfig, device: torch.device) -> RunData:
    view = config.view()
    train_set = load_dataset(config.dataset, "train", config.data_root, view).subset(config.limit)
    whole_test = load_dataset(config.dataset, "test", config.data_root, view)
    test_set = whole_test.subset(config.limit)
    info = train_set.info

    def images(split):  # a streamed split stays on disk; one held whole moves to the device
        return split if isinstance(split, StreamedImages) else split.images.to(device)
    return RunData(info, images(train_set), train_set.labels.to(device), images(test_set), test_set.labels,
                   black_value(info).to(device), int(info.extra.get("crop_padding", 4)),
                   whole_test_split=len(test_set) == len(whole_test), resized_crop=bool(info.extra.get("crop")),
                   unreadable={"train": getattr(train_set, "unreadable", 0), "test": getattr(whole_test, "unreadable", 0)})


def build(config: TrainConfig, objective: Objective, info: DatasetInfo, device: torch.device):
    """The model (seeded), its optimiser, and the objective's own optimiser (the LSG gate's) or None.
    AdamW (decoupled weight decay; `momentum` is its beta1) is torch.optim's: a ViT trained from
    scratch with SGD learns far slower (vit_tiny: 46% on Fashion-MNIST after 40,000 images)."""
    torch.manual_seed(config.seed)
    model = create_model(config.arch, info.num_classes, info.channels, **arch_options(config.no_bn, config.dropout))
    if config.init:
        try:
            state, _ = initial_state(config.init, model)
        except UserError as exc:
            raise TrainingError(f"--init: {exc}") from None
        model.load_state_dict(state, strict=True)
    model = model.to(device).to(memory_format=torch.channels_last)
    extra_optimizer = objective.attach(model)
    net_params = [p for n, p in model.named_parameters() if n != "gate"]
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(net_params, lr=config.lr, betas=(config.momentum, 0.999),
                                      weight_decay=config.weight_decay)
    else:
        optimizer = SGD(net_params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                        nesterov=config.momentum > 0)
    return model, optimizer, extra_optimizer


def run_record(config: TrainConfig, objective: Objective, data: RunData, command: str, device, dist, model,
               steps_per_epoch: int) -> dict:
    """The checkpoint's metadata: every recorded option, the data, the command and the machine."""
    info = data.info
    return {
        **config.recorded_options(), "options": objective.values,
        "dataset": info.name, "class_names": info.class_names, "channels": info.channels,
        "input_size": info.input_size, "mean": info.mean, "std": info.std,
        "schedule": f"{'adamw' if config.optimizer == 'adamw' else 'sgd-nesterov'}, linear warm-up 25% then cosine",
        "command": command,
        "versions": library_versions(), "device": device.type, "world_size": dist.world_size,
        "num_features": model.num_features, "steps_per_epoch": steps_per_epoch,
        "test_images": len(data.test_labels), "whole_test_split": data.whole_test_split,  # what test_accuracy is over
        **({"data_split": info.extra["split"]} if "split" in info.extra else {}),  # which images were held out
        **({"preprocess": CROP} if info.extra.get("crop") else {}),
    }


def train_only_the_head(model, only: bool) -> None:
    """Freeze (or free) every parameter but the last linear layer's and the LSG gate, and keep the
    body's batch-norm statistics as they are while frozen: fitting a new head to weights from
    elsewhere before the body moves, as fine-tuning is usually begun."""
    head = {f"{model.head_path}.weight", f"{model.head_path}.bias", "gate"}
    for name, parameter in model.named_parameters():
        if name not in head:
            parameter.requires_grad_(not only)
    if only:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def step_function(net, objective: Objective, optimizer, meter: EpochMeter, device: torch.device):
    def one_step(kind, x, y):
        """Forward, loss, backward, optimiser steps, the epoch's running sums: no host sync, so
        a GPU can replay it whole."""
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False):
            logits = objective.forward(net, x, y, kind)
        logits = logits.float()
        loss = objective.training_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.after_step()
        meter.add(loss.detach(), logits.detach(), y)
    return one_step


class EpochMeter:
    """Loss and accuracy summed on the device, in place (a CUDA graph adds to the same
    tensors); read (one host sync) only when reported."""

    def __init__(self, device):
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.long)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss_sum += loss * len(y)
        self.correct += (logits.argmax(1) == y).sum()

    def read(self, seen: int) -> tuple[float, float]:
        return float(self.loss_sum) / seen, int(self.correct) / seen


def evaluate_epoch(model, data: RunData, epoch: int, on_gpu: bool):
    """After an epoch: refuse non-finite weights or outputs, else the test split's FeatureCache
    and accuracy."""
    if not all_finite(model.state_dict()):
        raise TrainingError(f"the weights became non-finite in epoch {epoch + 1}; lower --lr or "
                            "--weight-decay (nothing new was saved)")
    cache = data.test_pass(model, on_gpu)
    if not (torch.isfinite(cache.logits).all() and torch.isfinite(cache.features).all()):
        raise TrainingError(f"the model's outputs became non-finite in epoch {epoch + 1}; lower --lr "
                            "(nothing new was saved)")
    return cache, int((cache.logits.argmax(1) == cache.labels).sum()) / max(1, len(cache.labels))


def save_epoch(out: Path, model, meta: dict, epoch: int, optimizer, extra_optimizer, scheduler, generator,
               history) -> None:
    """The checkpoint after `epoch`; an unfinished run keeps what --resume needs."""
    state = None if meta["complete"] else {
        "epoch": epoch + 1, "optimizer": portable_state(optimizer.state_dict()),
        "scheduler": portable_state(scheduler.state_dict()), "generator": generator.get_state(),
        "gate_optimizer": extra_optimizer.state_dict() if extra_optimizer else {}}
    try:
        save_checkpoint(out, model, meta, state, history)
    except OSError as exc:
        raise TrainingError(f"could not write checkpoint {out}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- training
def train(config: TrainConfig, command: str = "", terminal: bool = False) -> dict:
    """Train one model; returns its final metadata. Raises TrainingError or Cancelled."""
    objective = validate(config)
    dist = Distributed()
    device = dist.setup(pick_device(config.device))
    on_gpu = device.type == "cuda"
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cpu" and local_ranks > 1:  # ranks on one CPU share its cores; alone, torch's default
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_ranks))
    out = Path(config.out)
    log = ProgressLog(config.progress_path() if dist.is_main else None)
    bar = TerminalLine(terminal and dist.is_main)

    def ended(exc: Exception, event: str) -> Exception:
        bar.end()
        with contextlib.suppress(UserError):  # a log the disk no longer takes must not hide why the run ended
            log.write(event, message=str(exc))
        return exc

    log.write("start", config=asdict(config), epochs=config.epochs, device=device.type, pid=os.getpid())
    try:
        if config.after_pids:
            wait_for_runs(config.after_pids, log)
        with cudnn_autotuned(on_gpu):
            return run_training(config, objective, command, device, dist, out, log, bar)
    except Cancelled as exc:
        raise ended(exc, "cancelled") from None
    except UserError as exc:  # the run's log says why, in one line (a DataError too)
        raise ended(exc if isinstance(exc, TrainingError) else TrainingError(str(exc)), "error") from None
    except (torch.OutOfMemoryError, MemoryError):
        raise ended(TrainingError(f"out of memory on {device.type}; lower --batch-size"), "error") from None
    finally:
        dist.teardown()


def wait_for_runs(pids: tuple[int, ...], log: ProgressLog) -> None:
    """Queued behind other training processes (every run started before it that shares the
    CPU): start when all have ended, whichever order they end in. Cancelling the wait (SIGTERM)
    saves nothing, as before any epoch."""
    log.write("phase", phase="queued: waiting for the runs before it to end", queued=True)
    # each one as it is now: a pid reused later by another run (maybe one waiting for us) is not it
    waiting = {pid: started for pid in pids if (started := training_process_start(pid)) is not None}
    while any(training_process_start(pid) == started for pid, started in waiting.items()):
        time.sleep(0.5)


@dataclass
class Pace:
    """Images per second and the time left, from the steps this process has trained (a resumed
    run counts from its restart): the step and epoch events and the terminal bar read it."""
    total_steps: int
    images_per_step: int
    started: float = field(default_factory=time.time)
    steps: int = 0      # trained in this process
    last_log: float = 0.0

    def due(self, interval_s: float, now: float, force: bool = False) -> bool:
        if force or now - self.last_log >= interval_s:
            self.last_log = now
            return True
        return False

    def elapsed(self, now: float) -> float:
        return now - self.started

    def rate(self, now: float) -> float:
        return self.steps * self.images_per_step / max(self.elapsed(now), 1e-9)

    def eta(self, steps_done: int, now: float) -> float:
        return (self.total_steps - steps_done) * self.elapsed(now) / max(1, self.steps)


def run_training(config: TrainConfig, objective: Objective, command: str, device: torch.device,
                 dist: Distributed, out: Path, log: ProgressLog, bar: TerminalLine) -> dict:
    """The run itself, from loading the data to the last epoch's checkpoint."""
    on_gpu = device.type == "cuda"
    # --- data, model, schedule
    log.write("phase", phase="loading data")
    data = load_data(config, device)
    log.write("phase", phase="building the model")
    model, optimizer, extra_optimizer = build(config, objective, data.info, device)
    per_rank = len(dist.shard(torch.arange(len(data.labels))))
    batch_size = min(config.batch_size, per_rank)
    steps_per_epoch = max(1, per_rank // batch_size)  # static shapes: the partial batch is dropped
    total_steps = config.epochs * steps_per_epoch
    scheduler = Schedule(optimizer, warmup_cosine(total_steps))
    generator = torch.Generator(device=device).manual_seed(config.seed)
    meta = run_record(config, objective, data, command, device, dist, model, steps_per_epoch)

    # --- resume where the last completed epoch left off
    start_epoch, history = 0, None
    if config.resume and not out.exists():
        notice = f"nothing to resume at {out}: starting a new run"
        log.write("phase", phase=notice)
        print(f"note: {notice}", file=sys.stderr)
    elif config.resume:
        start_epoch, history = restore(out, recorded(config, objective, data.info.name), model, optimizer,
                                       extra_optimizer, scheduler, generator, config.epochs)
        if start_epoch >= config.epochs:  # finished already: said so, as a run that ends is
            finished = parse_meta(read_payload(out), out.name)
            log.write("done", test_accuracy=finished.get("test_accuracy"), test_images=finished.get("test_images"),
                      checkpoint=str(out), seconds=0.0)
            return finished

    # --- the step: compiled on request, replayed from CUDA graphs on one GPU
    net = torch.compile(model, dynamic=False) if config.compile else model
    net = dist.wrap(net, objective.uses_gate, device)
    if config.head_only_epochs and dist.active:
        raise TrainingError("--head-only-epochs trains one process only (DistributedDataParallel needs every "
                            "parameter in every step)")
    # freezing the body between epochs changes the step: replaying a graph captured before would not
    graphs = (on_gpu and config.cuda_graphs and not dist.active and not config.head_only_epochs
              and config.optimizer == "sgd")  # AdamW's step would need capturable state
    meter = EpochMeter(device)
    run_step = StepRunner(step_function(net, objective, optimizer, meter, device), [optimizer], enabled=graphs)
    per_chunk = max(1, data.chunk_images() // batch_size) if on_gpu else 1
    log.write("phase", phase="training", start_epoch=start_epoch, total_steps=total_steps,
              steps_per_epoch=steps_per_epoch, cuda_graphs=graphs)

    pace = Pace(total_steps, batch_size * dist.world_size)
    test_accuracy = float("nan")
    for epoch in range(start_epoch, config.epochs):
        # --- one epoch: every step on the device, nothing read back but at logging time
        model.train()
        train_only_the_head(model, epoch < config.head_only_epochs)
        objective.start_epoch(epoch)
        order = dist.shard(torch.randperm(len(data.labels), generator=generator, device=device))
        meter.reset()
        batches = data.batches(order, steps_per_epoch, batch_size, config.augment, generator, per_chunk)
        for step, (x, y) in enumerate(batches):
            global_step = epoch * steps_per_epoch + step
            run_step(objective.step_kind(epoch, global_step), x, y)
            scheduler.step()
            pace.steps += 1
            if pace.due(config.log_interval_s, time.time(), force=step == steps_per_epoch - 1):
                report_step(log, bar, meter, pace, config.epochs, epoch, step, steps_per_epoch, batch_size,
                            float(scheduler.get_last_lr()[0]))

        # --- epoch end: test split once, snapshot, checkpoint
        bar.end()
        cache, test_accuracy = evaluate_epoch(model, data, epoch, on_gpu)
        notice = data.unreadable_notice() if epoch == start_epoch else None
        if notice:
            log.write("phase", phase=notice)
            if dist.is_main:
                print(f"note: {notice}", file=sys.stderr)
        if config.snapshot_per_class:
            subset = trajectory.subset_indices(cache.labels, data.info.num_classes, config.snapshot_per_class)
            history = trajectory.record(history, epoch + 1, cache, model, subset)
        train_loss, train_acc = (dist.all_mean(v, device) for v in meter.read(steps_per_epoch * batch_size))
        meta.update(test_accuracy=test_accuracy, test_images=len(cache.labels), epochs_completed=epoch + 1,
                    complete=epoch + 1 == config.epochs,
                    time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        if model.gate is not None:
            meta["gate_density"] = float(lsg.gate_density(model.gate.detach()))
        if dist.is_main:
            save_epoch(out, model, meta, epoch, optimizer, extra_optimizer, scheduler, generator, history)
        now = time.time()
        log.write("epoch", epoch=epoch + 1, epochs=config.epochs, train_loss=train_loss,
                  train_accuracy=train_acc, test_accuracy=test_accuracy, elapsed_s=pace.elapsed(now),
                  images_per_s=pace.rate(now), eta_s=pace.eta((epoch + 1) * steps_per_epoch, now),
                  gate_density=meta.get("gate_density"))
    dist.finish()
    log.write("done", test_accuracy=test_accuracy, test_images=meta["test_images"], checkpoint=str(out),
              seconds=pace.elapsed(time.time()))
    return meta


def report_step(log: ProgressLog, bar: TerminalLine, meter: EpochMeter, pace: Pace, epochs: int, epoch: int,
                step: int, steps_per_epoch: int, batch_size: int, lr: float) -> None:
    """A step event and the terminal bar: the loss and accuracy so far this epoch (the one host
    sync), the pace, the time left. A loss gone non-finite ends the run here."""
    mean_loss, accuracy = meter.read((step + 1) * batch_size)
    if not math.isfinite(mean_loss):
        raise TrainingError(f"loss became {mean_loss} in epoch {epoch + 1} by step {step + 1}; "
                            "lower --lr or check the method's options (nothing new was saved)")
    global_step, now = epoch * steps_per_epoch + step + 1, time.time()
    rate, eta = pace.rate(now), pace.eta(global_step, now)
    log.write("step", epoch=epoch + 1, epochs=epochs, step=step + 1, steps_per_epoch=steps_per_epoch,
              global_step=global_step, total_steps=pace.total_steps, loss=mean_loss, accuracy=accuracy,
              images_per_s=rate, elapsed_s=pace.elapsed(now), eta_s=eta, lr=lr)
    fraction = global_step / pace.total_steps
    bar.show(f"epoch {epoch + 1}/{epochs} {bar.bar(fraction, 30)} {fraction:6.1%} loss {mean_loss:.4f} "
             f"acc {accuracy:6.2%} {rate:6.0f} img/s eta {format_seconds(eta)}  ")


def restore(out: Path, expected: dict, model, optimizer, extra_optimizer, scheduler, generator,
            epochs: int) -> tuple[int, dict | None]:
    """Load the last epoch's checkpoint, still made with `expected` (checked again: a queued run may
    have waited for hours), into the fresh objects; returns (epoch to start at, trajectory so far)."""
    payload = resumable_payload(out, expected)
    state = payload.get("train_state")
    if state is None:  # a finished run: nothing left to train
        return epochs, None
    try:
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        if extra_optimizer is not None and state.get("gate_optimizer"):
            extra_optimizer.load_state_dict(state["gate_optimizer"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise TrainingError(f"cannot resume {out.name}: its training state does not fit ({str(exc)[:120]})") from None
    return int(state["epoch"]), payload.get("trajectory")
