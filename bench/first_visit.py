"""First visit to every page on the bundled checkpoints, from a cold start, in the real browser
(Debian Chromium via Playwright): a fresh server and an empty cache, so what is shown comes from
the results shipped with the checkpoints (checkpoints/results/) or is computed then.

    python bench/first_visit.py

Each page is opened by its URL in a new browser tab; the time runs from the request until the
last heading of the page's own content is shown and Streamlit's running indicator has gone.
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


def main():
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as tmp:
        env = {"UNITLENS_CACHE": str(Path(tmp) / "cache" / "unitlens.duckdb"), "UNITLENS_RUNS": str(Path(tmp) / "runs")}
        port = free_port()
        started = time.perf_counter()
        proc = start_server(env, port)
        server_up = time.perf_counter() - started
        lines = [f"`python bench/first_visit.py` (load average at start {os.getloadavg()[0]:.1f}); "
                 f"server start {server_up:.1f} s", "", "| page | first visit |", "|---|---|"]
        try:
            with sync_playwright() as p:
                browser = launch(p)
                for path, heading in PAGES:
                    page = browser.new_page(viewport={"width": 1500, "height": 2400})
                    page.set_default_timeout(300_000)
                    t0 = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}{path}")
                    page.get_by_text(heading, exact=True).first.wait_for()
                    page.wait_for_function(IDLE)
                    lines.append(f"| `{path or '/'}` | {time.perf_counter() - t0:.1f} s |")
                    page.close()
                browser.close()
        finally:
            stop_server(proc)
    record("First visit to every page, bundled models, cold start", lines)


if __name__ == "__main__":
    main()
