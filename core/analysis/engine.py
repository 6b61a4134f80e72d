"""Run analyses for one checkpoint: one forward pass per split, then cached algebra.

`Analyzer(loaded).run("selectivity")` returns the result from the store when the checkpoint's
content hash, the analysis, its parameters, the split and the analysis version match; else it
computes (extracting features at most once per split) and stores it. `Analyzer.from_path(path)`
reads the checkpoint first (the command line); the app passes the record it already loaded.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import torch

from ..checkpoints import LoadedCheckpoint, load, save_atomically
from ..data import balanced_sample, load_dataset, sample_image, split_labels, streams, view_of
from ..distributed import Distributed
from ..errors import UserError
from .. import shipped
from ..store import ResultStore, Store
from .base import ANALYSES, FeatureCache, json_safe
from .faithfulness import image_count, seconds_needed
from .features import analysis_device, extract_rows, kept, on_device
from ..headline import ANALYSES_NEEDED, headline
from ..progress import format_seconds

DEFAULT_TRAIN_LIMIT = None  # the whole training split for the gate fit and influential sets (as the papers)
REPORT = tuple(name for name, analysis in ANALYSES.items() if not analysis.on_request)


def sample_key(limit: int | None) -> str | None:
    """How a cache key names the images read: None for the whole split, else the sample's rule and
    size (a stored result of the first-N rule, which dropped classes, is never served for it)."""
    return f"balanced{limit}" if limit else None


class AnalysisError(UserError):
    """The model cannot be analysed at all (e.g. its dataset does not match it); one line."""


class AnalysisSkipped(UserError):
    """The analysis cannot run on this model (too few or too many classes); one line why."""


class StepClock:
    """Time left in the step under way (a forward pass, the faithfulness maps, IAM), from that
    step's own pace: steps differ by orders of magnitude, so no one rate would do. A step is named
    by its text before any colon ("faithfulness: Grad-CAM maps" and "faithfulness: deleting …"
    count on as one). None in a step's first seconds, when a guess would mean nothing."""
    SETTLE_S = 2.0

    def __init__(self, clock=time.perf_counter):
        self.clock, self.step, self.started, self.done_at_start, self.last_done = clock, None, 0.0, 0, 0

    def left(self, step: str, done: int, total: int) -> float | None:
        now, name = self.clock(), step.split(":")[0]
        restarted = done < self.last_done
        self.last_done = done
        if name != self.step or restarted:  # a new step, or the same one again
            self.step, self.started, self.done_at_start = name, now, done
            return None
        elapsed, progressed = now - self.started, done - self.done_at_start
        if elapsed < self.SETTLE_S or progressed <= 0:
            return None
        return elapsed / progressed * max(0, total - done)

    def text(self, step: str, done: int, total: int) -> str:
        """" · about 1m05s left" for a progress line, or "" while `left` has no guess."""
        left = self.left(step, done, total)
        return "" if left is None else f" · about {format_seconds(left)} left"


class Context:
    """What an analysis sees: the model, its head, and lazily extracted feature caches."""

    def __init__(self, analyzer: "Analyzer"):
        self._analyzer = analyzer
        self.model, self.meta = analyzer.model, analyzer.meta
        self.trajectory = analyzer.checkpoint.trajectory
        self.W = self.model.fc.weight.detach().float()
        self.b = self.model.fc.bias.detach().float()
        self.num_classes = self.W.shape[0]

    @property
    def test(self) -> FeatureCache:
        return self._analyzer.features(self._analyzer.split, self._analyzer.limit)

    @property
    def train(self) -> FeatureCache:
        return self._analyzer.features("train", self._analyzer.train_limit)

    @property
    def device(self) -> torch.device:
        """Where the heavy arithmetic runs: the GPU when there is one (analysis_device)."""
        return self._analyzer.device

    @property
    def device_model(self):
        """The model on the analysis device (a copy made once when that is a GPU)."""
        return self._analyzer.device_model()

    def result(self, name: str) -> dict:
        return self._analyzer.run(name)

    def progress(self, step: str, done: int, total: int) -> None:
        """Tell the caller (the app's bar, the terminal's) how far a long analysis is."""
        if self._analyzer.progress:
            self._analyzer.progress(step, done, total)

    def split_indices(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows of the analysed features as numbers of the whole split's images, by which the pages
        read the pictures (`core.data.dataset_image`): under a limit the analysed images are a
        class-balanced sample, not the split's first N, and an unreadable file of an image folder
        has no row but keeps its number, held or streamed."""
        a = self._analyzer
        positions = self.test.positions(rows)
        if not a.limit and view_of(a.meta) is None:
            return positions  # a fixed dataset's rows are its images: nothing to read
        whole = a.dataset(a.split)
        if a.limit and a.limit < len(whole):
            positions = balanced_sample(whole.labels, a.limit)[positions]
        return whole.listed(positions)

    @property
    def split(self) -> str:
        """The split `test` reads ("test", or "train" under core.analyze --split train)."""
        return self._analyzer.split

    def image_batches(self, batch_size: int):
        """(images, readable, labels) over the analysed split's images in order, held or streamed
        (for analyses that look inside the network, as `test`'s forward pass did)."""
        a = self._analyzer
        dataset = a.dataset(a.split).subset(a.limit)
        start = 0
        for images, readable in dataset.batches(batch_size):
            yield images, readable, dataset.labels[start:start + len(images)]
            start += len(images)

    def images(self, rows: torch.Tensor) -> torch.Tensor:
        """The analysed images behind `rows` of `test`'s features (for analyses that perturb them)."""
        a = self._analyzer
        return a.dataset(a.split).subset(a.limit).take(self.test.positions(rows))

    def training_images(self, rows: torch.Tensor) -> torch.Tensor:
        """The training images behind `rows` of `train`'s features (the sample under the training
        limit, readable images only)."""
        a = self._analyzer
        return a.dataset("train").subset(a.train_limit).take(self.train.positions(rows))


class Analyzer:
    def __init__(self, checkpoint: LoadedCheckpoint, store: ResultStore | None = None, split: str = "test",
                 limit: int | None = None, train_limit: int | None = DEFAULT_TRAIN_LIMIT,
                 data_root=None, use_cache: bool = True, progress=None, feature_dir: Path | None | str = "beside-store",
                 device: torch.device | str | None = None, distributed: Distributed | None = None):
        self.checkpoint = checkpoint
        self.device = torch.device(device) if device is not None else analysis_device()
        self.distributed = distributed or Distributed()  # under torchrun: the forward passes are shared
        self._device_model = None
        self.model, self.meta = checkpoint.model, checkpoint.meta
        self.path = Path(self.meta["path"])
        self.hash = self.meta["content_hash"]
        self.name = checkpoint.label
        self.store = store if store is not None else Store()
        self.split, self.limit, self.train_limit = split, limit, train_limit
        self.data_root, self.use_cache, self.progress = data_root, use_cache, progress
        # "beside-store": where the store keeps them (a MemoryStore: nowhere); None keeps them in memory only
        if feature_dir == "beside-store":
            feature_dir = self.store.feature_folder()
        self.feature_dir = feature_dir
        self._features: dict[tuple, FeatureCache] = {}
        self._results: dict[tuple, dict] = {}
        self._prefetched: dict[tuple, dict | str] | None = None  # every stored result, read on first lookup
        self._reading = threading.RLock()  # two pages asking at once read a stored result once
        self.computed: list[str] = []  # analyses computed (not cache hits) by this object
        self.skipped: dict[str, str] = {}  # analysis -> why it cannot run on this model

    def device_model(self):
        if self._device_model is None:
            self._device_model = on_device(self.model, self.device)
        return self._device_model

    def skipped_reason(self, name: str) -> str | None:
        """Why `name` cannot run on this model, or None."""
        return ANALYSES[name].unsuited(self.model)

    @classmethod
    def from_path(cls, path: Path | str, store: ResultStore | None = None, **options) -> "Analyzer":
        return cls(load(path), store, **options)

    # ------------------------------------------------------------------ features
    def features(self, split: str, limit: int | None) -> FeatureCache:
        key = (split, limit)
        if key in self._features:
            return self._features[key]
        # a streamed folder's rows name their files (an index); a held one's are its readable files: never mixed
        streamed = "-streamed" if streams(self.meta["dataset"], split, self.data_root, view_of(self.meta)) else ""
        path = (self.feature_dir / f"{self.hash}{streamed}-{split}-{sample_key(limit) or 'all'}.pt"
                if self.feature_dir else None)
        cache = None
        if path is not None and self.use_cache and path.exists() and self.distributed.is_main:
            try:
                # mapped, not read: the pages of a 50,000 x 2048 pass are read as analyses touch them
                cache = FeatureCache(**torch.load(path, weights_only=True, mmap=True))
                if cache.problem(self.model.num_features, len(self.meta["class_names"])):
                    cache = None
            except Exception:  # a damaged cache file is recomputed
                cache = None
        if self.distributed.rank0_says(cache is None):
            cache = self.forward_pass(split, limit)
            if path is not None and self.distributed.is_main:
                self.save_features(path, cache)
        self._features[key] = cache
        return cache

    def dataset(self, split: str):
        return load_dataset(self.meta["dataset"], split, self.data_root, view_of(self.meta))

    def forward_pass(self, split: str, limit: int | None) -> FeatureCache | None:
        """The features of a split (its class-balanced sample under a limit), held or streamed;
        under torchrun each process runs its block and rank 0 gathers them (None elsewhere)."""
        dataset = self.dataset(split).subset(limit)
        info = dataset.info
        if info.num_classes != self.model.num_classes or info.channels != self.model.in_channels:
            raise AnalysisError(f"{self.name}: the model has {self.model.num_classes} classes and "
                                f"{self.model.in_channels} channel(s), its dataset {info.name} "
                                f"{info.num_classes} and {info.channels}: nothing to analyse")
        report = (lambda done, total: self.progress(f"forward pass ({split})", done, total)) if self.progress else None
        shard = self.distributed.contiguous(len(dataset))
        rows = extract_rows(self.device_model(), dataset, shard if self.distributed.active else None, report)
        rows = self.distributed.gather_rows([*rows[:2], rows[2].to(torch.uint8)], len(dataset))
        if rows is None:
            return None
        cache = kept(dataset, rows[0], rows[1], rows[2].bool())
        if cache.index is not None:
            notice = (f"{self.name}: {len(dataset) - len(cache.index)} of the {split} split's {len(dataset)} images "
                      "could not be read and are left out")
            if notice not in self.store.notices:
                self.store.notices.append(notice)
        return cache

    def share_forward_passes(self) -> bool:
        """Under torchrun, before the report: every process runs its block of the analysed split
        and of the training split (each analysis's forward pass); True on rank 0, which goes on
        to analyse."""
        failed = None
        for split, limit in ((self.split, self.limit), ("train", self.train_limit)):
            try:
                self.features(split, limit)
            except UserError as exc:  # rank 0 alone may fail (no readable image): the others still gather
                failed = failed or exc
        if failed:
            raise failed
        return self.distributed.is_main

    def save_features(self, path: Path, cache: FeatureCache) -> None:
        """Keep a forward pass for the next run; a folder we may not write (or a full disk) only
        means the next run computes it again, said once."""
        kept_rows = {} if cache.index is None else {"index": cache.index}
        try:
            save_atomically({"features": cache.features, "logits": cache.logits, "labels": cache.labels,
                             **kept_rows}, path)
        except OSError as exc:
            notice = (f"The feature cache {path.parent} could not be written ({exc.strerror or exc}): "
                      "the figures are computed, the forward pass is not kept.")
            if notice not in self.store.notices:
                self.store.notices.append(notice)

    # ------------------------------------------------------------------ analyses
    def params_for(self, name: str, params: dict) -> dict:
        analysis = ANALYSES[name]
        unknown = set(params) - set(analysis.defaults)
        if unknown:
            raise ValueError(f"{name} has no parameter {sorted(unknown)[0]!r}")
        full = {**analysis.defaults, **params}
        full["_limit"], full["_train_limit"] = sample_key(self.limit), sample_key(self.train_limit)
        return full

    def run(self, name: str, **params) -> dict:
        if name not in ANALYSES:
            raise ValueError(f"unknown analysis {name!r}; choose from {sorted(ANALYSES)}")
        analysis = ANALYSES[name]
        reason = analysis.unsuited(self.model)
        if reason:
            self.skipped[name] = reason
            raise AnalysisSkipped(reason)
        full = self.params_for(name, params)
        result = self._lookup(name, full)
        if result is None:
            for dependency in analysis.depends:
                self.run(dependency)
            if self.progress:
                self.progress(analysis.title, 0, 1)
            started = time.perf_counter()
            kwargs = {k: v for k, v in full.items() if not k.startswith("_")}
            result = json_safe(analysis.compute(Context(self), **kwargs))
            seconds = time.perf_counter() - started
            # a machine-dependent result (TRANSIENT: a Phi fit stopped by its time budget) is stored too,
            # marked, so this machine does not fit it again on every start; make_results ships none
            self.store.put_result(self.hash, name, full, self.split, analysis.version, result, seconds)
            self.computed.append(name)
            if self.progress:
                self.progress(analysis.title, 1, 1)
            self._results[(name, self.store.params_key(full))] = result
        return result

    def prefetch(self) -> None:
        """Read every shipped and stored result of this checkpoint and split at once, of the
        analyses' current versions: one query for all of them instead of one each (the first
        lookup does it). A stored one comes as its JSON text, parsed when first asked for
        (Store.results_for)."""
        with self._reading:
            if self._prefetched is None:
                found = {**shipped.read(self.hash, self.split), **self.store.results_for(self.hash, self.split)}
                self._prefetched = {key: value for key, value in found.items()
                                    if key[0] in ANALYSES and key[2] == ANALYSES[key[0]].version}

    def read_through(self, other: "Analyzer") -> None:
        """Share `other`'s results, read or computed (the same checkpoint, split and limits): the
        app's model record and the model's listing then hold each once, parsed once."""
        if (other.hash, other.split, other.limit, other.train_limit) != (self.hash, self.split, self.limit,
                                                                         self.train_limit):
            raise ValueError("read_through: another checkpoint, split or limits")
        other.prefetch()
        self._results, self._prefetched, self._reading = other._results, other._prefetched, other._reading

    def faithfulness_seconds(self) -> tuple[float, int]:
        """(seconds, images) the faithfulness analysis will take on this model, measured now on one
        of its images (the Compare button and core.analyze say it before it starts)."""
        params = ANALYSES["faithfulness"].defaults
        name, view = self.meta["dataset"], view_of(self.meta)
        labels = split_labels(name, self.split, self.data_root, view)  # an image folder's: not decoded
        if self.limit and self.limit < len(labels):
            labels = labels[balanced_sample(labels, self.limit)]
        count = image_count(labels, self.model.num_classes, params["per_class"])
        image = sample_image(name, self.split, self.data_root, view)
        return seconds_needed(self.model, self.meta, image, count, params["steps"]), count

    def cached(self, name: str, **params) -> dict | None:
        """The result from memory or the store, or None; never computes."""
        return self._lookup(name, self.params_for(name, params))

    def headline_figures(self) -> tuple[dict, list[str]]:
        """The headline figures from what is stored or shipped (None where missing or unsuited),
        and the analyses they still need computed; never computes."""
        results, missing = {}, []
        for name in ANALYSES_NEEDED:
            if not self.skipped_reason(name):
                results[name] = self.cached(name)
                if results[name] is None:
                    missing.append(name)
        return headline(results), missing

    def _lookup(self, name: str, full: dict) -> dict | None:
        """Memory first (the app asks on every rerun), then the prefetched rows, then the store."""
        memo = (name, self.store.params_key(full))
        if memo in self._results:
            return self._results[memo]
        if not self.use_cache:
            return None
        with self._reading:
            if memo in self._results:  # read meanwhile by another page's thread
                return self._results[memo]
            return self._read(name, full, memo)

    def _read(self, name: str, full: dict, memo: tuple) -> dict | None:
        version = ANALYSES[name].version
        just_read = self._prefetched is None
        if just_read:
            self.prefetch()
        key = (*memo, version)
        result = self._prefetched.pop(key, None)
        if isinstance(result, str):
            result = json.loads(result)
        elif result is None and not just_read:  # stored since the prefetch (by another process)
            result = self.store.get_result(self.hash, name, full, self.split, version)
        if result is not None:
            self._results[memo] = result
        return result

    def report(self, names=REPORT, params: dict[str, dict] | None = None) -> dict:
        """Every named analysis that suits the model (the others are listed in `skipped`), each
        with its defaults or the parameters `params[name]` gives it."""
        computed_before = len(self.computed)
        results = {}
        for name in names:
            try:
                results[name] = self.run(name, **(params or {}).get(name, {}))
            except AnalysisSkipped:
                continue
        if len(self.computed) > computed_before or not self.use_cache:
            self.save_tables(results)
        return results

    # ------------------------------------------------------------------ SQL-friendly tables
    def save_tables(self, results: dict) -> None:
        self.store.put_model({"model_hash": self.hash, "name": self.name, "path": str(self.path),
                              "method": self.meta["method"], "arch": self.meta["arch"],
                              "dataset": self.meta["dataset"], **headline(results)})
        sel, gate, ablation = results.get("selectivity"), results.get("gate"), results.get("unit_ablation")
        if sel:
            rows = []
            for k, si in enumerate(sel["per_unit"]):
                rows.append({"unit": k, "selectivity": si, "dead": sel["dead"][k],
                             "preferred_class": sel["preferred_class"][k],
                             "assigned_class": gate["assigned_class"][k] if gate else None,
                             "max_drop": ablation["max_class_drop"][k] if ablation else None,
                             "max_drop_class": ablation["max_drop_class"][k] if ablation else None,
                             "overall_drop": ablation["overall_drop"][k] if ablation else None,
                             "l1_norm": ablation["l1_norm"][k] if ablation else None,
                             "filter_l1_norm": (ablation.get("filter_l1_norm") or [None] * len(sel["per_unit"]))[k]
                             if ablation else None})
            self.store.put_units(self.hash, rows)


def summary(results: dict, meta: dict, skipped: dict | None = None) -> dict:
    """What `core.analyze --json` prints for one model: its identity, the headline figures,
    and the per-class and per-unit detail behind them."""
    def part(name, *keys):
        result = results.get(name)
        return {k: result.get(k) for k in keys} if result else None
    out = {
        "checkpoint": meta["path"], "name": Path(meta["path"]).stem, "method": meta["method"], "arch": meta["arch"],
        "dataset": meta["dataset"], "headline": headline(results), "skipped": dict(skipped or {}),
        "accuracy": part("accuracy", "accuracy", "per_class"),
        "nontarget_entropy": part("nontarget_entropy", "mean", "bound", "fraction"),
        "selectivity": part("selectivity", "median", "q1", "q3", "mean", "dead_count", "per_unit"),
        "gate": part("gate", "phi", "gated_ce", "density", "source", "single_class_fraction", "fitted_density", "steps", "converged"),
        "gated_path": part("gated_path", "accuracy", "fitted_accuracy", "plain_accuracy"),
        "influential": part("influential", "sets", "r_A", "A_d", "A_f"),
        "noise_ablation": part("noise_ablation", "gaussian", "matched", "zero"),
        "unit_ablation": part("unit_ablation", "drop", "overall_drop", "spearman_selectivity", "spearman_l1",
                              "spearman_filter_l1"),
        "filter_correlation": part("filter_correlation", "c_ic"),
        "calibration": part("calibration", "nll", "ece", "mean_confidence"),
        "trajectory": (results.get("trajectory") or {}).get("epochs"),
    }
    if "iam" in results:
        out["rs"] = results["iam"]["rs"]
    if "faithfulness" in results:
        out["faithfulness"] = results["faithfulness"]["methods"]
    asked = {name: result for name, result in results.items()
             if ANALYSES[name].on_request and name not in ("iam", "faithfulness")}
    if asked:
        out["on_request"] = asked
    return out
