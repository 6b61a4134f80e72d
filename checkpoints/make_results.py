"""Ship the analysis results of the bundled checkpoints (core/shipped.py), so the app opens
complete: runs the default report (with the out-of-distribution reference and the trajectory),
class masking by influential features, the retrained decomposed head, selectivity by layer and the
faithfulness of the explanations for each (and adversarial detection for ce and lsg)
checkpoint under checkpoints/ (full splits, as the app computes them), then writes checkpoints/results/<content hash>.json.gz and, when run on
all of them, removes the files of checkpoints no longer there. Last, it rebuilds
checkpoints/results/index.json (metadata and headline figures) from what is shipped.

A shipped result whose analysis version is still current was computed by this script from the
same checkpoint (the file is named by its content hash), so it is kept and only the stale or
missing ones are computed; --fresh computes every one again.

    .venv/bin/python checkpoints/make_results.py [--fresh] [NAME ...]   (NAME: ce, full_pt/minimax-full-pt0.6, ...)
    .venv/bin/python checkpoints/make_results.py --index-only   (only the index, from the shipped results)
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core import shipped  # noqa: E402
from core.analysis.base import ANALYSES, TRANSIENT  # noqa: E402
from core.analysis.engine import REPORT, Analyzer  # noqa: E402
from core.catalog import bundle  # noqa: E402
from core.store import MemoryStore, Store  # noqa: E402

BUNDLE = ROOT / "checkpoints"
SHIPPED_ON_REQUEST = ("faithfulness", "decomposed_retrain", "layer_selectivity",  # on request in the app,
                      "influential_maps")  # shipped for the bundle
# the LSG paper's Table 4 compares STD (our ce) with LSG: shipped for those two (minutes of PGD each)
SHIPPED_FOR = {"adversarial_detection": ("ce", "lsg")}


def main(names: list[str], fresh: bool = False) -> None:
    # every checkpoint the app lists from here, sub-folders too (full_pt/); NAME may be full_pt/minimax-full-pt0.6
    paths = [BUNDLE / f"{n}.pt" for n in names] or bundle()
    kept = set()
    with tempfile.TemporaryDirectory() as work:
        store = Store(Path(work) / "results.duckdb")  # fresh: holds only what this run computed
        for path in paths:
            analyzer = Analyzer.from_path(path, store, feature_dir=None, use_cache=not fresh)
            analyzer.report((*REPORT, *SHIPPED_ON_REQUEST))  # reads the current shipped results, computes the rest
            if not analyzer.skipped_reason("class_masking"):  # the Gates page's other choice, and the report's
                analyzer.run("class_masking", by="influential")
            for name, stems in SHIPPED_FOR.items():
                if path.stem in stems and not analyzer.skipped_reason(name):
                    analyzer.run(name)
            rows = merged([] if fresh else shipped.rows(analyzer.hash), store.rows_for(analyzer.hash))
            out = shipped.write(analyzer.hash, path.stem, rows)
            kept.add(out.name)
            print(f"{path.name}: {len(rows)} results ({len(analyzer.computed)} computed now) -> "
                  f"{out.relative_to(ROOT)} ({out.stat().st_size // 1024} KB)")
    if not names:
        for stale in shipped.FOLDER.glob("*.json.gz"):
            if stale.name not in kept:
                stale.unlink()
    write_index()


def merged(old: list[tuple], new: list[tuple]) -> list[tuple]:
    """The shipped rows of analyses still at their current version, replaced where computed again;
    never a machine-dependent one (TRANSIENT: how far a time budget reached here)."""
    rows = {(a, p, s): (a, p, s, v, payload) for a, p, s, v, payload in old
            if a in ANALYSES and v == ANALYSES[a].version}
    rows.update({(a, p, s): (a, p, s, v, payload) for a, p, s, v, payload in new})
    return [row for row in rows.values() if not row[4].get(TRANSIENT)]


def index_entry(analyzer: Analyzer) -> dict:
    """The checkpoint's metadata (without where it lies) and its headline, read back from what is
    shipped exactly as the app reads it."""
    meta = {k: v for k, v in analyzer.meta.items() if k not in ("path", "content_hash")}
    return {"name": analyzer.name, "meta": meta, "headline": analyzer.headline_figures()[0]}


def write_index() -> None:
    entries = {}
    for path in bundle():
        analyzer = Analyzer.from_path(path, MemoryStore(), feature_dir=None)
        if shipped.path_for(analyzer.hash).is_file():
            entries[analyzer.hash] = index_entry(analyzer)
    print(f"{len(entries)} checkpoints -> {shipped.write_index(entries).relative_to(ROOT)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--index-only"]:
        write_index()
    else:
        main([a for a in args if a != "--fresh"], fresh="--fresh" in args)
