"""Environment that points the app at tiny real checkpoints and throwaway cache/runs folders."""
import os
from pathlib import Path


def app_environment(models: Path, work: Path, extra: dict | None = None) -> dict:
    return {
        "UNITLENS_CHECKPOINTS": str(models),
        "UNITLENS_MODEL_DIRS": "",
        "UNITLENS_CACHE": str(work / "cache" / "unitlens.duckdb"),
        "UNITLENS_RUNS": str(work / "runs"),
        "UNITLENS_EVAL_LIMIT": "600",
        "UNITLENS_TRAIN_LIMIT": "600",
        **(extra or {}),
    }


def apply(env: dict) -> dict:
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return previous


def restore(previous: dict) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
