"""Studies of many models (checkpoints/studies/<study>/, not tracked): each model's figures computed
from its checkpoint where it is here, kept in checkpoints/studies/<study>.json where it is not."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from core import catalog, lsg, tradeoffs
from core.analysis.engine import Analyzer
from core.progress import read_events
from core.store import Store
from core.weights import sha256

from .common import ROOT

STUDIES = ROOT / "checkpoints" / catalog.STUDIES  # tracked: each study's models' figures, without their checkpoints
# what the Specificity and cost page reads of a model (its faithfulness is on request), and Fig. 7 / Table 2
STUDY_ANALYSES = (*dict.fromkeys(m.analysis for m in tradeoffs.MEASURES if m.analysis not in tradeoffs.ON_REQUEST),
                  "filter_correlation")
MATRIX_SEED = 0  # the seed whose filter-correlation matrix a study keeps (Fig. 7 draws one model of each kind)
FIG7_KINDS = ("ce", "lsg-fixed")  # the seeds study's kinds whose matrices Fig. 7 draws


def study(name: str, store: Store, figures) -> list[dict]:
    """The models of checkpoints/studies/<name>/ (checkpoints/train_<name>.sh), each as its file, the
    file's SHA-256, its metadata (with the command that trained it), its per-epoch log and
    `figures(analyzer)`.

    A study's checkpoints are not tracked: dozens of them beside the bundle would pass what travels
    to a GPU machine with the data (bench/gpu_session.sh). So the figures of the checkpoints here
    are computed from them and written to checkpoints/studies/<name>.json, and a model recorded
    there whose checkpoint is not here keeps its record: the file names the checkpoint each figure
    came from, and the script retrains it (a model is dropped by deleting its line)."""
    paths = sorted((STUDIES / name).glob("*.pt"))
    record = STUDIES / f"{name}.json"
    kept = {m["file"]: m for m in json.loads(record.read_text())["models"]} if record.exists() else {}
    if not paths:
        return list(kept.values())
    for path in paths:
        analyzer = Analyzer.from_path(path, store)
        if analyzer.meta.get("complete") is False:  # cut off, or still training: its figures would be a half-run's
            print(f"{name}: {path.name} skipped, its run has not finished (rerun the study's script)", flush=True)
            continue
        file = f"checkpoints/studies/{name}/{path.name}"
        kept[file] = {
            "file": file, "sha256": sha256(path), "weights_sha256": weights_digest(path),
            "meta": {k: v for k, v in analyzer.meta.items() if k not in ("path", "content_hash")},
            "epochs": [e for e in read_events(path.with_suffix(".progress.jsonl")) if e.get("event") == "epoch"],
            **figures(analyzer)}
        print(f"{name}: {path.name}", flush=True)
    models = [kept[file] for file in sorted(kept)]
    STUDIES.mkdir(parents=True, exist_ok=True)
    # a model a line: what travels to a GPU machine is counted in bytes (see above)
    record.write_text(f'{{"script": "checkpoints/train_{name}.sh", "models": [\n'
                      + ",\n".join(json.dumps(m, separators=(",", ":")) for m in models) + "\n]}\n")
    return models


def weights_digest(path: Path) -> str:
    """SHA-256 of the weights alone (name and bytes of each tensor, in name order): a retrained
    checkpoint's file differs in its metadata (time, command), its weights may not."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def seed_figures(analyzer: Analyzer) -> dict:
    """What the Specificity and cost page reads of a model, its gate's and its filters' figures."""
    results = analyzer.report(STUDY_ANALYSES)
    gate, filters = results["gate"], results["filter_correlation"]
    return {"measured": tradeoffs.values(results),
            "gate": {"source": gate["source"], "density": gate["density"],
                     "monopolised": lsg.monopolised_units(torch.tensor(gate["gate"]))},
            "filters": {"c_ic": filters["c_ic"], "within_class": filters["within_class"],
                        "thresholds": filters["thresholds"], "redundancy": filters["redundancy"],
                        "matrix": [[round(v, 4) for v in row] for row in filters["matrix"]]
                        if filters["matrix"] and drawn_in_fig7(analyzer.meta) else None}}


def kind_of(file: str) -> str:
    """A study's model's kind: its file's stem before "-seed" (train_seeds.sh names them so)."""
    return Path(file).stem.rsplit("-seed", 1)[0]


def drawn_in_fig7(meta: dict) -> bool:
    """Whether a seeds study's model keeps its matrix: seed MATRIX_SEED of each of FIG7_KINDS."""
    return meta.get("seed") == MATRIX_SEED and kind_of(meta["path"]) in FIG7_KINDS


def retrained_alike(*studies: list[dict]) -> str:
    """Which runs were trained twice (the same options and seed in two studies) and whether their
    weights came out the same: what a reader who retrains a study can expect to check."""
    by_weights: dict[str, list[str]] = {}
    for model in (m for study in studies for m in study):
        by_weights.setdefault(model["weights_sha256"], []).append(model["file"])
    twins = [files for files in by_weights.values() if len(files) > 1]
    if not twins:
        return "No run was trained twice here, so whether retraining gives the same weights is not known."
    pairs = "; ".join(" and ".join(f"`{f}`" for f in files) for files in twins)
    return (f"Trained twice here with the same options and seed, {pairs} came out with the same weights "
            "(their files differ in the time and command recorded), so on this machine a retrained study's "
            "weights can be checked against `weights_sha256`; another CPU or a GPU may round differently.")
