"""The full uncached analysis against one bare forward pass (the floor) and the naive way
(re-running the network for every unit ablation), side by side in one run; and a cached reload.

    python bench/analysis_speed.py [--checkpoint checkpoints/ce.pt] [--naive-units 4] [--device cuda]

The naive ablation is timed on --naive-units units and scaled to all K (stated in the output).
"""
import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import record  # noqa: E402
from core.analysis.engine import REPORT, Analyzer  # noqa: E402
from core.analysis.features import analysis_device, extract, on_device  # noqa: E402
from core.checkpoints import load  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.store import MemoryStore, Store  # noqa: E402


@torch.inference_mode()
def naive_unit_ablation(model, images, labels, units, batch_size=250):
    """Zero unit k inside the network with a hook and run the whole split again, per unit."""
    accuracies = []
    for unit in units:
        zeroed = torch.tensor([unit], device=images.device)
        hook = model.target_layer.register_forward_hook(lambda m, i, out, u=zeroed: out.index_fill(1, u, 0.0))
        correct = 0
        for start in range(0, len(labels), batch_size):
            x = images[start:start + batch_size].contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1) == labels[start:start + batch_size]).sum())
        hook.remove()
        accuracies.append(correct / len(labels))
    return accuracies


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="checkpoints/ce.pt")
    parser.add_argument("--naive-units", type=int, default=4)
    parser.add_argument("--device", default=str(analysis_device()), choices=["cpu", "cuda"])
    parser.add_argument("--store", choices=["duckdb", "memory"], default=None,
                        help="where results are cached (default: DuckDB when it is installed, else memory)")
    args = parser.parse_args()
    if args.store is None:
        args.store = "duckdb" if importlib.util.find_spec("duckdb") else "memory"
    device = torch.device(args.device)
    checkpoint = load(args.checkpoint)
    model, meta = checkpoint.model, checkpoint.meta
    model = on_device(model, device)
    test = load_dataset(meta["dataset"], "test")
    images, labels = test.images.to(device), test.labels.to(device)
    extract(model, images[:500], labels[:500])  # warm-up

    started = time.perf_counter()
    extract(model, images, labels)
    bare = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb") if args.store == "duckdb" else MemoryStore()
        started = time.perf_counter()
        # use_cache=False: computed, not read from the results shipped with the bundled checkpoints
        analyzer = Analyzer.from_path(args.checkpoint, store, feature_dir=None, device=device, use_cache=False)
        loaded = time.perf_counter() - started
        each = {}
        for name in REPORT:  # the report's own order; each one's time beside (dependencies come first)
            begun = time.perf_counter()
            analyzer.report((name,))
            each[name] = time.perf_counter() - begun
        full = time.perf_counter() - started
        train_limit = analyzer.train_limit

        started = time.perf_counter()
        Analyzer.from_path(args.checkpoint, store, feature_dir=None, device=device).report(REPORT)
        cached = time.perf_counter() - started

    units = list(range(args.naive_units))
    started = time.perf_counter()
    naive_unit_ablation(model, images, labels, units, 2500 if device.type == "cuda" else 250)  # extract's batches
    naive_per_unit = (time.perf_counter() - started) / len(units)
    k = model.num_features
    record(f"Analysis speed ({meta['arch']}, {meta['dataset']} test split, {len(test)} images, {device.type})", [
        f"`python bench/analysis_speed.py --checkpoint {args.checkpoint} --naive-units {args.naive_units} "
        f"--device {device.type} --store {args.store}`",
        "",
        "| what | seconds | ratio to the bare forward pass |",
        "|---|---|---|",
        f"| bare forward pass over the test split (floor) | {bare:.1f} | 1.00 |",
        f"| full uncached analysis ({len(REPORT)} analyses, incl. the forward pass over {train_limit or 'all'} "
        f"training images) | {full:.1f} | {full / bare:.2f} |",
        f"| cached reload of the same report ({'DuckDB' if args.store == 'duckdb' else 'memory'}) | {cached:.3f} | "
        f"{cached / bare:.3f} |",
        f"| of which: loading the checkpoint | {loaded:.2f} | |",
        *(f"| of which: {name} | {seconds:.2f} | |" for name, seconds in sorted(each.items(), key=lambda kv: -kv[1])),
        f"| naive unit ablation, all {k} units (measured on {len(units)}, x{k / len(units):.0f}) | "
        f"{naive_per_unit * k:.0f} | {naive_per_unit * k / bare:.1f} |",
    ])


if __name__ == "__main__":
    main()
