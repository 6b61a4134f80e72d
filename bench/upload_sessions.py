"""Server memory over upload sessions in a real browser (issue 32: "server memory grows ~45 MB per
upload session and is not returned"). One `streamlit run app.py` on the bundled ce, minimax and lsg;
each session is a fresh Chromium context that opens Compare, uploads a different product photo,
waits for every model's maps, and closes. The server's resident memory (its process and children)
is read after each session and once more a minute after the last. Run twice side by side: glibc's
default allocator, and MALLOC_ARENA_MAX=2 (each thread that allocates may otherwise get an arena
of its own that is never handed back).

    .venv/bin/python bench/upload_sessions.py [--sessions 10]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import machine, record  # noqa: E402
from tests import ui_env  # noqa: E402
from tests.browser_tools import free_port, launch, start_server, stop_server  # noqa: E402
from tests.test_browser import click_until, wait_until_idle  # noqa: E402
from tests.test_inputs import product_photo  # noqa: E402


def resident_mb(pid: int) -> float:
    """VmRSS of the process and its descendants, in MB."""
    pids = [str(pid)] + subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for each in dict.fromkeys(pids):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def one_server(work: Path, sessions: int, extra: dict) -> list[float]:
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in ("ce", "minimax", "lsg"):
        shutil.copy(ROOT / "checkpoints" / f"{name}.pt", models / f"{name}.pt")
    photos = [work / f"photo-{i}.png" for i in range(sessions)]
    for i, path in enumerate(photos):
        product_photo(i).save(path)
    port = free_port()
    server = start_server({**ui_env.app_environment(models, work, extra)}, port)
    url = f"http://127.0.0.1:{port}"
    readings = []
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = launch(p)
            warm = browser.new_page()
            warm.goto(url)
            warm.get_by_text("Unit Lens", exact=True).first.wait_for(timeout=180_000)
            wait_until_idle(warm)
            warm.close()
            readings.append(resident_mb(server.pid))  # before any upload
            for photo in photos:
                context = browser.new_context()
                tab = context.new_page()
                tab.goto(url)
                tab.get_by_role("link", name="Compare on an image", exact=True).first.click()
                click_until(tab, tab.get_by_text("Upload", exact=True),
                            tab.get_by_text("Upload an image, or switch to the test set."))
                tab.locator('input[type="file"]').set_input_files(str(photo))
                tab.wait_for_function("document.body.innerText.split('penultimate maps').length - 1 >= 3",
                                      timeout=180_000)
                wait_until_idle(tab)
                context.close()
                time.sleep(2)
                readings.append(resident_mb(server.pid))
            browser.close()
        time.sleep(60)
        readings.append(resident_mb(server.pid))
    finally:
        stop_server(server)
    return readings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    rows = {}
    for name, extra in (("glibc default", {}), ("MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"})):
        work = Path(tempfile.mkdtemp(prefix="upload-sessions-"))
        try:
            rows[name] = one_server(work, args.sessions, extra)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    lines = [f"{machine()}. Server resident memory (MB, process and children) before the first upload, after "
             f"each of {args.sessions} upload sessions (a fresh Chromium context each: open Compare, upload a "
             "product photo, wait for 3 models' maps, close), and 60 s after the last.", "",
             "| allocator | before | " + " | ".join(str(i + 1) for i in range(args.sessions)) + " | +60 s | per session |",
             "|---|" + "---|" * (args.sessions + 3)]
    for name, values in rows.items():
        per = (values[-2] - values[1]) / max(1, args.sessions - 1)
        lines.append(f"| {name} | " + " | ".join(f"{v:.0f}" for v in values) + f" | {per:+.1f} |")
    record("Server memory over upload sessions, real browser (issue 32)", lines)


if __name__ == "__main__":
    main()
