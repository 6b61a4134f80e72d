"""Shared fixtures: real Fashion-MNIST (prepared by `make setup`), small real models."""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import prepare_fashion_mnist  # noqa: E402

PYTHON = sys.executable

# One torch thread for the suite: on this 2-core machine, while other work runs, OpenMP's waiting
# threads made the fast suite 4x slower (Score-CAM's many small passes 15x); README, "make test-fast".
# The processes the tests start (command lines, training runs, the app) inherit it, so a run in a
# child computes what the same run computes here (float sums depend on the thread count).
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


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


@dataclass
class Finished:
    """What a command line left: its exit code and what it printed."""
    returncode: int
    stdout: str
    stderr: str


def run_cli(module: str, *args: str, check: bool = False, real_process: bool = False, timeout: int = 600) -> Finished:
    """`python -m module args` from the project root. By default the command's own `main` runs
    in this process behind the same `run_main` as its `__main__` (a new process costs 2-3 s of
    imports); `real_process=True` starts Python, for what only a process shows (`timeout`
    applies to it alone: in this process, pytest's own timeout does)."""
    argv = [str(a) for a in args]
    if real_process:
        done = subprocess.run([PYTHON, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
        result = Finished(done.returncode, done.stdout, done.stderr)
    else:
        from core.cli import run_main
        main = importlib.import_module(module).main
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run_main(main, argv)
            except SystemExit as exc:  # argparse: --help (0) and bad arguments (2)
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        result = Finished(code, out.getvalue(), err.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"{module} {argv} failed:\n{result.stderr[-2000:]}")
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
