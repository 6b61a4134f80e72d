"""Run analyses for one checkpoint: one forward pass per split, then cached algebra.

`Analyzer(path).run("selectivity")` returns the result from the store when the checkpoint's
content hash, the analysis, its parameters, the split and the analysis version match; else it
computes (extracting features at most once per split) and stores it.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..checkpoints import load_checkpoint, model_label
from ..data import load_dataset
from ..store import Store
from .base import ANALYSES, FeatureCache
from .features import extract

DEFAULT_TRAIN_LIMIT = 5_000  # training images (about 500 a class) for the gate fit and influential sets
REPORT = ("accuracy", "nontarget_entropy", "selectivity", "gate", "influential", "noise_ablation",
          "unit_ablation", "class_masking", "gate_similarity", "filter_correlation", "pca", "top_images")


class Context:
    """What an analysis sees: the model, its head, and lazily extracted feature caches."""

    def __init__(self, analyzer: "Analyzer"):
        self._analyzer = analyzer
        self.model, self.meta = analyzer.model, analyzer.meta
        self.W = self.model.fc.weight.detach().float()
        self.b = self.model.fc.bias.detach().float()
        self.num_classes = self.W.shape[0]

    @property
    def test(self) -> FeatureCache:
        return self._analyzer.features(self._analyzer.split, self._analyzer.limit)

    @property
    def train(self) -> FeatureCache:
        return self._analyzer.features("train", self._analyzer.train_limit)

    def result(self, name: str) -> dict:
        return self._analyzer.run(name)


class Analyzer:
    def __init__(self, checkpoint: Path | str, store: Store | None = None, split: str = "test",
                 limit: int | None = None, train_limit: int | None = DEFAULT_TRAIN_LIMIT,
                 data_root=None, use_cache: bool = True, progress=None, feature_dir: Path | None | str = "beside-store"):
        self.path = Path(checkpoint)
        self.model, self.meta = load_checkpoint(self.path)
        self.hash = self.meta["content_hash"]
        self.name = model_label(self.meta)
        self.store = store if store is not None else Store()
        self.split, self.limit, self.train_limit = split, limit, train_limit
        self.data_root, self.use_cache, self.progress = data_root, use_cache, progress
        # feature caches live beside the DuckDB file; None keeps them in memory only
        self.feature_dir = self.store.path.parent / "features" if feature_dir == "beside-store" else feature_dir
        self._features: dict[tuple, FeatureCache] = {}
        self._results: dict[tuple, dict] = {}
        self._prefetched: dict[tuple, dict] | None = None  # every stored result, read on first lookup
        self.computed: list[str] = []  # analyses computed (not cache hits) by this object

    # ------------------------------------------------------------------ features
    def features(self, split: str, limit: int | None) -> FeatureCache:
        key = (split, limit)
        if key in self._features:
            return self._features[key]
        path = self.feature_dir / f"{self.hash}-{split}-{limit or 'all'}.pt" if self.feature_dir else None
        cache = None
        if path is not None and self.use_cache and path.exists():
            try:
                cache = FeatureCache(**torch.load(path, weights_only=True))
            except Exception:  # a damaged cache file is recomputed
                cache = None
        if cache is None:
            dataset = load_dataset(self.meta["dataset"], split, self.data_root).subset(limit)
            report = (lambda done, total: self.progress(f"forward pass ({split})", done, total)) if self.progress else None
            cache = extract(self.model, dataset.images, dataset.labels, progress=report)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save({"features": cache.features, "logits": cache.logits, "labels": cache.labels}, tmp)
                tmp.replace(path)
        self._features[key] = cache
        return cache

    # ------------------------------------------------------------------ analyses
    def params_for(self, name: str, params: dict) -> dict:
        analysis = ANALYSES[name]
        unknown = set(params) - set(analysis.defaults)
        if unknown:
            raise ValueError(f"{name} has no parameter {sorted(unknown)[0]!r}")
        full = {**analysis.defaults, **params}
        full["_limit"], full["_train_limit"] = self.limit, self.train_limit
        return full

    def run(self, name: str, **params) -> dict:
        if name not in ANALYSES:
            raise ValueError(f"unknown analysis {name!r}; choose from {sorted(ANALYSES)}")
        analysis = ANALYSES[name]
        full = self.params_for(name, params)
        result = self._lookup(name, full)
        if result is None:
            if self.progress:
                self.progress(analysis.title, 0, 1)
            started = time.perf_counter()
            kwargs = {k: v for k, v in full.items() if not k.startswith("_")}
            result = analysis.compute(Context(self), **kwargs)
            seconds = time.perf_counter() - started
            self.store.put_result(self.hash, name, full, self.split, analysis.version, result, seconds)
            self.computed.append(name)
            if self.progress:
                self.progress(analysis.title, 1, 1)
            self._results[(name, self.store.params_key(full))] = result
        return result

    def cached(self, name: str, **params) -> dict | None:
        """The result from memory or the store, or None; never computes."""
        return self._lookup(name, self.params_for(name, params))

    def _lookup(self, name: str, full: dict) -> dict | None:
        """Memory first (the app asks on every rerun), then the prefetched rows, then the store."""
        memo = (name, self.store.params_key(full))
        if memo in self._results:
            return self._results[memo]
        if not self.use_cache:
            return None
        version = ANALYSES[name].version
        if self._prefetched is None:  # one query for all of the model's results instead of one each
            self._prefetched = self.store.results_for(self.hash, self.split)
            result = self._prefetched.get((*memo, version))  # just read: a miss needs no second query
        else:
            result = self._prefetched.get((*memo, version)) or \
                self.store.get_result(self.hash, name, full, self.split, version)
        if result is not None:
            self._results[memo] = result
        return result

    def report(self, names=REPORT, include_on_request: bool = False) -> dict:
        names = list(names) + (["iam"] if include_on_request and "iam" not in names else [])
        computed_before = len(self.computed)
        results = {name: self.run(name) for name in names}
        if len(self.computed) > computed_before or not self.use_cache:
            self.save_tables(results)
        return results

    # ------------------------------------------------------------------ SQL-friendly tables
    def save_tables(self, results: dict) -> None:
        sel, gate = results.get("selectivity"), results.get("gate")
        ablation, infl = results.get("unit_ablation"), results.get("influential")
        nte, acc = results.get("nontarget_entropy"), results.get("accuracy")
        filters = results.get("filter_correlation")
        self.store.put_model({
            "model_hash": self.hash, "name": self.name, "path": str(self.path), "method": self.meta["method"],
            "arch": self.meta["arch"], "dataset": self.meta["dataset"],
            "accuracy": acc and acc["accuracy"], "median_selectivity": sel and sel["median"],
            "dead_units": sel and sel["dead_count"], "nontarget_entropy": nte and nte["mean"],
            "nontarget_fraction": nte and nte["fraction"], "phi": gate and gate["phi"],
            "gate_density": gate and gate["density"], "r_a": infl and infl["r_A"],
            "c_ic": filters and filters["c_ic"]})
        if sel:
            rows = []
            for k, si in enumerate(sel["per_unit"]):
                rows.append({"unit": k, "selectivity": si, "dead": sel["dead"][k],
                             "preferred_class": sel["preferred_class"][k],
                             "assigned_class": gate["assigned_class"][k] if gate else None,
                             "max_drop": ablation["max_class_drop"][k] if ablation else None,
                             "max_drop_class": ablation["max_drop_class"][k] if ablation else None,
                             "overall_drop": ablation["overall_drop"][k] if ablation else None,
                             "l1_norm": ablation["l1_norm"][k] if ablation else None})
            self.store.put_units(self.hash, rows)


def summary(results: dict, meta: dict) -> dict:
    """The headline figures of a report, as `core.analyze --json` prints them."""
    sel, nte, gate = results["selectivity"], results["nontarget_entropy"], results["gate"]
    infl, noise, abl = results["influential"], results["noise_ablation"], results["unit_ablation"]
    out = {
        "checkpoint": meta["path"], "name": model_label(meta), "method": meta["method"], "arch": meta["arch"],
        "dataset": meta["dataset"], "accuracy": results["accuracy"]["accuracy"],
        "per_class_accuracy": results["accuracy"]["per_class"],
        "nontarget_entropy": {"mean": nte["mean"], "bound": nte["bound"], "fraction": nte["fraction"]},
        "selectivity": {"median": sel["median"], "mean": sel["mean"], "dead": sel["dead_count"],
                        "per_unit": sel["per_unit"]},
        "phi": gate["phi"], "gate_density": gate["density"], "gate_source": gate["source"],
        "single_class_fraction": gate["single_class_fraction"],
        "influential": infl["sets"], "r_A": infl["r_A"], "A_d": infl["A_d"], "A_f": infl["A_f"],
        "noise_ablation": {m: noise[m] for m in ("gaussian", "matched", "zero")},
        "unit_ablation_drop": abl["drop"], "unit_ablation_overall_drop": abl["overall_drop"],
        "spearman_drop_selectivity": abl["spearman_selectivity"], "spearman_drop_l1": abl["spearman_l1"],
        "c_ic": results["filter_correlation"]["c_ic"],
    }
    if "iam" in results:
        out["rs"] = results["iam"]["rs"]
    return out
