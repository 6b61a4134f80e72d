"""The training engine behind `python -m core.train` and the dashboard's sidebar.

Data lives in memory as one tensor (on the GPU when training there); batches are sliced and
augmented as whole tensors. Progress goes to a JSON-lines file the app tails without touching
DuckDB. Checkpoints are written atomically at every epoch end, so a killed run loses at most
the epoch in progress and `resume=True` continues from the last one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
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
import torch.nn.functional as F

from . import lsg
from .analysis.features import extract
from .checkpoints import CheckpointError, parse_meta, read_payload, save_checkpoint
from .data import DataError, augment_batch, black_value, get_source, load_dataset
from .losses import Objective, create_objective
from .models import MODELS, UnitModel, create_model


class TrainingError(RuntimeError):
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
    device: str = "auto"
    out: str = ""
    progress: str = ""
    resume: bool = False
    compile: bool = False
    augment: bool = True
    data_root: str | None = None
    log_every: int = 20

    def progress_path(self) -> Path:
        return Path(self.progress) if self.progress else Path(self.out).with_suffix(".progress.jsonl")


# ----------------------------------------------------------------------------- validation
def validate(config: TrainConfig) -> Objective:
    """Every check that needs no heavy work, so bad options fail at once."""
    try:
        objective = create_objective(config.method, **config.options)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if config.arch not in MODELS:
        raise TrainingError(f"unknown arch {config.arch!r}; choose one of {sorted(MODELS)}")
    if config.epochs < 1:
        raise TrainingError(f"epochs must be >= 1, got {config.epochs}")
    if config.batch_size < 1:
        raise TrainingError(f"batch size must be >= 1, got {config.batch_size}")
    if not config.lr > 0:
        raise TrainingError(f"lr must be > 0, got {config.lr}")
    if config.limit is not None and config.limit < 1:
        raise TrainingError(f"limit must be >= 1, got {config.limit}")
    if config.device not in ("auto", "cpu", "cuda"):
        raise TrainingError(f"device must be auto, cpu or cuda, got {config.device!r}")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked for, but no CUDA device is available")
    if not config.out:
        raise TrainingError("an output path (--out) is required")
    try:
        get_source(config.dataset, config.data_root).check()
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    check_writable(Path(config.out).parent)
    return objective


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise TrainingError(f"cannot write to {folder}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- progress
class Progress:
    """JSON lines for the app (one per logging step and epoch), a bar for a terminal."""

    def __init__(self, path: Path | None, enabled: bool, total_steps: int, terminal: bool):
        self.path, self.enabled, self.total_steps = path, enabled, total_steps
        self.terminal = terminal and enabled and sys.stderr.isatty()
        if enabled and path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        if not self.enabled or self.path is None:
            return
        record = {"event": event, "time": time.time(), **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def bar(self, epoch: int, epochs: int, done: int, loss: float, acc: float, rate: float, eta: float):
        if not self.terminal:
            return
        frac = done / max(1, self.total_steps)
        filled = int(30 * frac)
        sys.stderr.write(f"\repoch {epoch + 1}/{epochs} [{'#' * filled}{'.' * (30 - filled)}] {frac:6.1%} "
                         f"loss {loss:.4f} acc {acc:6.2%} {rate:6.0f} img/s eta {format_seconds(eta)}  ")
        sys.stderr.flush()

    def end_bar(self):
        if self.terminal:
            sys.stderr.write("\n")


def format_seconds(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate_accuracy(model: UnitModel, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 500, autocast: bool = False) -> float:
    """Test accuracy through the analysis engine's forward pass, leaving the train mode as it was."""
    was_training = model.training
    cache = extract(model, images, labels, batch_size, autocast=autocast)
    model.train(was_training)
    return int((cache.logits.argmax(1) == cache.labels).sum()) / max(1, len(labels))


def warmup_cosine(total_steps: int, warmup_fraction: float = 0.25):
    """One-cycle shape for any length: linear warm-up to the peak lr, then cosine to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
    return factor


def library_versions() -> dict:
    import torchvision
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


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


class Distributed:
    """torchrun support: DistributedDataParallel with NCCL on GPU, gloo on the CPU."""

    def __init__(self):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world_size > 1

    def setup(self, device: torch.device) -> torch.device:
        if not self.active:
            return device
        import torch.distributed as dist
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model, uses_gate: bool, device: torch.device):
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=uses_gate)

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return indices
        usable = len(indices) - len(indices) % self.world_size
        return indices[self.rank:usable:self.world_size]

    def all_mean(self, value: float, device) -> float:
        if not self.active:
            return value
        import torch.distributed as dist
        tensor = torch.tensor([value], device=device, dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def teardown(self):
        if self.active:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


# ----------------------------------------------------------------------------- training
def train(config: TrainConfig, command: str = "", terminal: bool = False) -> dict:
    """Train one model; returns its final metadata. Raises TrainingError or Cancelled."""
    objective = validate(config)
    dist = Distributed()
    device = dist.setup(pick_device(config.device))
    on_gpu = device.type == "cuda"
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))
    out = Path(config.out)
    progress_path = config.progress_path()

    train_set = load_dataset(config.dataset, "train", config.data_root).subset(config.limit)
    test_set = load_dataset(config.dataset, "test", config.data_root).subset(config.limit)
    info = train_set.info
    images = train_set.images.to(device) if on_gpu else train_set.images
    labels = train_set.labels.to(device) if on_gpu else train_set.labels
    fill = black_value(info).to(device)
    padding = int(info.extra.get("crop_padding", 4))

    torch.manual_seed(config.seed)
    model = create_model(config.arch, info.num_classes, info.channels)
    gate_options = objective.values if objective.uses_gate else {}
    if objective.uses_gate:
        model.add_gate()
    model = model.to(device).to(memory_format=torch.channels_last)
    net_params = [p for n, p in model.named_parameters() if n != "gate"]
    optimizer = torch.optim.SGD(net_params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    gate_optimizer = (torch.optim.SGD([model.gate], lr=gate_options["gate_lr"])
                      if objective.uses_gate else None)
    per_rank = len(dist.shard(torch.arange(len(labels))))
    steps_per_epoch = max(1, math.ceil(per_rank / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps))
    generator = torch.Generator().manual_seed(config.seed)

    meta = {
        "method": config.method, "options": objective.values, "arch": config.arch,
        "dataset": info.name, "class_names": info.class_names, "channels": info.channels,
        "input_size": info.input_size, "mean": info.mean, "std": info.std,
        "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
        "seed": config.seed, "limit": config.limit, "augment": config.augment,
        "schedule": "sgd-nesterov, linear warm-up 25% then cosine", "weight_decay": config.weight_decay,
        "command": command, "versions": library_versions(), "device": device.type,
        "world_size": dist.world_size, "num_features": model.num_features,
    }
    start_epoch = 0
    if config.resume and out.exists():
        start_epoch = restore(out, config, model, optimizer, gate_optimizer, scheduler, generator)
        if start_epoch >= config.epochs:
            return parse_meta(read_payload(out), out.name)

    train_model = model
    if config.compile:
        train_model = torch.compile(model)
    train_model = dist.wrap(train_model, objective.uses_gate, device)
    progress = Progress(progress_path, dist.is_main, total_steps, terminal)
    progress.write("start", config=asdict(config), start_epoch=start_epoch, device=device.type,
                   total_steps=total_steps, steps_per_epoch=steps_per_epoch, pid=os.getpid())
    target_l1 = gate_options.get("target_density", 0.2) * info.num_classes * model.num_features
    started = time.time()
    steps_done_here = 0
    test_accuracy = float("nan")
    try:
        for epoch in range(start_epoch, config.epochs):
            model.train()
            order = dist.shard(torch.randperm(len(labels), generator=generator))
            loss_sum, correct, seen = 0.0, 0, 0
            for step in range(steps_per_epoch):
                global_step = epoch * steps_per_epoch + step
                idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                if on_gpu:
                    idx = idx.to(device, non_blocking=True)
                x, y = images[idx], labels[idx]
                if config.augment:
                    x = augment_batch(x, padding, True, generator, fill)
                x = x.contiguous(memory_format=torch.channels_last)
                gated = objective.uses_gate and lsg.is_gated_step(
                    epoch, global_step, int(gate_options["period"]), gate_options["by_epoch"],
                    int(gate_options["warmup_epochs"]))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
                    logits = train_model(x, y) if gated else train_model(x)
                logits = logits.float()
                if gated:
                    loss = gate_options["gate_weight"] * (
                        F.cross_entropy(logits, y) + gate_options["sparsity_weight"]
                        * lsg.sparsity_term(model.gate, target_l1, gate_options["one_sided"]))
                else:
                    loss = objective(logits, y)
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                                        "lower --lr or check the method's options")
                optimizer.zero_grad(set_to_none=True)
                if gate_optimizer is not None:
                    gate_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if gated:
                    gate_optimizer.step()
                    lsg.constrain_gate_(model.gate.data)
                scheduler.step()
                batch = len(y)
                loss_sum += loss.item() * batch
                correct += int((logits.argmax(1) == y).sum())
                seen += batch
                steps_done_here += 1
                if step % config.log_every == 0 or step == steps_per_epoch - 1:
                    elapsed = time.time() - started
                    rate = steps_done_here * config.batch_size * dist.world_size / max(elapsed, 1e-9)
                    remaining = (total_steps - global_step - 1) * elapsed / steps_done_here
                    fields = dict(epoch=epoch + 1, step=step + 1, global_step=global_step + 1,
                                  total_steps=total_steps, loss=loss_sum / seen, accuracy=correct / seen,
                                  images_per_s=rate, eta_s=remaining, lr=scheduler.get_last_lr()[0])
                    progress.write("step", **fields)
                    progress.bar(epoch, config.epochs, global_step + 1, loss_sum / seen, correct / seen, rate, remaining)
            test_accuracy = evaluate_accuracy(model, test_set.images, test_set.labels, autocast=on_gpu)
            train_loss = dist.all_mean(loss_sum / max(seen, 1), device)
            train_acc = dist.all_mean(correct / max(seen, 1), device)
            meta.update(test_accuracy=test_accuracy, epochs_completed=epoch + 1,
                        complete=epoch + 1 == config.epochs,
                        time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            if objective.uses_gate:
                meta["gate_density"] = lsg.gate_density(model.gate.detach())
            if dist.is_main:
                state = None if meta["complete"] else {
                    "epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "gate_optimizer": gate_optimizer.state_dict() if gate_optimizer else {}}
                try:
                    save_checkpoint(out, model, meta, state)
                except OSError as exc:
                    raise TrainingError(f"could not write checkpoint {out}: {exc.strerror or exc}") from None
            elapsed = time.time() - started
            progress.end_bar()
            progress.write("epoch", epoch=epoch + 1, epochs=config.epochs, train_loss=train_loss,
                           train_accuracy=train_acc, test_accuracy=test_accuracy,
                           images_per_s=steps_done_here * config.batch_size * dist.world_size / max(elapsed, 1e-9),
                           eta_s=(total_steps - (epoch + 1) * steps_per_epoch) * elapsed / max(1, steps_done_here),
                           gate_density=meta.get("gate_density"))
        progress.write("done", test_accuracy=test_accuracy, checkpoint=str(out), seconds=time.time() - started)
        return meta
    except (TrainingError, Cancelled) as exc:
        progress.end_bar()
        progress.write("cancelled" if isinstance(exc, Cancelled) else "error", message=str(exc))
        raise
    finally:
        dist.teardown()


def restore(out: Path, config: TrainConfig, model, optimizer, gate_optimizer, scheduler, generator) -> int:
    """Load the last epoch's checkpoint into the fresh objects; returns the epoch to start at."""
    try:
        payload = read_payload(out)
        meta = parse_meta(payload, out.name)
    except CheckpointError as exc:
        raise TrainingError(f"cannot resume: {exc}") from None
    for key in ("method", "arch", "epochs", "batch_size", "seed"):
        if meta.get(key) != getattr(config, key):
            raise TrainingError(f"cannot resume {out.name}: its {key} is {meta.get(key)!r}, "
                                f"this run's is {getattr(config, key)!r}")
    state = payload.get("train_state")
    if state is None:
        return config.epochs if meta.get("complete") else 0
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    if gate_optimizer is not None and state.get("gate_optimizer"):
        gate_optimizer.load_state_dict(state["gate_optimizer"])
    return int(state["epoch"])
