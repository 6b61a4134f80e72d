"""The reader's question on one screen: is this objective's model more class-specific, and what
does it cost? Each class-specificity figure beside each cost, what "better" means for each, and
models that differ only in their seed folded into mean +- spread (the Trade-offs page and its CSV)."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from . import lsg

SPECIFICITY, COST = "class specificity", "cost"


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    analysis: str
    read: Callable[[dict], float | None]
    better: str    # "higher", "lower", or "" where neither is better
    side: str      # SPECIFICITY or COST
    meaning: str   # one sentence: what the figure says, and which way is better


def _faithfulness_margin(kind: str):
    """CAM against the random map, as a share of the random map's own area: the AUCs scale with the
    model's confidence (minimax's is capped near p_t), the ratio does not."""
    def read(result: dict) -> float | None:
        methods = result.get("methods", {})
        cam, random = methods.get("cam", {}).get(kind, {}).get("mean"), methods.get("random", {}).get(kind, {}).get("mean")
        if cam is None or not random:
            return None
        return (random - cam) / random if kind == "deletion" else (cam - random) / random
    return read


MEASURES: tuple[Measure, ...] = (
    Measure("median_si", "median SI", "selectivity", lambda r: r["median"], "higher", SPECIFICITY,
            "How much more a typical unit responds to its preferred class than to the others, from its "
            "activations alone (0: alike for all classes, 1: one class only)."),
    Measure("nte_fraction", "NTE / log(C-1)", "nontarget_entropy", lambda r: r["fraction"], "higher", SPECIFICITY,
            "How evenly the wrong classes share the probability left over (1: perfectly even, the minimax "
            "loss's aim)."),
    Measure("phi", "Phi", "gate", lambda r: r["phi"], "lower", SPECIFICITY,
            "How few class-unit pairs the head needs to keep its cross-entropy; it contains that cross-entropy, "
            "so a model trained to be less confident starts higher."),
    Measure("single_class_units", "single-class units", "gate", lambda r: r["single_class_fraction"], "higher",
            SPECIFICITY, "The share of units that the shown gate (an LSG model's trained one, any other's fit) gives "
            "to exactly one class: the units the classes monopolise, about 90% over the LSG paper's 20 models."),
    Measure("shared_units", "shared units", "gate", lambda r: lsg.shared_fraction(torch.tensor(r["gate"])), "",
            SPECIFICITY, "The share of units the shown gate opens to two classes or more (about 10% over the LSG "
            "paper's 20 models); no direction is better, the rest are single-class or closed to all."),
    Measure("accuracy", "accuracy", "accuracy", lambda r: r["accuracy"], "higher", COST,
            "The share of held-out images classified right."),
    Measure("nll", "NLL", "calibration", lambda r: r["nll"], "lower", COST,
            "The mean cross-entropy of the true class on held-out images: the probability the model gives "
            "the right answer, in nats."),
    Measure("ece", "ECE", "calibration", lambda r: r["ece"], "lower", COST,
            "How far the model's top probability is from the accuracy it comes with (15 bins; 0: calibrated)."),
    Measure("mean_confidence", "mean top probability", "calibration", lambda r: r["mean_confidence"], "", COST,
            "How sure the model is on average; no direction is better, but the faithfulness AUCs scale with it."),
    Measure("noise_non_influential", "accuracy, noise on non-influential", "noise_ablation",
            lambda r: (r.get("gaussian") or {}).get("non_influential"), "higher", COST,
            "Accuracy when every feature outside a class's influential set is replaced by N(0, 1) noise: how "
            "much the model leans on its few influential units."),
    Measure("deletion_margin", "CAM deletion margin", "faithfulness", _faithfulness_margin("deletion"), "higher",
            COST, "How much faster the class probability falls when CAM's pixels go first than when a random "
            "map's do, as a share of the random map's area (confidence cancels out)."),
    Measure("insertion_margin", "CAM insertion margin", "faithfulness", _faithfulness_margin("insertion"), "higher",
            COST, "The same for putting pixels back: above 0, CAM's order finds the evidence sooner than chance."),
)
ON_REQUEST = {"faithfulness"}  # shown where computed, never computed by opening the page


SEEDLESS = ("seed", "path", "content_hash", "label", "command", "time", "versions", "device", "test_accuracy",
            "epochs_completed", "complete", "gate_density", "world_size", "steps_per_epoch")


def same_but_seed(meta: dict) -> str:
    """Models that differ only in their seed share this key (and so one row, mean +- spread): every
    recorded option but the seed and what a run reports of itself. A model our trainer did not make
    (an imported one) has no seed and shares its row with nothing."""
    if "seed" not in meta:
        return json.dumps(["alone", meta.get("path"), meta.get("content_hash")])
    return json.dumps({k: v for k, v in meta.items() if k not in SEEDLESS}, sort_keys=True, default=str)


def values(results: dict[str, dict]) -> dict[str, float | None]:
    """Measure key -> value for one model, from its analyses' results (None where missing)."""
    out = {}
    for measure in MEASURES:
        result = results.get(measure.analysis)
        try:
            value = measure.read(result) if result is not None else None
        except (KeyError, TypeError):
            value = None
        out[measure.key] = value if value is None or math.isfinite(value) else None
    return out


def summarise(models: list[tuple[dict, dict[str, float | None]]]) -> list[dict]:
    """One row per group of models that differ only in their seed: its label (the first model's),
    method, the number of seeds, and for each measure its mean and sample spread (None for one seed).
    `models`: each model's metadata and its measures (`values`), which a report may have kept
    without the checkpoint (checkpoints/studies/)."""
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for meta, measured in models:
        groups.setdefault(same_but_seed(meta), []).append((meta, measured))
    rows = []
    for members in groups.values():
        first = members[0][0]
        rows.append({"model": first["label"] if len(members) == 1 else f"{first['label']} (+{len(members) - 1} seeds)",
                     "method": first.get("method"), "seeds": len(members), **over_seeds([v for _, v in members])})
    return rows


def over_seeds(members: list[dict[str, float | None]], keys=None) -> dict[str, float | None]:
    """Each measure's (or each of `keys`') mean over the members that have it, and its sample
    spread (None for one). A record kept before a measure existed lacks it."""
    out = {}
    for key in keys or [measure.key for measure in MEASURES]:
        present = [m[key] for m in members if m.get(key) is not None]
        out[key] = statistics.fmean(present) if present else None
        out[f"{key}_spread"] = statistics.stdev(present) if len(present) > 1 else None
    return out


SWEPT_TOP_LEVEL = ("lr", "weight_decay", "epochs", "batch_size", "dropout", "momentum")  # besides the method's options


@dataclass
class Sweep:
    """Models that differ in one option (and their seeds): `points` one per value, in order, each
    with the measures' mean and sample spread over its seeds."""
    method: str
    option: str
    points: list[dict]

    @property
    def label(self) -> str:
        return f"{self.method}: {self.option} ({len(self.points)} values)"


def _option_of(meta: dict, option: str):
    return meta.get("options", {}).get(option) if option not in SWEPT_TOP_LEVEL else meta.get(option)


def sweeps(models: list[tuple[dict, dict[str, float | None]]]) -> list[Sweep]:
    """Every option over which some models differ in that option alone (their seeds aside), with
    at least two values: the minimax paper's Fig. 5 (non-target entropy against p_t or lambda),
    Table 1's mean +- std over runs. `models` as `summarise` takes them."""
    found: dict[tuple[str, str], dict] = {}
    for meta, measured in models:
        if "seed" not in meta or not isinstance(meta.get("options"), dict):
            continue
        base = {k: v for k, v in meta.items() if k not in SEEDLESS}
        for option in [*meta["options"], *[k for k in SWEPT_TOP_LEVEL if k in meta]]:
            value = _option_of(meta, option)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            rest = {**base, "options": {k: v for k, v in meta["options"].items() if k != option}}
            rest.pop(option, None)
            group = found.setdefault((option, json.dumps(rest, sort_keys=True, default=str)),
                                     {"method": meta.get("method", ""), "by_value": {}})
            group["by_value"].setdefault(value, []).append(measured)
    out = []
    for (option, _), group in found.items():
        if len(group["by_value"]) < 2:
            continue
        points = [{"value": value, "seeds": len(members), **over_seeds(members)}
                  for value, members in sorted(group["by_value"].items())]
        out.append(Sweep(group["method"], option, points))
    return out


def cell(row: dict, key: str) -> str:
    """'0.748', or '0.748 ± 0.010' over several seeds, or '—'."""
    value, spread = row[key], row[f"{key}_spread"]
    if value is None:
        return "—"
    return f"{value:.3f}" if spread is None else f"{value:.3f} ± {spread:.3f}"


WHY_THEY_DISAGREE = (
    "Selectivity and Phi can disagree because they ask different questions. Selectivity reads the units' "
    "activations alone: a unit whose mean is far larger for one class is selective, whatever the head does with "
    "it. Phi asks how few class-unit pairs the head needs to keep its cross-entropy, so it reads the head and "
    "the confidence too. The minimax loss makes units selective and the wrong classes even, but it also caps "
    "the model's confidence near p_t, which keeps its gated cross-entropy, and so its Phi, high. A model can "
    "have selective units that its head still mixes (high SI, high Phi), or units that fire for several classes "
    "while the head uses each for one (low SI, low Phi).")
