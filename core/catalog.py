"""Where checkpoints are and what they are called: the folders searched, the display label, the
content hash the store and the shipped results are keyed by. Free of PyTorch, so the app can
list the bundled models while the engine is still loading."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from .errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROOT_CHECKPOINTS = PROJECT_ROOT / "checkpoints"  # the bundled models in the repository


def bundled_dir() -> Path:
    """checkpoints/ (UNITLENS_CHECKPOINTS overrides it, e.g. for tests)."""
    return Path(os.environ.get("UNITLENS_CHECKPOINTS", ROOT_CHECKPOINTS))


def runs_dir() -> Path:
    """Where runs started from the app write (UNITLENS_RUNS overrides runs/)."""
    return Path(os.environ.get("UNITLENS_RUNS", PROJECT_ROOT / "runs"))


def extra_dirs() -> list[str]:
    """Further model folders the user names in UNITLENS_MODEL_DIRS (os.pathsep between them)."""
    return [d for d in os.environ.get("UNITLENS_MODEL_DIRS", "").split(os.pathsep) if d]


def analysis_limits() -> tuple[int | None, int | None]:
    """(test, train) images the app's analyses read: UNITLENS_EVAL_LIMIT and UNITLENS_TRAIN_LIMIT,
    a whole number each, 0 or unset for the whole split (tests set them to stay fast)."""
    return _count_setting("UNITLENS_EVAL_LIMIT"), _count_setting("UNITLENS_TRAIN_LIMIT")


def describe_analysis_limits() -> str:
    """The app's analyses, where the environment cuts them short."""
    test, train = analysis_limits()
    return describe_limits([(test, "test"), (train, "training")], "UNITLENS_EVAL_LIMIT, UNITLENS_TRAIN_LIMIT")


def describe_limits(counts: list[tuple[int | None, str]], set_by: str) -> str:
    """Analyses cut short to a sample of N images of a split ("" on the whole splits): their figures
    then differ from the shipped ones and from the trainer's accuracy, so the app and core.analyze say so."""
    parts = [f"{n:,} {split} images" for n, split in counts if n]
    if not parts:
        return ""
    return (f"The analyses read {' and '.join(parts)} only, a seeded class-balanced sample ({set_by}), "
            "so their figures are not the whole splits'.")


def _count_setting(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if text and not (text.isascii() and text.isdigit()):
        raise UserError(f"{name} must be a whole number of images (0: all), not {text!r}")
    return int(text or 0) or None


def discover(extra=(), include_runs: bool = True) -> list[Path]:
    """Every `*.pt` in checkpoints/, runs/ and folders the user names (recursive, but never into
    hidden files or folders), sorted, de-duplicated."""
    folders = [bundled_dir(), *(Path(d).expanduser() for d in extra), *[runs_dir()] * include_runs]
    found: dict[str, Path] = {}
    for path in visible_files(folders, ".pt"):
        found.setdefault(str(path.resolve()) if path.exists() else str(path), path)
    return list(found.values())


STUDIES = "studies"  # checkpoints/studies/: models of the report's studies, their figures shipped, not their results


def bundle() -> list[Path]:
    """The bundled checkpoints, whose results ship (make_results.py): checkpoints/ without its
    studies' folders, which hold models the app lists once a study script has trained them."""
    studies = bundled_dir() / STUDIES
    return [path for path in discover(include_runs=False) if studies not in path.parents]


def visible_files(folders, *suffixes: str) -> list[Path]:
    """Files of these suffixes in the folders (recursive, sorted per folder), never in hidden
    files or folders: temporaries, unfinished runs, .ipynb_checkpoints."""
    return [path for folder in folders if folder.is_dir() for suffix in suffixes
            for path in sorted(folder.rglob(f"*{suffix}"))
            if not any(part.startswith(".") for part in path.relative_to(folder).parts)]


WEIGHT_SUFFIXES = (".pth", ".safetensors")


def weight_files(extra=()) -> list[Path]:
    """Weights files lying in the model folders (a user's .pth or .safetensors put beside the
    checkpoints): not models until imported, and the sidebar says so instead of ignoring them."""
    return sorted(visible_files([bundled_dir(), *(Path(d).expanduser() for d in extra)], *WEIGHT_SUFFIXES))


def labelled(paths) -> dict[str, Path]:
    """label -> path: the file stem, with its folder added when two files share a stem."""
    out: dict[str, Path] = {}
    for path in paths:
        label = Path(path).stem
        if label in out:
            label = f"{label} ({Path(path).parent.name})"
        out[label] = Path(path)
    return out


def file_hash(path: Path | str) -> str:
    """The first 16 hex digits of the file's SHA-256, read once per version of the file (its size
    and modification time): the first Overview and the checkpoint load ask for the same files."""
    stat = Path(path).stat()
    return _hash(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def model_label(meta: dict) -> str:
    """Short display name: the file stem."""
    return Path(meta.get("path", meta.get("method", "model"))).stem
