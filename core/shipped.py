"""Analysis results shipped with the bundled checkpoints, so the app is complete the moment it
opens: one gzipped JSON file per checkpoint in checkpoints/results/, named by the checkpoint's
content hash. The engine reads it directly on its first lookup (a changed checkpoint has another
hash, a changed analysis another version: either is simply recomputed). Beside them, index.json
holds each checkpoint's metadata and headline figures, which the app reads without PyTorch.
Written by checkpoints/make_results.py from the DuckDB store after a full report."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from .catalog import ROOT_CHECKPOINTS

FOLDER = ROOT_CHECKPOINTS / "results"


def path_for(content_hash: str, folder: Path | None = None) -> Path:
    return (folder or FOLDER) / f"{content_hash}.json.gz"


def rows(content_hash: str, folder: Path | None = None) -> list[tuple]:
    """Every shipped result of one checkpoint as the store holds them: (analysis, params key,
    split, version, payload); [] if none shipped or the file cannot be read (it is only a head start)."""
    path = path_for(content_hash, folder)
    if not path.is_file():
        return []
    try:
        with gzip.open(path, "rt") as f:
            shipped = json.load(f)
        return [(row["analysis"], row["params"], row["split"], row["version"], row["payload"])
                for row in shipped["results"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def read(content_hash: str, split: str, folder: Path | None = None) -> dict[tuple, dict]:
    """(analysis, params key, version) -> result, for one checkpoint and split."""
    return {(a, p, v): payload for a, p, s, v, payload in rows(content_hash, folder) if s == split}


def write(content_hash: str, name: str, rows: list[tuple], folder: Path | None = None) -> Path:
    """rows: (analysis, params key, split, version, payload) as the store holds them."""
    path = path_for(content_hash, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = [{"analysis": a, "params": p, "split": s, "version": v, "payload": payload}
               for a, p, s, v, payload in rows]
    with gzip.open(path, "wt", compresslevel=9) as f:
        json.dump({"checkpoint": name, "content_hash": content_hash, "results": results}, f,
                  separators=(",", ":"), allow_nan=False)
    return path


INDEX = "index.json"


def index(folder: Path | None = None) -> dict[str, dict]:
    """content hash -> {"name", "meta", "headline"} of every shipped checkpoint: what the app draws
    the Overview from while the engine is still loading. {} if missing or unreadable."""
    try:
        entries = json.loads(((folder or FOLDER) / INDEX).read_text())
        return {h: e for h, e in entries.items() if isinstance(e, dict) and isinstance(e.get("meta"), dict)
                and isinstance(e.get("headline"), dict) and isinstance(e["meta"].get("method"), str)}
    except (OSError, ValueError, AttributeError):
        return {}


def write_index(entries: dict[str, dict], folder: Path | None = None) -> Path:
    path = (folder or FOLDER) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path
