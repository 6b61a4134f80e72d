"""Hostile input and faults: odd images, damaged caches, failing disks, hostile checkpoints."""
import io
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoints import load, save_checkpoint
from core.data import dataset_info
from core.images import ImageError, load_image
from core.inputs import prepare
from core.models import create_model
from core.store import Store

from .conftest import ROOT, assert_one_line_error, run_cli

INFO = dataset_info("fashion-mnist")
WHITE = (1 - 0.2860) / 0.3530
BLACK = -0.2860 / 0.3530


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims enormous dimensions (a decompression bomb)."""
    raw = encode(Image.new("L", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return raw[:8] + patched + raw[8 + 25:]


@pytest.mark.parametrize("name,data", [
    ("empty", b""),
    ("random", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))),
    ("text", b"this is a text file with a .png name\n" * 20),
    ("truncated png", encode(Image.new("RGB", (64, 64), (9, 9, 9)))[:80]),
    ("truncated jpeg", encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
                              "JPEG")[:300]),
    ("bomb", png_claiming(100_000, 100_000)),
])
def test_bad_files_give_one_line_reasons(name, data):
    with pytest.raises(ImageError) as info:
        prepare(load_image(data), INFO).x
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 200


def test_sixteen_bit_is_rescaled_not_clipped():
    array = np.full((10, 10), 65535, dtype=np.uint16)
    x = prepare(load_image(encode(Image.fromarray(array))), INFO, invert=False).x
    torch.testing.assert_close(x, torch.full_like(x, WHITE))
    half = prepare(load_image(encode(Image.fromarray(np.full((10, 10), 32768, dtype=np.uint16)))), INFO, invert=False).x
    assert half.mean().item() == pytest.approx((128 / 255 - 0.2860) / 0.3530, abs=0.02)


@pytest.mark.parametrize("mode,colour", [("CMYK", (0, 0, 0, 0)), ("P", None), ("RGBA", (255, 255, 255, 255)),
                                         ("LA", (255, 255)), ("1", 1), ("I", 255), ("F", 255.0)])
def test_every_mode_becomes_the_model_input(mode, colour):
    image = Image.new(mode, (40, 30), colour) if colour is not None else \
        Image.new("RGB", (40, 30), (255, 255, 255)).convert("P")
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("F", "I") else "PNG"
    x = prepare(load_image(encode(image, fmt)), INFO, invert=False).x
    assert x.shape == (1, 1, 28, 28) and torch.isfinite(x).all()
    assert x.mean().item() == pytest.approx(WHITE, abs=0.05)  # white in every encoding


def test_one_size_limit_for_uploads_and_files(tmp_path):
    """The app's upload limit (Streamlit's maxUploadSize, in MB) is core's: a file the browser takes
    is never refused by core, and core.predict refuses what the app would."""
    import tomllib

    from core.catalog import PROJECT_ROOT
    from core.images import MAX_IMAGE_BYTES
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_IMAGE_BYTES
    big = tmp_path / "big.png"
    big.write_bytes(encode(Image.new("L", (8, 8))) + bytes(MAX_IMAGE_BYTES))
    with pytest.raises(ImageError, match="larger than 20 MB"):
        load_image(big)


def test_transparent_pixels_become_black_background():
    x = prepare(load_image(encode(Image.new("RGBA", (20, 20), (255, 255, 255, 0)))), INFO).x
    torch.testing.assert_close(x, torch.full_like(x, BLACK))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_use_the_first_frame(fmt):
    frames = [Image.new("RGB", (32, 32), (255, 255, 255)), Image.new("RGB", (32, 32), (0, 0, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    x = prepare(load_image(data), INFO, invert=False).x
    assert x.mean().item() == pytest.approx(WHITE, abs=0.05)


@pytest.mark.parametrize("size", [(1, 1), (10_000, 1), (1, 5000), (3000, 2000)])
def test_extreme_sizes(size):
    x = prepare(load_image(encode(Image.new("L", size, 255))), INFO, invert=False).x
    assert x.shape == (1, 1, 28, 28)
    torch.testing.assert_close(x, torch.full_like(x, WHITE))


def test_rgb_model_gets_three_channels_from_grey():
    info = dataset_info("cifar10")
    x = prepare(load_image(encode(Image.new("L", (50, 50), 128))), info).x
    assert x.shape == (1, 3, 32, 32)


FULL_DISK_SAVE = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, {root!r})
    from core.checkpoints import load, save_checkpoint
    from core.models import create_model
    path = {path!r}
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # the file cannot grow past this
    try:
        save_checkpoint(path, create_model("resnet20", 10, 1), {{**load(path).meta, "epoch": 2}})
    except OSError as exc:
        print("refused:", exc)
""")


def test_full_disk_keeps_the_previous_checkpoint(tmp_path):
    """A real write cut short (a file-size limit, which Python meets as a full disk: a short write,
    then an error). PyTorch's writer called it a RuntimeError, an internal error in core.train."""
    path = tmp_path / "m.pt"
    model = create_model("resnet20", 10, 1)
    meta = {"method": "ce", "arch": "resnet20", "dataset": "fashion-mnist", "class_names": list("abcdefghij"),
            "channels": 1, "input_size": 28, "mean": [0.286], "std": [0.353], "epoch": 1}
    save_checkpoint(path, model, meta)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", FULL_DISK_SAVE.format(root=str(ROOT), path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused: [Errno 28] the disk took only part of the file" in done.stdout
    assert path.read_bytes() == before and load(path).meta["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_truncated_cache_is_rebuilt(tmp_path):
    path = tmp_path / "t.duckdb"
    store = Store(path)
    for i in range(50):
        store.put_result("h", "a", {"i": i}, "test", 1, {"v": "x" * 1000})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    fresh = Store(path)
    assert fresh.get_result("h", "a", {"i": 1}, "test", 1) in (None, {"v": "x" * 1000})
    fresh.put_result("h", "a", {"i": 999}, "test", 1, {"v": 1})
    assert fresh.get_result("h", "a", {"i": 999}, "test", 1) == {"v": 1}


def test_predict_cli_on_hostile_files(tiny_checkpoints, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60_000, 60_000))
    assert "too large" in assert_one_line_error(run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(bomb)))
    missing = run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(tmp_path / "nope.png"))
    assert "nope.png: no such file" in assert_one_line_error(missing)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x04cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    image = tmp_path / "ok.png"
    Image.new("L", (28, 28)).save(image)
    result = run_cli("core.predict", "--checkpoint", str(evil), str(image))
    assert "evil.pt" in assert_one_line_error(result)
    assert not (tmp_path / "pwned").exists()
