"""Every page's first visit on a 1000-class model whose results are cached (issue 29: "within the
same 5 s as today"), in the real browser. A seeded 1000 x 2 image folder and a random ResNet-18
(512 units) imported for it at 32 px, or as asked (ImageNet's own shape: a ResNet-50 of 2048
units at 224 px on JPEGs of 500x375); `python -m core.analyze` fills the cache first (timed);
then a fresh server on that cache, each page opened by its URL in a new tab.

    .venv/bin/python bench/scale_first_visit.py [--arch resnet50 --size 224 --image 500x375] [--work DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import record  # noqa: E402
from bench.first_visit import PAGES, visit  # noqa: E402
from bench.imagenet_scale import make_folder  # noqa: E402
from tests.browser_tools import free_port, launch, start_server, stop_server  # noqa: E402


def main():
    import torch
    import torchvision
    from playwright.sync_api import sync_playwright

    from core.checkpoints import load
    from core.import_weights import import_weights
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=32, help="the model's input size")
    parser.add_argument("--image", default="40x30", help="the JPEGs' width x height")
    parser.add_argument("--work", type=Path, default=None,
                        help="build the folder, model and cache here and keep them; a second run with the same "
                             "--arch reuses them (its --size and --image are those of the first)")
    args = parser.parse_args()
    name = args.arch
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        env = {"UNITLENS_CHECKPOINTS": str(work / "models"), "UNITLENS_MODEL_DIRS": "",
               "UNITLENS_CACHE": str(work / "cache" / "unitlens.duckdb"), "UNITLENS_RUNS": str(work / "runs"),
               "UNITLENS_PHI_SECONDS": "10"}
        started = time.perf_counter()
        if not (work / "models" / f"{name}.pt").exists():
            folder = make_folder(work / "images", 1000, 2, size=tuple(int(v) for v in args.image.split("x")))
            torch.manual_seed(0)
            torch.save(getattr(torchvision.models, args.arch)(num_classes=1000).state_dict(), work / f"{name}.pth")
            (work / "models").mkdir(parents=True, exist_ok=True)
            import_weights(work / f"{name}.pth", args.arch, work / "models" / f"{name}.pt",
                           dataset=f"imagefolder:{folder}", input_size=args.size)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "core.analyze", str(work / "models" / f"{name}.pt"), "--json",
                            "--cache", env["UNITLENS_CACHE"]], cwd=ROOT, check=True, capture_output=True,
                           env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
        analysed = time.perf_counter() - started
        units = load(work / "models" / f"{name}.pt").meta["num_features"]
        lines = [f"`python bench/scale_first_visit.py`: the default report filled the cache in {analysed:.0f} s "
                 f"(Phi's budget 10 s; 0 s: reused from --work); load average at the first visit {os.getloadavg()[0]:.1f}", "",
                 "| page | first visit: shown | all done |", "|---|---|---|"]
        port = free_port()
        server_started = time.perf_counter()
        proc = start_server(env, port)
        lines[0] += f"; server start {time.perf_counter() - server_started:.1f} s"
        try:
            with sync_playwright() as p:
                browser = launch(p)
                for path, heading in PAGES:
                    path = path.replace("model=ce", f"model={name}")
                    shown, idle = visit(browser, port, path, heading)
                    lines.append(f"| `{path or '/'}` | {shown:.1f} s | {idle:.1f} s |")
                browser.close()
        finally:
            stop_server(proc)
    record(f"First visit to every page, a 1000-class {args.arch} ({units} units, {args.size} px, JPEGs of "
           f"{args.image}) with its results cached (issue 29)", lines)


if __name__ == "__main__":
    main()
