"""Latency in the real browser (Debian Chromium via Playwright) on the bundled checkpoints:
cold first page load, and upload-to-every-column-rendered on the Compare page (warm, 3 models).

    python bench/ui_latency.py [--uploads 6] [--screenshot docs/compare.png]

Uses a throwaway cache folder whose analyses are pre-computed first (what a second visit sees).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import record  # noqa: E402
from tests.browser_tools import free_port, launch, start_server, stop_server  # noqa: E402

RENDERED = ("() => document.body.innerText.split('LayerCAM:').length - 1 >= 3 && "
            "!document.querySelector('[data-testid=\"stStatusWidget\"]')")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=6)
    parser.add_argument("--screenshot", type=Path, help="save the Compare page, charts drawn, after the last upload")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from core.analysis.engine import Analyzer
    from core.checkpoints import load
    from core.data import dataset_image
    from core.images import load_image
    from core.predict import predict
    from core.store import Store
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache" / "unitlens.duckdb"
        for name in ("ce", "minimax", "lsg"):  # the Compare page's gate rows come from the cache
            Analyzer.from_path(ROOT / "checkpoints" / f"{name}.pt", Store(cache)).run("gate")
        images = []
        for index in range(2):
            image, _ = dataset_image("fashion-mnist", index)
            images.append(tmp / f"test{index}.png")
            image.save(images[-1])
        loaded = [load(ROOT / "checkpoints" / f"{name}.pt") for name in ("ce", "minimax", "lsg")]
        captions = []  # what each model column says once it shows image i: "<method> · predicted <class>"
        for path in images:
            predictions = predict(loaded, load_image(path), top=1)
            captions.append([f"{meta['method']} · predicted {p['top'][0]['class']}"
                             for (_, meta), p in zip(loaded, predictions)])
        assert captions[0] != captions[1], "pick two test images the models tell apart"
        env = {"UNITLENS_CACHE": str(cache), "UNITLENS_RUNS": str(tmp / "runs")}
        port = free_port()
        started = time.perf_counter()
        proc = start_server(env, port)
        try:
            with sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page(viewport={"width": 1500, "height": 2400})
                page.set_default_timeout(120_000)
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_text("Checkpoint details").wait_for()
                cold = time.perf_counter() - started
                page.get_by_role("link", name="Compare on an image").click()
                page.get_by_text("Upload", exact=True).click()
                page.locator('input[type="file"]').set_input_files(str(images[0]))
                page.wait_for_function(RENDERED)
                timings = []
                for i in range(args.uploads):
                    target = (i + 1) % 2
                    t0 = time.perf_counter()
                    page.locator('input[type="file"]').set_input_files(str(images[target]))
                    page.wait_for_function(
                        "(wanted) => { const t = document.body.innerText; return wanted.every(w => t.includes(w)); }",
                        arg=captions[target])
                    page.wait_for_function(RENDERED)
                    timings.append(time.perf_counter() - t0)
                if args.screenshot:  # the README picture: wait for the three probability charts too
                    page.wait_for_function("() => document.querySelectorAll('.vega-embed canvas, .vega-embed svg')"
                                           ".length >= 3")
                    page.wait_for_timeout(1000)
                    page.screenshot(path=str(args.screenshot))
                browser.close()
        finally:
            stop_server(proc)
    record("UI latency in headless Chromium (3 bundled models)", [
        f"`python bench/ui_latency.py --uploads {args.uploads}`",
        "",
        f"- cold start: server start to the Overview page shown: **{cold:.1f} s** (target 10 s)",
        f"- upload to every column rendered (warm): median **{statistics.median(timings):.2f} s**, "
        f"min {min(timings):.2f}, max {max(timings):.2f} over {len(timings)} uploads (target 1.5 s)",
    ])


if __name__ == "__main__":
    main()
