"""First visit to every page on the bundled checkpoints, from a cold start, in the real browser
(Debian Chromium via Playwright): a fresh server and an empty cache, so what is shown comes from
the results shipped with the checkpoints (checkpoints/results/) or is computed then.

    python bench/first_visit.py

Each page is opened by its URL in a new browser tab; the time runs from the request until the
last heading of the page's own content is shown ("shown"), and until Streamlit's running
indicator has gone ("all done"). Then a deep link to Compare as the very first request of another
fresh server.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import record  # noqa: E402
from tests.browser_tools import free_port, launch, start_server, stop_server  # noqa: E402

# what each page shows last (never the navigation's own link text: "Compare on an image" is also a
# link at the top, which made earlier runs stop the clock before the page had rendered)
PAGES = [("", "Compared models"), ("/compare", "Faithfulness of the maps over 100 test images"),
         ("/selectivity", "PCA of the features"), ("/gates", "Class masking"), ("/ablations", "Single-unit ablation"),
         ("/unit?model=ce&unit=5", "Independent activation maximisation")]
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def visit(browser, port: int, path: str, heading: str) -> tuple[float, float]:
    """Seconds from the request until the page's last heading is shown, and until nothing runs
    any more (on a fresh server the Overview is shown from the shipped results, then redrawn)."""
    page = browser.new_page(viewport={"width": 1500, "height": 2400})
    page.set_default_timeout(300_000)
    t0 = time.perf_counter()
    page.goto(f"http://127.0.0.1:{port}{path}")
    page.get_by_text(heading, exact=True).first.wait_for()
    shown = time.perf_counter() - t0
    page.wait_for_function(IDLE)
    idle = time.perf_counter() - t0
    page.close()
    return shown, idle


def fresh_server(tmp: str, name: str):
    """A new server on an empty cache; returns (process, port, seconds until it answered)."""
    env = {"UNITLENS_CACHE": str(Path(tmp) / name / "unitlens.duckdb"), "UNITLENS_RUNS": str(Path(tmp) / name / "runs")}
    port = free_port()
    started = time.perf_counter()
    proc = start_server(env, port)
    return proc, port, time.perf_counter() - started


def main():
    from playwright.sync_api import sync_playwright
    lines = [f"`python bench/first_visit.py` (load average at start {os.getloadavg()[0]:.1f})", "",
             "| page | first visit: shown | all done |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = launch(p)
        proc, port, server_up = fresh_server(tmp, "pages")
        try:  # every page in turn on one server: the root first, as a newcomer opens it
            for path, heading in PAGES:
                shown, idle = visit(browser, port, path, heading)
                lines.append(f"| `{path or '/'}` | {shown:.1f} s | {idle:.1f} s |")
        finally:
            stop_server(proc)
        lines[0] += f"; server start {server_up:.1f} s"
        proc, port, server_up = fresh_server(tmp, "deep")
        try:  # a deep link as the very first request of a fresh server
            path, heading = PAGES[1]
            shown, idle = visit(browser, port, path, heading)
            lines.append(f"| `{path}` as the first request of a fresh server (up in {server_up:.1f} s) | "
                         f"{shown:.1f} s | {idle:.1f} s |")
        finally:
            stop_server(proc)
        browser.close()
    record("First visit to every page, bundled models, cold start", lines)


if __name__ == "__main__":
    main()
