"""The trainer end to end on real Fashion-MNIST subsets."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from core.checkpoints import load, read_payload
from core.trainer import TrainConfig, TrainingError, train

from .conftest import PYTHON, ROOT, assert_one_line_error, run_cli


def small_config(tmp_path, name="m", **kw):
    base = dict(method="ce", epochs=2, limit=256, batch_size=64, out=str(tmp_path / f"{name}.pt"))
    base.update(kw)
    return TrainConfig(**base)


def test_cli_trains_writes_progress_and_a_loadable_checkpoint(tmp_path, data_root):
    out = tmp_path / "ce.pt"
    result = run_cli("core.train", "--method", "minimax", "--p-t", "0.8", "--epochs", "1", "--limit", "300",
                     "--batch-size", "100", "--out", str(out))
    assert result.returncode == 0, result.stderr
    checkpoint = load(out)
    model, meta = checkpoint.model, checkpoint.meta
    assert meta["method"] == "minimax" and meta["options"] == {"p_t": 0.8, "random_ties": False}
    assert meta["complete"] and meta["epochs_completed"] == 1 and 0 <= meta["test_accuracy"] <= 1
    assert meta["command"].startswith("python -m core.train --method minimax")
    assert meta["versions"]["torch"] == torch.__version__ and meta["class_names"][0] == "T-shirt/top"
    assert (meta["test_images"], meta["whole_test_split"]) == (300, False)  # what test_accuracy is over
    events = [json.loads(line) for line in out.with_suffix(".progress.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "epoch" in kinds and events[-1]["test_images"] == 300
    step = next(e for e in events if e["event"] == "step")
    assert {"epoch", "step", "loss", "accuracy", "images_per_s", "eta_s"} <= set(step)
    assert "train_state" not in read_payload(out)  # a finished run carries no optimizer state


def test_the_selectivity_regulariser_on_every_layer_trains_and_is_recorded(tmp_path, data_root):
    """Every layer is the default (the paper's), and the checkpoint says so."""
    out = tmp_path / "sel.pt"
    result = run_cli("core.train", "--method", "selectivity", "--alpha", "2", "--epochs", "1",
                     "--limit", "200", "--batch-size", "100", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert load(out).meta["options"] == {"alpha": 2.0, "every_layer": True}
    # the shallow CNN's last depth layer is a hidden linear layer: its neurons are read as they are
    shallow = tmp_path / "shallow.pt"
    result = run_cli("core.train", "--method", "selectivity", "--alpha", "2", "--every-layer", "true", "--epochs", "1",
                     "--arch", "shallow_cnn", "--lr", "0.02", "--limit", "200", "--batch-size", "100",
                     "--out", str(shallow))
    assert result.returncode == 0, result.stderr
    assert load(shallow).meta["arch"] == "shallow_cnn"


def test_same_seed_same_result(tmp_path, data_root):
    train(small_config(tmp_path, "a", epochs=1))
    train(small_config(tmp_path, "b", epochs=1))
    train(small_config(tmp_path, "c", epochs=1, seed=1))
    a, b, c = (read_payload(tmp_path / f"{n}.pt")["state_dict"] for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path, data_root):
    reference = small_config(tmp_path, "ref", epochs=3, limit=512)
    train(reference)
    out = tmp_path / "killed.pt"
    progress = out.with_suffix(".progress.jsonl")
    args = ["--method", "ce", "--epochs", "3", "--limit", "512", "--batch-size", "64", "--out", str(out)]
    proc = subprocess.Popen([PYTHON, "-m", "core.train", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 300
    while time.time() < deadline:  # kill while the second epoch is in progress
        if progress.exists() and any('"event": "step", "time"' in line and '"epoch": 2' in line
                                     for line in progress.read_text().splitlines()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = load(out).meta  # never a broken file
    assert meta["epochs_completed"] == 1 and not meta["complete"]
    result = run_cli("core.train", *args, "--resume")
    assert result.returncode == 0, result.stderr
    resumed = read_payload(out)["state_dict"]
    expected = read_payload(tmp_path / "ref.pt")["state_dict"]
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=1e-5, atol=1e-6)


def test_lsg_trains_gate_under_its_constraint(tmp_path, data_root):
    meta = train(small_config(tmp_path, "lsg", method="lsg", options={"warmup_epochs": 0, "period": 2}))
    gate = read_payload(tmp_path / "lsg.pt")["state_dict"]["gate"]
    assert gate.shape == (10, 64)
    assert gate.min() >= 0 and gate.max() <= 1
    torch.testing.assert_close(gate.max(dim=0).values, torch.ones(64))
    assert not torch.allclose(gate, torch.full_like(gate, 0.5))
    assert meta["options"]["period"] == 2 and meta["options"]["by_epoch"] is False
    assert meta["gate_density"] == pytest.approx(float(gate.mean()), rel=1e-5)


def test_nan_loss_stops_with_reason(tmp_path, data_root):
    with pytest.raises(TrainingError, match="loss became|non-finite"):
        train(small_config(tmp_path, "nan", lr=1e6, epochs=1))
    assert not (tmp_path / "nan.pt").exists()  # nothing saved


@pytest.mark.parametrize("args,needle", [
    (["--method", "bogus"], "unknown method"),
    (["--dataset", "bogus"], "unknown dataset"),
    (["--method", "minimax", "--p-t", "0"], "p_t"),
    (["--method", "minimax", "--p-t", "1.2"], "p_t"),
    (["--epochs", "0"], "epochs"),
    (["--arch", "bogus"], "unknown arch"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent"], "not found"),
    (["--epochs", "x"], "invalid int"),
    (["--after", "0"], "--after takes process ids"),
])
def test_bad_options_fail_at_once_with_one_line(tmp_path, args, needle):
    """In-process through the CLIs' own wrapper (tests/test_hostile.py runs the real process)."""
    from core.train import main
    from .test_hostile import assert_one_line, call
    out = tmp_path / "never.pt"
    assert needle in assert_one_line(*call(main, *args, "--out", str(out)))
    assert not out.exists() and not out.with_suffix(".progress.jsonl").exists()


def test_unwritable_output_folder_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("core.train", "--out", str(blocker / "sub" / "m.pt"))
    assert "cannot write" in assert_one_line_error(result)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_with_gloo(tmp_path, data_root):
    out = tmp_path / "ddp.pt"
    result = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "core.train", "--method", "lsg", "--warmup-epochs", "0", "--epochs", "1", "--limit", "256",
         "--batch-size", "32", "--device", "cpu", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    meta = load(out).meta
    assert meta["world_size"] == 2 and meta["complete"]
    starts = [line for line in out.with_suffix(".progress.jsonl").read_text().splitlines() if '"start"' in line]
    assert len(starts) == 1  # only rank 0 writes


def test_batches_gathered_in_chunks_are_the_same_batches(data_root):
    """On a GPU an epoch's batches are gathered and augmented many at a time (the CPU: one).
    Unaugmented, any chunking yields the same batches in the same order, a last partial chunk
    included; augmented, each image is still a crop-and-flip of its own image."""
    from core.trainer import load_data
    data = load_data(TrainConfig(limit=200, out="unused.pt", data_root=str(data_root)), torch.device("cpu"))
    order = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(1))
    one = list(data.batches(order, 7, 16, augment=False, generator=None, per_chunk=1))
    chunked = list(data.batches(order, 7, 16, augment=False, generator=None, per_chunk=3))
    assert len(one) == len(chunked) == 7
    for (x1, y1), (x3, y3) in zip(one, chunked):
        assert x3.shape == (16, 1, 28, 28) and x3.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x1, x3) and torch.equal(y1, y3)
    assert torch.equal(one[0][0], data.images[order[:16]])  # the order's first 16 images

    augmented = list(data.batches(order, 7, 16, augment=True, generator=torch.Generator().manual_seed(0), per_chunk=3))
    p = data.padding
    padded = torch.nn.functional.pad(data.images, (p, p, p, p), value=float(data.fill))
    for step, (x, y) in enumerate(augmented):
        for i in range(0, 16, 5):
            source = padded[order[step * 16 + i]]
            windows = [source[:, r:r + 28, c:c + 28] for r in range(2 * p + 1) for c in range(2 * p + 1)]
            assert any(torch.equal(x[i], w) or torch.equal(x[i], w.flip(2)) for w in windows)
        assert torch.equal(y, data.labels[order[step * 16:(step + 1) * 16]])


def test_progress_summary_of_a_queued_then_resumed_run():
    """By hand: time spent waiting in the queue is not elapsed training time; a resumed run
    cancelled while still queued stays resumable from the epoch its first attempt saved."""
    from core.progress import summarize
    waited = [{"event": "start", "time": 0.0, "epochs": 3, "config": {"resume": False}},
              {"event": "phase", "time": 0.0, "phase": "queued: waiting", "queued": True},
              {"event": "phase", "time": 30.0, "phase": "loading data"},
              {"event": "step", "time": 35.0, "epoch": 1, "global_step": 5, "total_steps": 30}]
    assert summarize(waited[:2], now=25.0).queued and summarize(waited[:2], now=25.0).elapsed_s == 25.0  # waiting
    summary = summarize(waited, now=40.0)
    assert summary.elapsed_s == 10.0 and summary.status == "running" and summary.eta_s == pytest.approx(50.0)
    assert not summary.queued
    # a resumed attempt that does not queue: its clock starts at its own start, whatever came before
    again = waited[:2] + [{"event": "cancelled", "time": 5.0}, {"event": "start", "time": 50.0, "config": {"resume": True}},
                          {"event": "phase", "time": 60.0, "phase": "loading data"}]
    assert summarize(again, now=100.0).elapsed_s == 50.0
    resumed = [{"event": "start", "time": 0.0, "epochs": 3, "config": {"resume": False}},
               {"event": "phase", "time": 1.0, "phase": "training", "start_epoch": 0},
               {"event": "epoch", "time": 5.0, "epoch": 1, "test_accuracy": 0.5},
               {"event": "cancelled", "time": 6.0, "message": "cancelled by signal"},
               {"event": "start", "time": 10.0, "epochs": 3, "config": {"resume": True}},
               {"event": "phase", "time": 10.0, "phase": "queued: waiting", "queued": True},
               {"event": "cancelled", "time": 20.0, "message": "cancelled by signal"}]
    summary = summarize(resumed)
    assert (summary.status, summary.resumable, summary.epochs_completed) == ("cancelled", True, 1)
    fresh = resumed[:4] + [{**resumed[4], "config": {"resume": False}}] + resumed[5:]
    assert summarize(fresh).resumable is False  # a new run over the same file starts from nothing


def test_the_cli_exits_cleanly_when_its_reader_has_gone(tmp_path, data_root):
    """A real `python -m core.train` whose stdout is a pipe nobody reads any more (buffered, as
    Python buffers a pipe): it ends without the interpreter's teardown, its last line cannot be
    flushed, and it exits 0 with no traceback."""
    import subprocess
    out = tmp_path / "m.pt"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the run prints its last line
    try:
        done = subprocess.run([PYTHON, "-m", "core.train", "--epochs", "1", "--limit", "64", "--batch-size", "32",
                               "--snapshot-per-class", "0", "--out", str(out)], cwd=ROOT, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
                                   "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert out.exists()


def test_progress_summary_says_how_many_test_images_the_accuracy_is_over():
    """A --limit run measured its test accuracy on fewer test images; the monitor says on how many."""
    from core.progress import summarize
    events = [{"event": "start", "time": 0.0, "epochs": 1, "config": {"limit": 2000}},
              {"event": "done", "time": 5.0, "test_accuracy": 0.173, "test_images": 2000}]
    assert summarize(events).test_images == 2000 and summarize(events).test_accuracy == 0.173
    assert summarize(events[:1]).test_images is None  # not known before the run ends


def test_a_run_that_ended_early_says_how_far_it_got():
    """By hand: data that could not be read fails before any step; a step, or an epoch done
    (also by an earlier attempt of a resumed run), counts as training."""
    from core.progress import summarize
    start = {"event": "start", "time": 0.0, "epochs": 3, "config": {}}
    failed = {"event": "error", "time": 1.0, "message": "no readable images under /etc"}
    loading = {"event": "phase", "time": 0.5, "phase": "loading data"}
    step = {"event": "step", "time": 0.7, "epoch": 1, "step": 1, "global_step": 1}
    epoch = {"event": "epoch", "time": 0.9, "epoch": 1}
    assert summarize([start, loading, failed]).how_far == "before training began"
    assert summarize([failed]).how_far == "before training began"      # refused before its start event
    assert summarize([start, loading, step, failed]).how_far == "after 0 of 3 epochs"
    assert summarize([start, loading, step, epoch, failed]).how_far == "after 1 of 3 epochs"
    resumed = [start, step, epoch, {"event": "cancelled", "time": 1.0},
               {**start, "time": 2.0, "config": {"resume": True}}, {**failed, "time": 3.0}]
    assert summarize(resumed).how_far == "after 1 of 3 epochs"


def test_the_checkpoints_accuracy_stands_in_only_for_the_whole_test_split(data_root):
    """A limit at or above the test split's size keeps the whole split (the run's accuracy is the
    figure); below it the accuracy is over fewer images and waits for the analysis."""
    from core.headline import checkpoint_accuracy
    from core.trainer import load_data
    below, above = (load_data(TrainConfig(method="ce", limit=limit, data_root=str(data_root)), torch.device("cpu"))
                    for limit in (300, 20_000))
    assert (below.whole_test_split, len(below.test_labels)) == (False, 300)
    assert (above.whole_test_split, len(above.test_labels)) == (True, 10_000)
    assert checkpoint_accuracy({"test_accuracy": 0.9, "limit": 20_000, "whole_test_split": True}) == 0.9
    assert checkpoint_accuracy({"test_accuracy": 0.9, "limit": 300, "whole_test_split": False}) is None
    assert checkpoint_accuracy({"test_accuracy": 0.9, "limit": None}) == 0.9   # recorded before the flag
    assert checkpoint_accuracy({"test_accuracy": 0.9, "limit": 300}) is None


def test_the_sidebars_start_refuses_options_that_cannot_work_before_any_run_starts(tmp_path):
    """CE then LSG for one epoch: LSG would never take a gated step. Said at once, and CE is not
    left running alone."""
    from core import runs
    with pytest.raises(runs.RunError, match="no gated step runs"):
        runs.start_runs([("ce", {}), ("lsg", {})], epochs=1, limit=64, folder=tmp_path)
    assert not list(tmp_path.glob("*.run.json"))


START_WITHOUT_ROOM = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, {root!r})
    from core import runs
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))  # a record is ~700 bytes
    try:
        runs.start_runs([("ce", {{}})], epochs=1, limit=64, folder={folder!r})
    except runs.RunError as exc:
        print(exc)
""")


def test_a_runs_folder_that_takes_nothing_starts_no_run_and_says_so(tmp_path):
    """Issue 32: a runs folder we cannot write (a file in its place) was an internal error; a full
    one (here a file-size limit) left a trainer running without a record, which no page could
    follow or cancel, and a cut record."""
    from core import runs
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(runs.RunError, match="cannot write to the runs folder .*no run was started"):
        runs.start_runs([("ce", {})], epochs=1, limit=64, folder=blocked)
    assert blocked.read_text() == "a file where the folder should be"
    full = tmp_path / "full"
    full.mkdir()
    done = subprocess.run([sys.executable, "-c", START_WITHOUT_ROOM.format(root=str(ROOT), folder=str(full))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "File too large): no run was started" in done.stdout, done.stderr
    assert list(full.iterdir()) == []  # its claimed record and log removed; the trainer killed
    assert runs.list_runs(full) == []


def test_a_progress_log_the_disk_no_longer_takes_stops_the_run_in_one_line(tmp_path, data_root):
    """Issue 32: a full disk under the progress log (here a file-size limit of 1 KB, a few events)
    ended core.train in an internal error."""
    import resource

    def one_kilobyte():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
    done = subprocess.run([PYTHON, "-m", "core.train", "--method", "ce", "--epochs", "1", "--limit", "100",
                           "--data-root", str(data_root), "--out", str(tmp_path / "m.pt"),
                           "--progress", str(tmp_path / "m.progress.jsonl")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=one_kilobyte)
    line = assert_one_line_error(done)
    assert "could not write the progress log" in line and "File too large" in line
    assert not (tmp_path / "m.pt").exists()


def test_the_sidebars_start_refuses_an_image_folder_it_could_not_train_on(tmp_path):
    """Said before any run starts, each in one line: a relative path (read from the server's
    folder, `../..` trained on `/`), one class, a class folder without images (`/etc`'s)."""
    from PIL import Image
    from core import runs
    from core.data import DataError, get_source

    def image_folder(name: str, classes: dict[str, str]):
        for cls, files in classes.items():
            (tmp_path / name / cls).mkdir(parents=True)
            for file in files.split():
                if file.endswith(".png"):
                    Image.new("L", (8, 8), 200).save(tmp_path / name / cls / file)
                else:
                    (tmp_path / name / cls / file).write_text("not an image")
        return tmp_path / name
    cases = [("../..", runs.RunError, "full path"),
             (image_folder("one", {"cat": "1.png"}), DataError, "1 class folder (cat); a classifier needs two or more"),
             (image_folder("bare", {"cat": "1.png 2.png", "dog": "notes.txt"}), DataError, "dog holds fewer than two images")]
    for path, error, words in cases:
        with pytest.raises(error, match=re.escape(words)):
            runs.start_runs([("ce", {})], dataset=f"imagefolder:{path}", epochs=1, folder=tmp_path / "runs")
    assert not list(tmp_path.glob("runs/*.run.json"))
    good = image_folder("good", {"cat": "1.png", "dog": "2.png"})
    with pytest.raises(DataError, match="fewer than two images; with no train/ and test/ folders"):
        get_source(f"imagefolder:{good}").check()  # one image a class: none to hold out
    Image.new("L", (8, 8), 90).save(tmp_path / "good" / "cat" / "0.png")
    Image.new("L", (8, 8), 90).save(tmp_path / "good" / "dog" / "3.tif")  # any format Pillow reads
    (tmp_path / "good" / "dog" / "2.png").rename(tmp_path / "good" / "dog" / "2.jpeg")
    get_source(f"imagefolder:{good}").check()  # passes
    assert get_source(f"imagefolder: {good} ").name == f"imagefolder:{good}"  # a pasted space is no part of it


@pytest.mark.slow
def test_a_sweep_trains_every_value_and_seed_and_the_page_draws_it(tmp_path, data_root, tiny_checkpoints):
    """core.sweep over p_t 0.6, 0.9 and seeds 0, 1: four checkpoints with those options; a bad value
    is refused in one line before any run; the Specificity and cost page draws the sweep."""
    from core.checkpoints import load
    from . import ui_env
    from .conftest import assert_one_line_error, run_cli
    from .test_app import elements, new_app, no_errors
    bad = run_cli("core.sweep", "--vary", "p_t=0.6,x", "--out-dir", str(tmp_path / "bad"), "--",
                  "--method", "minimax")
    assert_one_line_error(bad)
    assert "p_t=x: --p-t: 'x' is not a valid float" in bad.stderr
    assert not list(tmp_path.glob("bad/*.pt"))  # refused before any run
    out = tmp_path / "sweep"
    result = run_cli("core.sweep", "--vary", "p_t=0.6,0.9", "--seeds", "0,1", "--out-dir", str(out), "--",
                     "--method", "minimax", "--epochs", "1", "--limit", "200", "--batch-size", "100",
                     "--snapshot-per-class", "0", real_process=True)
    assert result.returncode == 0, result.stderr
    assert "4 of 4 runs saved" in result.stdout
    metas = {path.name: load(path).meta for path in out.glob("*.pt")}
    assert sorted(metas) == [f"minimax-p_t{v}-seed{s}.pt" for v in ("0.6", "0.9") for s in (0, 1)]
    assert {(m["options"]["p_t"], m["seed"]) for m in metas.values()} == {(0.6, 0), (0.6, 1), (0.9, 0), (0.9, 1)}
    previous = ui_env.apply(ui_env.app_environment(out, tmp_path / "work"))
    try:
        at = new_app()
        at.sidebar.multiselect[0].set_value([p.stem for p in sorted(out.glob("*.pt"))]).run()
        at.switch_page("pages/tradeoffs.py").run()
        no_errors(at)
        assert at.selectbox(key="tradeoffs_sweep").value == "minimax: p_t (2 values)"
        specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
        assert any("against p_t (minimax)" in spec for spec in specs)
    finally:
        ui_env.restore(previous)


def test_a_sweep_asked_for_in_words_by_hand():
    """p_t over "0.6, 0.9" with seeds "0, 1": two choices, the other options kept, two seeds; a
    value that is not a number, a single value, a switch and too many runs are one line each."""
    from core import runs
    choices, seeds = runs.sweep_choices("minimax", {"p_t": 0.7, "random_ties": True}, "p_t", " 0.6, 0.9,0.9", "0, 1")
    assert choices == [("minimax", {"p_t": 0.6, "random_ties": True}), ("minimax", {"p_t": 0.9, "random_ties": True})]
    assert seeds == [0, 1]
    assert "random_ties" not in runs.sweepable("minimax") and runs.sweepable("ce") == []
    for option, values, seed_text, said in [("p_t", "0.6, high", "0", "as numbers separated by commas"),
                                            ("p_t", "0.6", "0", "at least two values"),
                                            ("random_ties", "0, 1", "0", "no numeric option"),
                                            ("p_t", ", ".join(str(v / 100) for v in range(1, 27)), "0, 1", "at most 50")]:
        with pytest.raises(runs.RunError, match=said):
            runs.sweep_choices("minimax", {}, option, values, seed_text)
