"""Nothing a file or an option can do: every command line over a corpus of bad arguments and
bad files gives one short line and a non-zero exit (never a traceback); every hostile
checkpoint is refused with its reason before it can cost memory; what is not ours is left alone."""
from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from core import analyze, data, predict, train
from core.checkpoints import CheckpointError, load, save_checkpoint
from core.models import create_model
from core.trainer import TrainConfig, TrainingError
from core.trainer import train as run_training

from .conftest import PYTHON, ROOT, assert_one_line_error, run_cli

META = {"method": "ce", "arch": "resnet20", "dataset": "fashion-mnist", "class_names": list("abcdefghij"),
        "channels": 1, "input_size": 28, "mean": [0.286], "std": [0.353], "epochs": 1}


def call(main, *argv) -> tuple[int, str]:
    """A command line's main in this process: (exit code, stderr)."""
    result = run_cli(main.__module__, *argv)
    return result.returncode, result.stderr


def assert_one_line(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0, stderr
    assert len(lines) == 1 and "Traceback" not in stderr and len(lines[0]) < 400, stderr
    return lines[0]


# ----------------------------------------------------------------------------- hostile files
def payload_of(model=None, meta=None, **extra) -> dict:
    model = model or create_model("resnet20", 10, 1)
    return {"format": "unitlens-checkpoint-v1", "meta_json": json.dumps(meta or META),
            "state_dict": {k: v.clone() for k, v in model.state_dict().items()}, **extra}


def deflated(source, target):
    """The same archive with every entry compressed: a small file that inflates."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


def with_meta(**changes) -> dict:
    return payload_of(meta={**META, **changes})


def nan_weights() -> dict:
    payload = payload_of()
    payload["state_dict"]["fc.weight"][0, 0] = float("nan")
    return payload


HOSTILE = {
    "notes.pt": lambda p: p.write_text("random notes\n"),
    "passwd.pt": lambda p: p.write_text("root:x:0:0:root:/root:/bin/bash\n"),
    "junk.pt": lambda p: p.write_bytes(b"\x01\x02\x03\x04"),
    "extra-key.pt": lambda p: torch.save(payload_of(extra=torch.zeros(1000)), p),
    "class-names-int.pt": lambda p: torch.save(with_meta(class_names=10), p),
    "mean-string.pt": lambda p: torch.save(with_meta(mean="0.5"), p),
    "meta-number.pt": lambda p: torch.save({**payload_of(), "meta_json": "42"}, p),
    "huge-input.pt": lambda p: torch.save(with_meta(input_size=100_000), p),
    "one-class.pt": lambda p: torch.save(with_meta(class_names=["a"]), p),
    "many-classes.pt": lambda p: torch.save(with_meta(class_names=[f"c{i}" for i in range(100_000)]), p),
    "same-names.pt": lambda p: torch.save(with_meta(class_names=["a"] * 10), p),
    "nan-weights.pt": lambda p: torch.save(nan_weights(), p),
    "bad-trajectory.pt": lambda p: torch.save(payload_of(trajectory={"epoch": torch.zeros(5, 5)}), p),
    "fat-train-state.pt": lambda p: torch.save(payload_of(train_state={"optimizer": torch.zeros(10_000_000)}), p),
    # a trajectory of odd but finite values: each made a page an internal error, or dropped every model
    **{f"trajectory-{name}.pt": (lambda change: lambda p: torch.save(payload_of(meta={**META, "epochs": 2}, trajectory={**good_trajectory(), **change}), p))(change)
       for name, change in {
           "zero-total": {"test_total": torch.tensor(0)},
           "counts-above-total": {"test_correct": torch.tensor([900, 901])},
           "labels-out-of-range": {"subset_labels": torch.tensor([0, 10, 3])},
           "float-subset": {"subset": torch.tensor([0.0, 1.0, 2.0])},
           "int8-features": {"features": torch.zeros(2, 3, 64, dtype=torch.int8)},
           "0-d-epoch": {"epoch": torch.tensor(3)},
           "epochs-backwards": {"epoch": torch.tensor([1, 0])},
           "sparse-means": {"class_means": torch.zeros(2, 10, 64).to_sparse()},
           "meta-tensor": {"bias": torch.zeros(2, 10, device="meta")},
       }.items()},
    "accuracy-text.pt": lambda p: torch.save(with_meta(test_accuracy="0.9"), p),
    "split-list.pt": lambda p: torch.save(with_meta(data_split=[1, 2]), p),
    # the architecture options a run records: a wrong type, a range, an option the family has not
    "dropout-text.pt": lambda p: torch.save(with_meta(dropout="0.5"), p),
    "dropout-one.pt": lambda p: torch.save(with_meta(dropout=1.0), p),
    "no-bn-text.pt": lambda p: torch.save(with_meta(no_bn="yes"), p),
    "no-bn-with-bn-weights.pt": lambda p: torch.save(with_meta(no_bn=True), p),
    "no-bn-on-a-vit.pt": lambda p: torch.save(payload_of(model=create_model("vit_tiny", 10, 1),
                                                         meta={**META, "arch": "vit_tiny", "no_bn": True}), p),
}


def good_trajectory() -> dict:
    """Two epochs of a 10-class, 64-unit model, 3 snapshot images of a 500-image test split."""
    return {"epoch": torch.tensor([0, 1]), "test_correct": torch.tensor([300, 400]), "test_total": torch.tensor(500),
            "class_means": torch.rand(2, 10, 64), "weight": torch.zeros(2, 10, 64), "bias": torch.zeros(2, 10),
            "subset": torch.tensor([0, 7, 9]), "subset_labels": torch.tensor([0, 1, 3]),
            "features": torch.zeros(2, 3, 64, dtype=torch.float16)}


def test_a_good_trajectory_loads(tmp_path):
    torch.save(payload_of(meta={**META, "epochs": 2}, trajectory=good_trajectory()), tmp_path / "good.pt")
    assert load(tmp_path / "good.pt").trajectory["test_total"] == 500


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoints_are_refused_in_one_line(tmp_path, name):
    path = tmp_path / name
    HOSTILE[name](path)
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message and len(message) < 300, message


def inflating_checkpoint(tmp_path) -> Path:
    """A 3 MB file whose zip entries inflate to 256 MB of zeros."""
    raw = tmp_path / "raw.pt"
    torch.save(payload_of(extra=torch.zeros(2**26)), raw)        # 256 MB of zeros under an extra key
    small = tmp_path / "inflate.pt"
    deflated(raw, small)
    raw.unlink()
    assert small.stat().st_size < 3 * 2**20
    return small


def test_an_inflating_checkpoint_is_refused_before_it_inflates(tmp_path):
    with pytest.raises(CheckpointError, match="compressed"):
        load(inflating_checkpoint(tmp_path))


@pytest.mark.slow
def test_refusing_an_inflating_checkpoint_costs_no_memory(tmp_path):
    """core.predict stays small while it refuses one (peak resident memory of its process)."""
    small = inflating_checkpoint(tmp_path)
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("L", (28, 28)).save(image)
    script = ("import sys; from core.cli import run_main; from core.predict import main; "
              f"code = run_main(main, ['--checkpoint', {str(small)!r}, {str(image)!r}]); "
              "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]); sys.exit(code)")
    result = subprocess.run([PYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "compressed" in result.stderr
    assert int(result.stdout.strip()) < 1024 * 1024  # peak resident set of this process, KiB: under 1 GB


def test_saving_refuses_non_finite_weights(tmp_path):
    model = create_model("resnet20", 10, 1)
    with torch.no_grad():
        model.fc.bias[0] = float("inf")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(tmp_path / "m.pt", model, META)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- every command line
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    for name, make in HOSTILE.items():
        make(folder / name)
    raw = folder / "raw.pt"
    torch.save(payload_of(extra=torch.zeros(2**20)), raw)
    deflated(raw, folder / "inflate.pt")
    raw.unlink()
    good = folder / "good.pt"
    save_checkpoint(good, create_model("resnet20", 10, 1), META)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "afile").write_text("x")
    from PIL import Image
    Image.new("L", (28, 28)).save(folder / "ok.png")
    (folder / "fake.png").write_text("not an image")
    flipped(good, folder / "flipped.pt")
    (folder / "oneclass" / "cat").mkdir(parents=True)
    Image.new("L", (28, 28), 200).save(folder / "oneclass" / "cat" / "1.png")
    return folder


def flipped(source: Path, target: Path) -> None:
    """`source` with one bit flipped in the middle of its largest tensor: a valid archive whose
    weights are not the ones saved (PyTorch itself loads it without a word)."""
    import struct
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        entry = max(archive.infolist(), key=lambda e: e.file_size)
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    data[entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2] ^= 0x80
    target.write_bytes(data)


def bad_invocations(f):
    """(main, argv, a word the message must contain)."""
    cases = [
        (train.main, ["--weight-decay", "nan"], "weight decay"),
        (train.main, ["--weight-decay", "-5"], "weight decay"),
        (train.main, ["--lr", "inf"], "lr"),
        (train.main, ["--lr", "1e7"], "lr"),
        (train.main, ["--lr", "0"], "lr"),
        (train.main, ["--momentum", "1.5"], "momentum"),
        (train.main, ["--epochs", "0"], "epochs"),
        (train.main, ["--epochs", "abc"], "epochs"),
        (train.main, ["--batch-size", "-1"], "batch size"),
        (train.main, ["--limit", "-5"], "limit"),
        (train.main, ["--seed", "-1"], "seed"),
        (train.main, ["--method", "nope"], "method"),
        (train.main, ["--dataset", "nope"], "dataset"),
        (train.main, ["--arch", "nope"], "arch"),
        (train.main, ["--method", "minimax", "--p-t", "2"], "p_t"),
        (train.main, ["--method", "minimax", "--p-t", "nan"], "p_t"),
        (train.main, ["--method", "lsg", "--period", "0"], "period"),
        (train.main, ["--method", "lsg", "--epochs", "1"], "no gated step runs"),
        (train.main, ["--method", "ce", "--p-t", "0.5"], "does not apply"),
        (train.main, ["--out", str(f / "afile" / "m.pt")], "cannot write"),
        (train.main, ["--out", str(f / "m.pt"), "--progress", str(f / "afile" / "p.jsonl")], "cannot write"),
        (train.main, ["--snapshot-per-class", "-1"], "snapshot"),
        (train.main, ["--log-interval", "nan"], "log interval"),
        (train.main, ["--nonsense"], "unrecognized"),
        # nothing the trainer did not write is overwritten or appended to
        (train.main, ["--out", str(f / "notes.txt")], "not a checkpoint of this run"),
        (train.main, ["--out", str(f / "good.pt"), "--method", "maxnte"], "not a checkpoint of this run"),
        (train.main, ["--out", str(f / "m.pt"), "--progress", str(f / "notes.txt")], "not a progress log"),
        (train.main, ["--out", str(f / "m.pt"), "--progress", str(f / "m.pt")], "same file"),
        (train.main, ["--out", str(f)], "folder"),
        (train.main, ["--out", ""], "--out"),
        (train.main, ["--out", str(f / "m.pt"), "--dataset", "imagefolder:"], "imagefolder"),
        (train.main, ["--out", str(f / "m.pt"), "--dataset", f"imagefolder:{f / 'oneclass'}"], "two or more"),
        (train.main, ["--seed", "99999999999999999999"], "2^63"),
        (analyze.main, [str(f / "good.pt"), "--cache", ""], "--cache is empty"),
        (analyze.main, [str(f / "flipped.pt")], "fails its checksum"),
        (predict.main, ["--checkpoint", str(f / "flipped.pt"), str(f / "ok.png")], "fails its checksum"),
        (analyze.main, [str(f / "good.pt"), "--limit", "-5"], "limit"),
        (analyze.main, [str(f / "good.pt"), "--limit", "abc"], "limit"),
        (analyze.main, [str(f / "good.pt"), "--train-limit", "-1"], "train-limit"),
        (analyze.main, [str(f / "good.pt"), "--split", "nope"], "split"),
        (analyze.main, [str(f / "missing.pt")], "missing.pt"),
        (analyze.main, [str(f / "good.pt"), "--cache", str(f / "notes.txt")], "not a Unit Lens cache"),
        (analyze.main, [str(f / "good.pt"), "--cache", str(f)], "folder"),
        (analyze.main, [str(f / "good.pt"), "--cache", str(f / "afile" / "c.duckdb")], "file"),
        (predict.main, ["--checkpoint", str(f / "good.pt"), "--top", "-1", str(f / "ok.png")], "top"),
        (predict.main, ["--checkpoint", str(f / "good.pt"), "--top", "0", str(f / "ok.png")], "top"),
        (predict.main, ["--checkpoint", str(f / "good.pt"), str(f / "fake.png")], "fake.png"),
        (predict.main, ["--checkpoint", str(f / "good.pt"), str(f / "missing.png")], "missing.png"),
        (predict.main, [str(f / "ok.png")], "checkpoint"),
        (predict.main, ["--checkpoint", str(f / "good.pt"), str(f / "oneclass")], "a folder, not an image"),
        (data.main, ["bogus"], "choose from"),
        (data.main, ["download", "nope"], "choose from"),
    ]
    for name in sorted(HOSTILE) + ["inflate.pt"]:
        cases.append((analyze.main, [str(f / name)], name))
        cases.append((predict.main, ["--checkpoint", str(f / name), str(f / "ok.png")], name))
    return cases


def test_every_cli_answers_bad_input_in_one_line(corpus):
    failures = []
    before = (corpus / "notes.txt").read_text()
    good = (corpus / "good.pt").read_bytes()
    for main, argv, word in bad_invocations(corpus):
        code, stderr = call(main, *argv)
        try:
            line = assert_one_line(code, stderr)
            assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
        except AssertionError as exc:
            failures.append(f"{main.__module__} {argv}: {exc}")
    assert not failures, "\n".join(failures)
    assert (corpus / "notes.txt").read_text() == before          # the user's file was not touched
    assert (corpus / "good.pt").read_bytes() == good and not (corpus / "m.pt").exists()
    assert not list(corpus.glob("*.corrupt-*"))


@pytest.mark.parametrize("main", [train.main, analyze.main, predict.main, data.main])
def test_help_of_every_cli(main):
    code, stderr = call(main, "--help")
    assert code == 0 and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("module, argv, word", [
    ("core.train", ["--epochs", "0"], "epochs"), ("core.analyze", ["missing.pt"], "missing.pt"),
    ("core.predict", ["--checkpoint", "missing.pt", "x.png"], "x.png"), ("core.data", ["nope"], "nope")])
def test_every_cli_as_a_real_process_answers_in_one_line(module, argv, word):
    """The in-process calls above share `run_main` with `__main__`; this starts the real commands."""
    line = assert_one_line_error(run_cli(module, *argv, real_process=True))
    assert word in line, line


@pytest.mark.slow
def test_nan_in_training_stops_and_saves_nothing_new(tmp_path, data_root):
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingError, match="non-finite|loss became"):
        run_training(TrainConfig(method="ce", epochs=3, limit=10, batch_size=256, lr=1e6, out=str(out)))
    if out.exists():  # only an earlier epoch whose weights were still finite, never a complete one
        assert load(out).meta["complete"] is False
    events = [json.loads(line)["event"] for line in out.with_suffix(".progress.jsonl").read_text().splitlines()]
    assert events[-1] == "error"


@pytest.mark.slow
def test_resume_refuses_any_other_option_and_names_it(tmp_path, data_root):
    out = tmp_path / "m.pt"
    base = ["--method", "minimax", "--epochs", "2", "--limit", "128", "--batch-size", "64", "--out", str(out)]
    code, stderr = call(train.main, *base)
    assert code == 0, stderr
    log, checkpoint = out.with_suffix(".progress.jsonl").read_bytes(), out.read_bytes()
    for flag, value, word in (("--p-t", "0.9", "options"), ("--lr", "0.05", "lr"), ("--limit", "256", "limit"),
                              ("--seed", "3", "seed")):
        argv = [a for a in base]
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
        line = assert_one_line(*call(train.main, *argv, "--resume"))
        assert "cannot resume" in line and word in line, line
    code, stderr = call(train.main, *base, "--no-augment", "--resume")
    assert "augment" in assert_one_line(code, stderr)
    # refused before anything was written: the run's log still ends in its own "done", its checkpoint as it was
    assert out.with_suffix(".progress.jsonl").read_bytes() == log and out.read_bytes() == checkpoint
    code, stderr = call(train.main, *base, "--resume")  # finished already: nothing to train, and said done
    last = json.loads(out.with_suffix(".progress.jsonl").read_text().splitlines()[-1])
    assert code == 0 and last["event"] == "done" and out.read_bytes() == checkpoint, stderr
    fresh = tmp_path / "new.pt"
    code, stderr = call(train.main, *base[:-1], str(fresh), "--epochs", "1", "--resume")
    assert code == 0 and "starting a new run" in stderr and fresh.exists()


def test_a_model_that_cannot_be_analysed_does_not_stop_the_others(corpus, tmp_path, data_root):
    two = tmp_path / "two-classes.pt"
    save_checkpoint(two, create_model("resnet20", 2, 1), {**META, "class_names": ["a", "b"]})
    result = run_cli("core.analyze", str(corpus / "notes.pt"), str(two), str(corpus / "good.pt"), "--limit", "100",
                     "--train-limit", "100", "--cache", str(tmp_path / "c.duckdb"), "--json")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert any("notes.pt" in line for line in lines) and any("two-classes" in line for line in lines)
    assert result.stdout, result.stderr
    rows = json.loads(result.stdout)
    rows = rows if isinstance(rows, list) else [rows]
    assert [r["name"] for r in rows] == ["good"] and rows[0]["headline"]["accuracy"] is not None


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "²", "1e3"])
def test_a_bad_limit_in_the_environment_is_one_line_naming_it(monkeypatch, value):
    from core.catalog import analysis_limits
    from core.errors import UserError
    monkeypatch.setenv("UNITLENS_TRAIN_LIMIT", value)
    with pytest.raises(UserError, match=r"^UNITLENS_TRAIN_LIMIT must be a whole number") as caught:
        analysis_limits()
    assert "\n" not in str(caught.value) and repr(value) in str(caught.value)


def test_limits_from_the_environment(monkeypatch):
    """Read, and said in the sidebar while they cut the analyses short."""
    from core.catalog import analysis_limits, describe_analysis_limits
    monkeypatch.setenv("UNITLENS_EVAL_LIMIT", " 600 ")
    monkeypatch.setenv("UNITLENS_TRAIN_LIMIT", "0")
    assert analysis_limits() == (600, None)
    assert describe_analysis_limits().startswith("The analyses read 600 test images only, a seeded class-balanced sample")
    monkeypatch.setenv("UNITLENS_TRAIN_LIMIT", "12000")
    assert "600 test images and 12,000 training images only" in describe_analysis_limits()
    monkeypatch.delenv("UNITLENS_EVAL_LIMIT")
    monkeypatch.delenv("UNITLENS_TRAIN_LIMIT")
    assert analysis_limits() == (None, None) and describe_analysis_limits() == ""


def test_a_data_error_during_training_ends_the_run_with_its_reason(tmp_path):
    """The folder passes the check before training (it has class sub-folders) but holds no readable
    image: the error reaches the run's progress log, so the app says why, not 'ended without a word'."""
    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for name in ("1.png", "2.png"):
            (tmp_path / "images" / cls / name).write_text("not an image")
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingError, match="no readable images"):
        run_training(TrainConfig(method="ce", epochs=1, dataset=f"imagefolder:{tmp_path / 'images'}", out=str(out)))
    last = json.loads(out.with_suffix(".progress.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "error" and "no readable images" in last["message"] and not out.exists()


@pytest.mark.parametrize("module", ["core.train", "core.analyze", "core.predict"])
def test_ctrl_c_while_a_command_still_loads_is_one_line(module, tmp_path):
    """Ctrl-C once PyTorch's libraries are being loaded (2-3 s here): 'error: interrupted', exit 130,
    never a traceback from inside an import. Later, the command's own handling takes over."""
    args = {"core.train": ["--out", str(tmp_path / "m.pt"), "--epochs", "1", "--limit", "64"],
            "core.analyze": ["checkpoints/ce.pt", "--cache", str(tmp_path / "c.duckdb")],
            "core.predict": ["--checkpoint", "checkpoints/ce.pt", "docs/icon.png"]}[module]
    process = subprocess.Popen([PYTHON, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    import signal
    import time
    maps = Path(f"/proc/{process.pid}/maps")  # a fixed half second came before Python's start on a loaded machine
    deadline = time.time() + 120
    while "torch" not in maps.read_text() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.strip() == "error: interrupted", stderr


def test_a_run_record_naming_files_elsewhere_is_never_listed_and_nothing_outside_is_deleted(tmp_path):
    """A record crafted to name another folder's files (or of the wrong types: "started": null) is
    not a run: it is not listed, the good run beside it is, and Delete on the good run removes its
    own files only. Every file outside the runs folder is byte for byte as it was."""
    import hashlib
    from core import runs
    folder, elsewhere = tmp_path / "runs", tmp_path / "mine"
    folder.mkdir()
    elsewhere.mkdir()
    for name in ("model.pt", "notes.txt", "m.progress.jsonl"):
        (elsewhere / name).write_text(f"someone's {name}")

    def record(run_id, **fields):
        base = {"run_id": run_id, "pid": 999_999, "method": "ce", "args": [], "started": 1.0,
                "cancelled_at": 0.0, **{k: str(folder / f"{run_id}{s}") for k, s in
                                        (("out", ".pt"), ("progress", ".progress.jsonl"), ("log", ".log"))}}
        (folder / f"{run_id}.run.json").write_text(json.dumps({**base, **fields}))
    record("crafted", out=str(elsewhere / "model.pt"), progress=str(elsewhere / "m.progress.jsonl"),
           log=str(elsewhere / "notes.txt"))
    record("nulls", started=None)
    record("renamed")
    (folder / "renamed.run.json").rename(folder / "other-name.run.json")
    record("good")
    (folder / "good.log").write_text("a log of ours")

    def outside():
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(elsewhere.iterdir())}
    before = outside()
    listed = runs.list_runs(folder)
    assert [r.run_id for r in listed] == ["good"] and listed[0].status == "failed"
    assert runs.record_problem(json.loads((folder / "crafted.run.json").read_text()),
                               folder / "crafted.run.json") == "its out file is not beside it"
    runs.delete_run(listed[0])
    assert not (folder / "good.log").exists() and not (folder / "good.run.json").exists()
    assert outside() == before and (folder / "crafted.run.json").exists()


def test_a_progress_log_of_ill_typed_events_is_read_without_them(tmp_path):
    """Issue 32: a progress log is data on disk; a string time, a count that is text or negative, a
    config that is not an object broke the sidebar (TypeError, AttributeError) for every run. Such
    lines are skipped as a half-written one is; the well-formed lines still tell where the run is."""
    from core.progress import read_events, summarize
    good = [{"event": "start", "time": 10.0, "epochs": 4, "config": {"epochs": 4}},
            {"event": "step", "time": 12.0, "epoch": 1, "global_step": 5, "total_steps": 20, "loss": 1.5,
             "eta_s": None, "images_per_s": None}]  # not known yet: null, as the trainer writes it
    hostile = [{"event": "step", "time": "x"}, {"event": "step", "time": 13.0, "global_step": "a"},
               {"event": "step", "time": 13.0, "total_steps": -3}, {"event": "start", "time": 1.0, "config": 5},
               {"event": "start", "time": 1.0, "config": {"epochs": "q"}}, {"event": "phase", "start_epoch": "x"},
               {"event": "error", "message": 5}, {"event": "step", "loss": float("nan")},
               {"event": "phase", "queued": "yes"}, {"event": "epoch", "epoch": True},
               {"event": "step", "time": 13.0, "global_step": None}]
    path = tmp_path / "r.progress.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in good[:1] + hostile + good[1:]))
    events = read_events(path)
    assert events == good
    summary = summarize(events, now=22.0)
    assert (summary.status, summary.fraction, summary.eta_s, summary.elapsed_s) == ("running", 0.25, 36.0, 12.0)  # 12 s for 5 of 20 steps
    resumed_when_finished = {"event": "done", "time": 5.0, "test_accuracy": None, "test_images": None}
    path.write_text(json.dumps(resumed_when_finished))  # core/trainer.py writes it so for an old checkpoint
    assert summarize(read_events(path)).status == "done"


def test_crafted_stored_results_give_empty_headline_cells_not_an_internal_error():
    """A stored result is a row of a file on disk: one whose figures are texts, lists, booleans,
    missing keys or not objects at all gives empty Overview cells (the Overview's table and the
    store's models table read them), where it raised KeyError or TypeError for every model."""
    from core.headline import headline
    crafted = {"accuracy": {"accuracy": "0.99"}, "selectivity": {"median": [0.5], "q1": True, "q3": 0.7,
                                                                  "dead_count": 2.5},
               "nontarget_entropy": {"mean": None}, "gate": "not an object", "influential": [1, 2],
               "noise_ablation": {"gaussian": 5}, "unit_ablation": {}, "filter_correlation": {"c_ic": 1e400}}
    figures = headline(crafted)
    assert figures["selectivity_q3"] == 0.7 and sum(v is not None for v in figures.values()) == 1, figures
    assert headline({"selectivity": {"median": 0.25, "dead_count": 3}})["dead_units"] == 3


def test_a_crafted_feature_cache_is_recomputed_not_analysed(tiny_checkpoints, tmp_path):
    """A feature cache is a file on disk named after the model: one of the wrong shape, dtype or
    layout, with labels out of range or rows out of order, is never handed to an analysis
    (before, each was: a wrong figure or an internal error); the pass is recomputed."""
    from core.analysis.engine import Analyzer
    from core.store import MemoryStore

    def pass_of(folder):
        return Analyzer.from_path(tiny_checkpoints["ce"], MemoryStore(), limit=100, feature_dir=folder).features("test", 100)
    clean = pass_of(tmp_path)
    [path] = tmp_path.glob("*-test-*.pt")
    n, units = clean.features.shape
    crafted = {"wrong units": {"features": clean.features[:, :3]},
               "labels out of range": {"labels": clean.labels + 10},
               "float labels": {"labels": clean.labels.float()},
               "meta features": {"features": torch.empty(n, units, device="meta")},
               "rows out of order": {"index": torch.arange(n).flip(0)},
               "fewer logits": {"logits": clean.logits[:-1]}}
    for why, change in crafted.items():
        torch.save({"features": clean.features, "logits": clean.logits, "labels": clean.labels, **change}, path)
        again = pass_of(tmp_path)
        assert torch.equal(again.features, clean.features) and torch.equal(again.labels, clean.labels), why
        assert again.index is None, why


def test_a_read_only_feature_cache_folder_computes_without_saving(tiny_checkpoints, tmp_path):
    """core.analyze: the figures, and one notice that the forward pass was not kept (it ended in an
    internal error, OSError)."""
    import os
    features = tmp_path / "features"
    features.mkdir()
    os.chmod(features, 0o500)
    try:
        if os.access(features, os.W_OK):  # root ignores the bits: a file where the folder should be
            os.chmod(features, 0o700)
            features.rmdir()
            features.write_text("not a folder")
        result = run_cli("core.analyze", str(tiny_checkpoints["ce"]), "--limit", "100", "--train-limit", "100",
                         "--cache", str(tmp_path / "c.duckdb"))
        assert result.returncode == 0 and "median SI" in result.stdout, result.stderr
        assert result.stderr.count("could not be written") == 1 and "internal error" not in result.stderr
    finally:
        if features.is_dir():
            os.chmod(features, 0o700)


def test_two_starts_in_one_second_get_two_run_ids(tmp_path):
    from core.runs import claim_run_id
    first, second = claim_run_id(tmp_path, "ce-20261206-120000"), claim_run_id(tmp_path, "ce-20261206-120000")
    assert (first, second) == ("ce-20261206-120000", "ce-20261206-120000x")


def test_after_its_own_pid_and_odd_class_names_are_refused_before_training(tmp_path):
    import os
    from PIL import Image
    from core.trainer import TrainConfig, TrainingError, validate
    with pytest.raises(TrainingError, match="wait for itself"):
        validate(TrainConfig(out=str(tmp_path / "m.pt"), after_pids=(os.getpid(),)))
    for cls in (" ", "b"):
        (tmp_path / "blank" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (8, 8), 30 * i).save(tmp_path / "blank" / cls / f"{i}.png")
    with pytest.raises(TrainingError, match="class name must be a visible text"):
        validate(TrainConfig(dataset=f"imagefolder:{tmp_path / 'blank'}", arch="resnet20",
                             out=str(tmp_path / "m.pt")))


def test_class_names_reach_a_terminal_without_their_escape_sequences(tmp_path, capsys):
    """A class name or file name with an escape sequence prints as '?' (it would retitle the
    terminal or rewrite what was printed)."""
    from core.cli import run_main

    def main(argv):
        print("class \x1b]0;pwned\x07name\x9b31m")
        print("error \x1b[2K", file=__import__("sys").stderr)
        return 0
    assert run_main(main) == 0
    out, err = capsys.readouterr()
    assert out == "class ?]0;pwned?name?31m\n" and err == "error ?[2K\n"
