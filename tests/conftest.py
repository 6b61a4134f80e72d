"""Shared fixtures: real Fashion-MNIST (prepared by `make setup`), small real models."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import prepare_fashion_mnist  # noqa: E402

PYTHON = sys.executable


@pytest.fixture(scope="session")
def data_root() -> Path:
    prepare_fashion_mnist(ROOT / "data", allow_download=False)
    return ROOT / "data"


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, data_root) -> dict[str, Path]:
    """Three real checkpoints (ce, minimax, lsg) trained by our trainer on 600 images."""
    from core.trainer import TrainConfig, train
    folder = tmp_path_factory.mktemp("tiny_ckpts")
    paths = {}
    for method in ("ce", "minimax", "lsg"):  # in this process: the CLI itself is tested in test_train
        out = folder / f"{method}.pt"
        options = {"warmup_epochs": 0} if method == "lsg" else {}
        train(TrainConfig(method=method, options=options, epochs=2, limit=600, batch_size=100, out=str(out),
                          data_root=str(data_root)))
        paths[method] = out
    return paths


def run_cli(module: str, *args: str, check: bool = False, timeout: int = 600, env=None):
    """Run `python -m module args` from the project root; returns CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    result = subprocess.run([PYTHON, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} {args} failed:\n{result.stderr[-2000:]}")
    return result


def assert_one_line_error(result):
    """Non-zero exit, exactly one non-empty line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Marks a test whose call failed, so fixtures can keep its artifacts (browser screenshots)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
