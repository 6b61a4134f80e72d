"""`python -m core.import_weights WEIGHTS --arch ARCH ...`: a weights file from elsewhere (a
torchvision, timm-style or Hugging Face state dict, `.pth`/`.pt` or `.safetensors`) made into a
Unit Lens checkpoint, so every page and analysis opens it. Nothing is written unless the whole
file fits the architecture; the checkpoint records the source file's SHA-256.
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from .catalog import runs_dir
from .checkpoints import MAX_CLASSES, MAX_INPUT_SIZE, meta_problem, save_checkpoint
from .data import CROP, IMAGENET_MEAN, IMAGENET_STD, DataError, View, get_source
from .errors import UserError
from .models import MODELS, create_model
from .weights import WeightsError, matched_state_dict, read_weights, sha256



def class_names(spec: str | None, head_rows: int | None) -> list[str]:
    """`--classes`: a count, a file of one name a line, `imagenet` (torchvision's ImageNet-1k
    names), or nothing (the head's own count, numbered)."""
    if spec is None:
        if head_rows is None:
            raise WeightsError("cannot tell the class count from the file; give --classes")
        return class_names(str(head_rows), None)
    if spec == "imagenet":
        from torchvision.models._meta import _IMAGENET_CATEGORIES
        return list(_IMAGENET_CATEGORIES)
    if spec.isascii() and spec.isdigit():
        if not 2 <= int(spec) <= MAX_CLASSES:
            raise WeightsError(f"--classes {spec[:20]}: Unit Lens shows 2 to {MAX_CLASSES} classes")
        return [f"class {i}" for i in range(int(spec))]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(f"--classes {spec[:60]!r}: not a number, 'imagenet' or a file of class names")
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"--classes {path.name}: cannot be read as text ({exc})") from None
    return names


def import_weights(weights: Path | str, arch: str, out: Path | str, classes: str | None = None,
                   dataset: str = "", input_size: int | None = None, mean=None, std=None,
                   command: str = "") -> dict:
    """Write a Unit Lens checkpoint of `weights` for `arch` at `out`; its metadata, or UserError."""
    weights, out = Path(weights).expanduser(), Path(out).expanduser()
    if arch not in MODELS:
        raise WeightsError(f"unknown --arch {arch[:40]!r}; the {len(MODELS)} known are listed by --help")
    family = MODELS[arch]
    if out.suffix != ".pt":
        raise WeightsError(f"--out {out.name}: a checkpoint's name ends in .pt")
    if out.exists():
        raise WeightsError(f"--out {out}: exists; Unit Lens never overwrites a file it did not write here")
    state = read_weights(weights)
    head = state.get(f"{family.head_path}.weight")
    head_rows = head.shape[0] if head is not None and head.ndim == 2 else None
    names = class_names(classes, head_rows)
    if head_rows is not None and head_rows != len(names):
        raise WeightsError(f"{weights.name}: its head has {head_rows} classes, not the {len(names)} given "
                           "(--classes); give its own class count, or fine-tune a new head with core.train --init")
    stem = family.adapt_state_dict(state).get(family.stem_key)
    channels = int(stem.shape[1]) if stem is not None and stem.ndim == 4 else family.channels[-1]
    if channels not in family.channels:
        raise WeightsError(f"{weights.name}: its first convolution takes {channels} channel(s); {arch} takes "
                           f"{' or '.join(map(str, family.channels))}")
    size = input_size or family.default_input_size or None
    if not dataset:
        raise WeightsError("give --dataset: the images its figures are computed on")
    source = get_source(dataset, view=View(size) if size else None)
    try:
        source.check()
    except DataError as exc:
        raise WeightsError(f"--dataset: {exc}") from None
    info = source.info()
    if dataset.startswith("imagefolder:"):
        if len(info.class_names) != len(names):
            raise WeightsError(f"--dataset has {len(info.class_names)} class folders, the model "
                               f"{len(names)} classes")
        if classes is None or (classes.isascii() and classes.isdigit()):
            names = info.class_names  # the folders' own names, in the order the folder is read
    else:
        if info.num_classes != len(names) or info.channels != channels:
            raise WeightsError(f"--dataset {dataset} has {info.num_classes} classes and {info.channels} "
                               f"channel(s); the model {len(names)} and {channels}")
        if input_size and input_size != info.input_size:
            raise WeightsError(f"{dataset} images are {info.input_size} px; --input-size {input_size} would need "
                               "them resized, which Unit Lens does for image folders only")
        size, names = info.input_size, info.class_names
        mean, std = mean or info.mean, std or info.std
    if not size:
        raise WeightsError(f"give --input-size: {arch} has no size of its own")
    if not 8 <= size <= MAX_INPUT_SIZE or size < family.min_input_size:
        raise WeightsError(f"--input-size {size}: {arch} takes {max(8, family.min_input_size)} to {MAX_INPUT_SIZE} px")
    if family.imagenet_norm:
        mean, std = mean or IMAGENET_MEAN, std or IMAGENET_STD
    if not mean or not std:
        raise WeightsError(f"give --mean and --std: the normalisation {arch} was trained with")
    try:
        model = create_model(arch, len(names), channels)
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    model.load_state_dict(matched_state_dict(state, model, weights.name), strict=True)
    meta = {
        "arch": arch, "dataset": dataset, "class_names": names, "channels": channels, "input_size": size,
        "mean": [float(v) for v in mean], "std": [float(v) for v in std], "method": "imported",
        "preprocess": CROP if family.imagenet_norm else "pad-resize", "num_features": model.num_features,
        "source": {"file": weights.name, "sha256": sha256(weights), "format": weights.suffix.lower()},
        "command": command, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    problem = meta_problem(meta)
    if problem:
        raise WeightsError(f"cannot describe this model: {problem}")
    save_checkpoint(out, model.eval(), meta)
    return meta


def import_into_folder(weights: str, arch: str, place: str, classes: str = "", folder: Path | None = None) -> dict:
    """`import_weights` from the app's sidebar: `place` is a dataset's name or an image folder's
    path; every path must be whole (a relative one would be read from the server's folder); the
    checkpoint goes to `folder` (the runs folder) under a name not yet taken."""
    weights, place, classes = weights.strip(), place.strip(), classes.strip()
    images = place.removeprefix("imagefolder:")
    is_folder = place.startswith(("imagefolder:", "/", "~", "."))
    paths = [weights]
    if is_folder:
        paths.append(images)
    if classes and classes != "imagenet" and not classes.isdigit():  # a file of class names
        paths.append(classes)
    if any(not Path(p).expanduser().is_absolute() for p in paths):
        raise WeightsError("give full paths (as /home/me/weights.pth): a relative one would be read from the "
                           "server's working folder")
    folder = Path(folder or runs_dir())
    folder.mkdir(parents=True, exist_ok=True)
    stem, n = f"{Path(weights).stem}-{arch}", 1
    out = folder / f"{stem}.pt"
    while out.exists():
        n += 1
        out = folder / f"{stem}-{n}.pt"
    meta = import_weights(weights, arch, out, classes or None, f"imagefolder:{images}" if is_folder else place,
                          command=f"imported from the app's sidebar: {weights}")
    return {**meta, "path": str(out)}


def floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{text[:40]!r}: give numbers separated by commas (0.485,0.456,0.406)") from None
    if len(values) not in (1, 3) or not all(0 < abs(v) < 1e3 for v in values):
        raise UserError(f"{text[:40]!r}: give one or three numbers")
    return values * 3 if len(values) == 1 else values


def main(argv=None) -> int:
    from .cli import OneLineParser
    parser = OneLineParser(prog="python -m core.import_weights",
                           description="make a weights file (.pth, .pt, .safetensors) a Unit Lens checkpoint")
    parser.add_argument("weights", help="a state dict: torch.save(model.state_dict()) or a .safetensors file")
    parser.add_argument("--arch", required=True, help=f"one of {', '.join(sorted(MODELS))}")
    parser.add_argument("--out", required=True, help="the checkpoint to write (.pt); put it in checkpoints/ "
                                                     "or a folder of UNITLENS_MODEL_DIRS to see it in the app")
    parser.add_argument("--classes", help="a count, a file of one class name a line, or 'imagenet' "
                                          "(default: the head's count, or an image folder's class folders)")
    parser.add_argument("--dataset", required=True, help="what its figures are computed on: fashion-mnist, cifar10, … or "
                                          "imagefolder:PATH (train/ and test/ or val/, or one tree split once)")
    parser.add_argument("--input-size", type=int, help="the side of its input in pixels (default: 224 for "
                                                       "torchvision's families, else the dataset's)")
    parser.add_argument("--mean", type=floats, help="the normalisation's mean (default: ImageNet's for "
                                                    "torchvision's families, else the dataset's)")
    parser.add_argument("--std", type=floats, help="the normalisation's std (as --mean)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "core.import_weights", *(argv if argv is not None else sys.argv[1:])])
    meta = import_weights(args.weights, args.arch, args.out, args.classes, args.dataset, args.input_size,
                          args.mean, args.std, command)
    print(f"saved {args.out}: {args.arch}, {len(meta['class_names'])} classes, {meta['num_features']} units, "
          f"{meta['input_size']} px, dataset {meta['dataset']}")
    return 0


if __name__ == "__main__":
    from .cli import run_main
    raise SystemExit(run_main(main))
