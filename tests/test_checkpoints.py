"""Checkpoints: round trip, and every kind of bad file refused with one line."""
import os
import pickle

import pytest
import torch

from core.catalog import discover
from core.checkpoints import CheckpointError, FORMAT, load, save_checkpoint
from core.models import create_model

META = {"method": "ce", "arch": "resnet20", "dataset": "fashion-mnist", "class_names": list("abcdefghij"),
        "channels": 1, "input_size": 28, "mean": [0.286], "std": [0.353]}


def test_round_trip_keeps_outputs_and_gate(tmp_path):
    model = create_model("resnet20", 10, 1).eval()
    model.add_gate()
    with torch.no_grad():
        model.gate.uniform_()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, {**META, "method": "lsg"})
    checkpoint = load(path)
    loaded, meta = checkpoint.model, checkpoint.meta
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(loaded.gate, model.gate)
    assert meta["method"] == "lsg" and len(meta["content_hash"]) == 16
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Exploit.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "meta_json": "{}", "state_dict": {}, "x": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load(path)
    assert not Exploit.marker.exists()
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load(plain)
    assert not Exploit.marker.exists()


def test_bad_files(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, create_model("resnet20", 10, 1), META)
    data = good.read_bytes()
    cases = {
        "truncated.pt": lambda p: p.write_bytes(data[: len(data) // 2]),
        "empty.pt": lambda p: p.write_bytes(b""),
        "text.pt": lambda p: p.write_text("hello"),
        "list.pt": lambda p: torch.save([1, 2, 3], p),
        "folder.pt": lambda p: p.mkdir(),
        "broken.pt": lambda p: p.symlink_to(tmp_path / "missing"),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert "\n" not in str(info.value) and name in str(info.value)
    load(good)  # the good one still loads


def test_wrong_arch_or_class_count(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, create_model("resnet20", 10, 1), {**META, "arch": "resnet20w"})
    with pytest.raises(CheckpointError, match="do not fit"):
        load(path)
    save_checkpoint(path, create_model("resnet20", 10, 1), {**META, "class_names": list("abc")})
    with pytest.raises(CheckpointError, match="3 classes"):
        load(path)
    save_checkpoint(path, create_model("resnet20", 10, 1), {**META, "arch": "mystery"})
    with pytest.raises(CheckpointError, match="unknown arch"):
        load(path)


def test_discover_lists_extra_folders_but_not_temporaries(tmp_path):
    save_checkpoint(tmp_path / "x.pt", create_model("resnet20", 10, 1), META)
    (tmp_path / ".x.pt.123.tmp").write_bytes(b"partial")
    found = discover([tmp_path], include_runs=False)
    assert tmp_path / "x.pt" in found
    assert all(not p.name.startswith(".") for p in found)


def test_the_bundle_is_the_checkpoints_folder_without_its_studies(tmp_path, monkeypatch):
    """A study's models (checkpoints/studies/NAME/) are listed by the app but not bundled: their
    results never ship (make_results.py), only the report's figures of them."""
    from core.catalog import bundle
    for path in (tmp_path / "a.pt", tmp_path / "full_pt" / "b.pt", tmp_path / "studies" / "seeds" / "c.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, create_model("resnet20", 10, 1), META)
    monkeypatch.setenv("UNITLENS_CHECKPOINTS", str(tmp_path))
    assert bundle() == [tmp_path / "a.pt", tmp_path / "full_pt" / "b.pt"]
    assert tmp_path / "studies" / "seeds" / "c.pt" in discover(include_runs=False)


def test_a_killed_writers_day_old_temporaries_are_cleared_and_nothing_else(tmp_path):
    """SIGKILL mid-write leaves `.NAME.<random>.tmp`; the next save of NAME removes those a day old,
    never a fresh one (a writer at work) nor any other file."""
    import os
    import time
    from core.checkpoints import save_checkpoint
    old, fresh = tmp_path / ".m.pt.abc123.tmp", tmp_path / ".m.pt.def456.tmp"
    others = [tmp_path / ".other.pt.abc.tmp", tmp_path / "m.pt.notes.tmp", tmp_path / "notes.txt"]
    for path in (old, fresh, *others):
        path.write_text("x")
    day_ago = time.time() - 2 * 24 * 3600
    for path in (old, *others):
        os.utime(path, (day_ago, day_ago))
    model = create_model("resnet20", 10, 1)
    save_checkpoint(tmp_path / "m.pt", model, {"arch": "resnet20", "dataset": "fashion-mnist", "method": "ce",
                                               "class_names": [str(i) for i in range(10)], "channels": 1,
                                               "input_size": 28, "mean": [0.5], "std": [0.5]})
    assert not old.exists() and fresh.exists() and all(p.exists() for p in others)


def test_the_repository_leaves_room_for_the_data_a_gpu_machine_needs():
    """What travels to a GPU machine (bench/gpu_session.sh) is capped at 64 MiB: the tracked files
    and Fashion-MNIST as xz (26,427,964 bytes, measured 2026-12-06). A bundle that grows past the
    rest would have every lease's first call refused; bundling more needs a decision (thinner
    trajectories, the data over two calls), not a surprise on the day a GPU is lent."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    tracked = sum((root / name).stat().st_size for name in listed.decode().split("\0")
                  if name and (root / name).is_file())
    assert tracked <= 64 * 2**20 - 26_427_964, f"{tracked / 1e6:.1f} MB tracked"
