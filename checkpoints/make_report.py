"""Numbers and plots for REPRODUCTION.md, from `core.analysis` on the bundled checkpoints (with
their per-epoch trajectories and the faithfulness of their maps) and the minimax runs at other
p_t (checkpoints/full_pt/), the unit-ablation controls (checkpoints/controls/) and the sweeps of
the minimax paper's Fig. 5 (checkpoints/studies/sweeps/). Full test split, whole training split. Writes
docs/reproduction/figures.json and PNG plots, and REPRODUCTION.md from docs/reproduction/REPRODUCTION.md.in
with every table filled in by this script (no number in the report is typed by hand).

    .venv/bin/python checkpoints/make_report.py
"""
import hashlib
import io
import json
import math
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from core import catalog, lsg, tradeoffs  # noqa: E402
from core.losses.lsg import LSG  # noqa: E402
from core.weights import sha256  # noqa: E402
from core.analysis.engine import REPORT, Analyzer, summary  # noqa: E402
from core.analysis.iam import METHODS  # noqa: E402
from core.analysis.layers import layer_row  # noqa: E402
from core.analysis.selectivity import quartiles  # noqa: E402
from core.store import Store  # noqa: E402

OUT = ROOT / "docs" / "reproduction"
MAPS_CLASS = "Sneaker"  # the class drawn in influential_maps.png
TEMPLATE = OUT / "REPRODUCTION.md.in"  # the prose; every number comes from the tables filled in here
TARGET = ROOT / "REPRODUCTION.md"
BUNDLED = ["ce", "minimax", "lsg", "maxnte", "label_smoothing", "confidence_penalty"]
VIT = ["vit_ce", "vit_minimax", "vit_lsg"]  # the same objectives on our ViT (issue 30)
NTE_BOUND = math.log(9)  # the non-target entropy's bound on Fashion-MNIST's 10 classes
CONTROLS = ["ce-bn", "ce-nobn", "ce-dropout0.5"]  # the ablation abstract's controls (train_controls.sh)


def analyse(path: Path, store: Store, faithfulness: bool = True) -> dict:
    analyzer = Analyzer.from_path(path, store)
    results = analyzer.report((*REPORT, "decomposed_retrain", "layer_selectivity", *("faithfulness",) * faithfulness))
    row = summary(results, analyzer.meta)
    # of the gate shown (the trained one for LSG, else the post-hoc fit), as the pages and the JSON say
    row["single_class_fraction"] = results["gate"]["single_class_fraction"]
    row["monopolised"] = lsg.monopolised_units(torch.tensor(results["gate"]["gate"]))
    row["gate_density"] = results["gate"]["density"]
    row["selectivity"]["dead"] = row["selectivity"]["dead_count"]
    row["si_histogram"] = results["selectivity"]["histogram"]
    row["p_t"] = analyzer.meta.get("options", {}).get("p_t")
    row["epochs"] = analyzer.meta.get("epochs_completed")
    row["faithfulness"] = results["faithfulness"]["methods"] if "faithfulness" in results else {}
    row["influential_sweep"] = results["influential"]["sweep"]
    row["A_d"], row["A_f"] = results["influential"]["A_d"], results["influential"]["A_f"]
    row["max_class_drop"] = results["unit_ablation"]["max_class_drop"]
    row["mean_overall_drop"] = results["unit_ablation"]["mean_overall_drop"]
    row["largest_overall_drop"] = results["unit_ablation"]["largest_overall_drop"]
    row["rho_overall_si"] = results["unit_ablation"]["spearman_selectivity_overall"]
    rotated = results["rotation_control"]  # its units' means too (unit_*), from unit_ablation
    row["rotation"] = {**{k: v for k, v in rotated.items() if not isinstance(v, list)},
                       "largest_overall_drop": max(rotated["overall_drop"])}
    corr = results.get("filter_correlation") or {}
    row["redundancy_03"] = (corr["redundancy"][corr["thresholds"].index(0.3)]
                            if corr.get("redundancy") else None)  # LSG Fig. 7e at its weak threshold
    row["retrain"] = results["decomposed_retrain"]  # ReLU+FC paper Sec. 5.2.3
    row["layer_medians"] = [layer["median"] for layer in results.get("layer_selectivity", {}).get("layers", [])]
    row["test_ce"] = results["calibration"]["nll"]  # the LSG paper's Table 1 reports the test cross-entropy
    row["within_class_corr"] = results["filter_correlation"]["within_class"] if "filter_correlation" in results else None
    row["trajectory"] = results["trajectory"]["epochs"] if results["trajectory"]["available"] else []
    row["masking"] = {by: masking_summary(analyzer.run("class_masking", by=by)) for by in ("gate", "influential")}
    row["gate_source"] = results["gate"]["source"]
    row["adversarial"] = analyzer.cached("adversarial_detection")  # shipped for ce and lsg (make_results)
    maps = analyzer.cached("influential_maps")  # shipped (make_results); figures.json keeps one class's maps
    if maps:
        c = analyzer.meta["class_names"].index(MAPS_CLASS)
        row["influential_maps"] = {"mean_activation": maps["mean_activation"], "groups": maps["groups"],
                                   "maps_class": MAPS_CLASS, "maps": maps["maps"][c], "example": maps["example"][c]}
    row["view"] = {k: analyzer.meta[k] for k in ("dataset", "input_size", "mean", "std")}
    for heavy in ("unit_ablation", "influential", "gate"):
        row.pop(heavy, None)
    return row


def masking_summary(result: dict) -> dict:
    """Mean over classes: the masked class's accuracy, the other classes', units masked per class."""
    confusions = result["confusions"]
    others = []
    for k, matrix in enumerate(confusions):
        rest = [i for i in range(len(matrix)) if i != k]
        others.append(sum(matrix[i][i] for i in rest) / sum(sum(matrix[i]) for i in rest))
    return {"masked": statistics.mean(result["masked_class_accuracy"]), "others": statistics.mean(others),
            "units": statistics.mean(len(u) for u in result["units"])}


def save_figure(fig, filename: str, dpi: int) -> None:
    """The figure as a PNG of 256 colours (a third of the bytes; the plots use a few): what is
    tracked travels to a GPU machine, within a budget (bench/gpu_session.sh)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight")
    Image.open(buffer).convert("RGB").quantize(256).save(OUT / filename, optimize=True)


def si_histogram(rows: list[dict], filename: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    edges = [i / 20 for i in range(21)]
    for r in rows:
        ax.stairs(r["si_histogram"], edges, label=f"{r['name']} (median {r['selectivity']['median']:.2f})", linewidth=2)
    ax.set(xlabel="selectivity index", ylabel="units", title=title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, filename, 120)
    plt.close(fig)


def plots(models: list[dict], full: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    si_histogram(models, "selectivity.png", "Unit selectivity, Fashion-MNIST test set")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for m in models:
        epochs = [e["epoch"] for e in m["trajectory"]]
        for ax, key in zip(axes, ("median_selectivity", "nontarget_fraction", "accuracy")):
            ax.plot(epochs, [e[key] for e in m["trajectory"]], label=m["name"])
    for ax, title in zip(axes, ("median SI", "non-target entropy / log 9", "test accuracy")):
        ax.set(xlabel="epoch", title=title)
    axes[2].set_ylim(0.80, 0.96)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "trajectory.png", 120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    maps = list(models[0]["faithfulness"])
    width = 0.8 / len(models)
    for ax, measure, title in zip(axes, ("deletion", "insertion"), ("deletion AUC (lower is better)",
                                                                     "insertion AUC (higher is better)")):
        for i, m in enumerate(models):
            ax.bar([k + i * width for k in range(len(maps))], [m["faithfulness"][name][measure]["mean"] for name in maps],
                   width, label=m["name"], color=f"C{i}")
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(maps))], [models[0]["faithfulness"][n]["label"].split(" (")[0]
                                                                       for n in maps], fontsize=8)
        ax.set(title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "faithfulness.png", 120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([m["name"] for m in models], [m["nontarget_entropy"]["mean"] for m in models])
    ax.axhline(models[0]["nontarget_entropy"]["bound"], color="red", linestyle="--", label="log 9")
    ax.set(ylabel="nats", title="Mean non-target entropy")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, "nontarget_entropy.png", 120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(models)
    modes = ["gaussian", "matched", "zero"]
    for i, m in enumerate(models):
        for j, which in enumerate(("influential", "non_influential")):
            xs = [k * 2 + j + i * width for k in range(3)]
            ax.bar(xs, [m["noise_ablation"][mode][which] for mode in modes], width,
                   label=f"{m['name']}" if j == 0 else None, color=f"C{i}", alpha=1.0 if j == 0 else 0.5)
    ax.set_xticks([k * 2 + 0.5 for k in range(3)], [f"{mode}\n(infl. | non-infl.)" for mode in modes])
    ax.set(ylabel="test accuracy", title="Replacing influential vs non-influential features")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, "noise_ablation.png", 120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), sharey=True)
    for ax, m in zip(axes, models):
        ax.scatter(m["selectivity"]["per_unit"], m["max_class_drop"], s=12)
        ax.set(title=f"{m['name']}: rho {m['headline']['rho_drop_selectivity']:.2f}", xlabel="selectivity")
    axes[0].set_ylabel("largest class-accuracy drop")
    fig.tight_layout()
    save_figure(fig, "unit_ablation.png", 120)
    plt.close(fig)

    if full:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        pts = [r["p_t"] for r in full]
        ax.plot(pts, [r["selectivity"]["median"] for r in full], "o-", label="median SI")
        ax.plot(pts, [r["nontarget_entropy"]["fraction"] for r in full], "s-", label="non-target entropy / log 9")
        ax.plot(pts, [r["headline"]["accuracy"] for r in full], "^-", label="test accuracy")
        ax.invert_xaxis()
        ax.set(xlabel="p_t", title="Minimax p_t (10-epoch schedule)")
        ax.legend()
        fig.tight_layout()
        save_figure(fig, "pt_full.png", 120)
        plt.close(fig)


def table(rows: list[dict], label: str) -> str:
    lines = [f"| {label} | accuracy | test CE (nats) | median SI | dead | NTE (nats) | NTE / log 9 | Phi | density | single-class units | r_A (k=5) | noise infl. / non-infl. | rho(drop, SI) | rho(drop, L1) | C_IC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = r["noise_ablation"]["gaussian"]
        lines.append(f"| {r['name']} | {r['headline']['accuracy']:.4f} | {r['test_ce']:.4f} | {r['selectivity']['median']:.3f} | {r['selectivity']['dead']} | "
                     f"{r['nontarget_entropy']['mean']:.3f} | {r['nontarget_entropy']['fraction']:.3f} | {r['headline']['phi']:.3f} | "
                     f"{r['gate_density']:.3f} | {r['single_class_fraction']:.2f} | {r['headline']['r_a']:.3f} | "
                     f"{g['influential']:.4f} / {g['non_influential']:.4f} | {r['headline']['rho_drop_selectivity']:.3f} | "
                     f"{r['headline']['rho_drop_l1']:.3f} | {r['headline']['c_ic']:.4f} |")
    return "\n".join(lines)


def faithfulness_table(models: list[dict]) -> str:
    maps = list(models[0]["faithfulness"])
    names = [models[0]["faithfulness"][n]["label"].split(" (")[0] for n in maps]
    lines = ["| model: measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(maps)]
    for measure in ("deletion", "insertion", "road_morf", "road_lerf"):
        for m in models:
            cells = [f"{m['faithfulness'][n][measure]['mean']:.3f} ± {m['faithfulness'][n][measure]['std']:.3f}"
                     for n in maps]
            lines.append(f"| {m['name']}: {measure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_table(models: list[dict]) -> str:
    lines = ["| model | N(0,1) (as the paper) | noise matched to each unit's mean/std | zero |", "|---|---|---|---|"]
    for m in models:
        cells = [f"{m['noise_ablation'][mode]['influential']:.3f} / {m['noise_ablation'][mode]['non_influential']:.3f}"
                 for mode in ("gaussian", "matched", "zero")]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(models: list[dict]) -> str:
    lines = ["| model | SI q1 / median / q3 | units at SI >= 0.9 | mean / largest overall drop of one unit | "
             "largest drop of one class | rho(overall drop, SI) | rho(drop, filter L1) |", "|---|---|---|---|---|---|---|"]
    for m in models:
        q = (m["selectivity"]["q1"], None, m["selectivity"]["q3"])  # the JSON's (linear), not statistics'
        rho_filter = m["headline"]["rho_drop_filter_l1"]
        lines.append(f"| {m['name']} | {q[0]:.3f} / {m['selectivity']['median']:.3f} / {q[2]:.3f} | "
                     f"{sum(si >= 0.9 for si in m['selectivity']['per_unit'])} of {len(m['selectivity']['per_unit'])} | "
                     f"{m['mean_overall_drop']:.2%} / {m['largest_overall_drop']:.2%} | {max(m['max_class_drop']):.1%} | "
                     f"{m['rho_overall_si']:.3f} | "
                     f"{'-' if rho_filter is None else f'{rho_filter:.3f}'} |")
    return "\n".join(lines)


def controls_table(models: list[dict]) -> str:
    """One unit zeroed against one randomly rotated direction zeroed (rotation_control), per control."""
    lines = ["| model | accuracy | median SI | one unit: mean / largest class drop | one rotated direction: mean / "
             "largest class drop | one unit: mean / largest overall drop | one rotated direction: mean / largest "
             "overall drop | rho(class drop, SI) | rho(overall drop, SI) |", "|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        r = m["rotation"]
        lines.append(f"| {m['name']} | {m['headline']['accuracy']:.4f} | {m['selectivity']['median']:.3f} | "
                     f"{r['unit_mean_max_class_drop']:.2%} / {r['unit_largest_class_drop']:.2%} | "
                     f"{r['mean_max_class_drop']:.2%} / {r['largest_class_drop']:.2%} | "
                     f"{m['mean_overall_drop']:.3%} / {m['largest_overall_drop']:.3%} | "
                     f"{r['mean_overall_drop']:.3%} / {r['largest_overall_drop']:.3%} | "
                     f"{m['headline']['rho_drop_selectivity']:.3f} | {m['rho_overall_si']:.3f} |")
    return "\n".join(lines)


def controls_verdict(models: list[dict]) -> str:
    """The abstract's claims, each answered from the control models' figures."""
    by = {m["name"]: m for m in models}
    mean_drop = {n: m["rotation"]["unit_mean_max_class_drop"] for n, m in by.items()}
    rotated = {n: m["rotation"]["mean_max_class_drop"] for n, m in by.items()}
    units_matter = [n for n in by if mean_drop[n] > rotated[n]]
    rho = {n: (m["headline"]["rho_drop_selectivity"], m["rho_overall_si"]) for n, m in by.items()}
    class_better = [n for n in by if rho[n][0] > rho[n][1]]
    bn, nobn, dropout = by["ce-bn"], by["ce-nobn"], by["ce-dropout0.5"]
    said = [
        "- **Does zeroing one unit hurt single classes more than zeroing a random direction?** "
        + ("yes" if len(units_matter) == len(by) else f"only in {', '.join(units_matter)}" if units_matter else "no")
        + ": the mean largest class drop of one unit against one rotated direction is "
        + "; ".join(f"{n} {mean_drop[n]:.2%} vs {rotated[n]:.2%}" for n in by) + ".",
        "- **Does selectivity predict the class drop better than the overall drop?** "
        + ("yes" if len(class_better) == len(by) else f"only in {', '.join(class_better)}" if class_better else "no")
        + ": Spearman's rho with SI, class drop against overall drop, is "
        + "; ".join(f"{n} {rho[n][0]:.3f} vs {rho[n][1]:.3f}" for n in by) + ".",
        f"- **Batch norm**: without it the mean largest class drop of one unit is {mean_drop['ce-nobn']:.2%} "
        f"(with it {mean_drop['ce-bn']:.2%}), the mean overall drop {nobn['mean_overall_drop']:.3%} "
        f"({bn['mean_overall_drop']:.3%}), the median SI {nobn['selectivity']['median']:.3f} "
        f"({bn['selectivity']['median']:.3f}), at {nobn['headline']['accuracy']:.2%} accuracy "
        f"({bn['headline']['accuracy']:.2%}).",
        f"- **Dropout 0.5 before the head**: the mean largest class drop of one unit is "
        f"{mean_drop['ce-dropout0.5']:.2%} (without dropout {mean_drop['ce-bn']:.2%}), the mean overall drop "
        f"{dropout['mean_overall_drop']:.3%} ({bn['mean_overall_drop']:.3%}), the median SI "
        f"{dropout['selectivity']['median']:.3f} ({bn['selectivity']['median']:.3f}), at "
        f"{dropout['headline']['accuracy']:.2%} accuracy ({bn['headline']['accuracy']:.2%})."]
    return "\n".join(said)


STUDIES = ROOT / "checkpoints" / catalog.STUDIES  # tracked: each study's models' figures, without their checkpoints
# what the Specificity and cost page reads of a model (its faithfulness is on request), and Fig. 7 / Table 2
STUDY_ANALYSES = (*dict.fromkeys(m.analysis for m in tradeoffs.MEASURES if m.analysis not in tradeoffs.ON_REQUEST),
                  "filter_correlation")
MATRIX_SEED = 0  # the seed whose filter-correlation matrix a study keeps (Fig. 7 draws one model of each kind)


def study(name: str, store: Store, figures) -> list[dict]:
    """The models of checkpoints/<name>/ (checkpoints/train_<name>.sh), each as its file, the file's
    SHA-256, its metadata (with the command that trained it), its per-epoch log and `figures(analyzer)`.

    A study's checkpoints are not tracked: dozens of them beside the bundle would pass what travels
    to a GPU machine with the data (bench/gpu_session.sh). So where they are here their figures are
    computed from them and written to checkpoints/studies/<name>.json, and where they are not that
    file is read: it names the checkpoint each figure came from, and the script retrains them."""
    paths = sorted((STUDIES / name).glob("*.pt"))
    record = STUDIES / f"{name}.json"
    if not paths:
        return json.loads(record.read_text())["models"] if record.exists() else []
    models = []
    for path in paths:
        analyzer = Analyzer.from_path(path, store)
        progress = path.with_suffix(".progress.jsonl")
        models.append({
            "file": f"checkpoints/studies/{name}/{path.name}", "sha256": sha256(path), "weights_sha256": weights_digest(path),
            "meta": {k: v for k, v in analyzer.meta.items() if k not in ("path", "content_hash")},
            "epochs": [e for e in map(json.loads, progress.read_text().splitlines()) if e.get("event") == "epoch"]
            if progress.exists() else [], **figures(analyzer)})
        print(f"{name}: {path.name}", flush=True)
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


def drawn_in_fig7(meta: dict) -> bool:
    """Fig. 7 draws one CE and one fixed-gate LSG model: seed MATRIX_SEED of each keeps its matrix."""
    options = meta.get("options") or {}
    return meta.get("seed") == MATRIX_SEED and (
        (meta.get("method") == "ce" and not options) or (meta.get("method") == "lsg" and bool(options.get("fixed_gate"))))


# the RS paper's layers, per network: the methods each is read with ("" is the units, the hidden
# layer before the classifier); AM beside IAM where its Figs. 1 and 5 draw them
RS_LAYERS = {"shallow_cnn": {"conv 1": METHODS, "conv 2": ("iam",), "conv 3": METHODS, "conv 4": ("iam",),
                             "": ("iam",)},
             "mlp": {"hidden 1": METHODS, "hidden 3": METHODS}}
UNITS_LAYER = {"shallow_cnn": "hidden fc", "mlp": "hidden 4", "resnet20": "pooled units"}


def rs_figures(analyzer: Analyzer, layers: dict | None = None) -> dict:
    """Per layer: its units' SI, RS under each method (Eq. 4, over all K units), Spearman's rho of
    RS with SI and, for the units before the classifier, with each unit's largest class drop."""
    arch = analyzer.meta["arch"]
    by_layer = analyzer.run("layer_selectivity")
    out = []
    for layer, methods in (layers or RS_LAYERS[arch]).items():
        runs = {method: analyzer.run("iam", layer=layer, method=method) for method in methods}
        si = layer_row(by_layer, layer)["per_unit"] if layer else analyzer.run("selectivity")["per_unit"]
        out.append({"layer": layer or UNITS_LAYER[arch], "si": [round(v, 5) for v in si],
                    "rs": {method: run["rs"] for method, run in runs.items()},
                    "rho": {method: run["spearman_rs_selectivity"] for method, run in runs.items()},
                    "rho_drop": runs["iam"]["spearman_rs_drop"]})
    return {"layers": out}


def rs_rows(models: list[dict]) -> list[dict]:
    """One row per network and layer: units, median SI, median and interquartile range of RS under
    each method, share of units whose RS is 0, rho(RS, SI) and rho(RS, drop)."""
    rows = []
    for m in models:
        for layer in m["layers"]:
            row = {"network": m["meta"]["arch"], "layer": layer["layer"], "units": len(layer["si"]),
                   "median_si": statistics.median(layer["si"]), "rho_drop": layer["rho_drop"]}
            for method, rs in layer["rs"].items():
                q1, median, q3 = quartiles(torch.tensor(rs))  # the app's and the JSON's definition
                row[method] = {"median": median, "iqr": q3 - q1, "zero": sum(v == 0 for v in rs) / len(rs),
                               "rho": layer["rho"][method]}
            rows.append(row)
    return rows


def rs_table(rows: list[dict]) -> str:
    lines = ["| network | layer | units | median SI | RS (IAM): median / IQR / share 0 | rho(RS, SI), IAM | "
             "RS (AM): median / IQR | rho(RS, SI), AM | rho(RS, class drop) |", "|---|---|---|---|---|---|---|---|---|"]
    number = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        iam, am = r["iam"], r.get("am")
        am_rs = "—" if am is None else f"{am['median']:.3f} / {am['iqr']:.3f}"
        lines.append(f"| {r['network']} | {r['layer']} | {r['units']} | {r['median_si']:.3f} | "
                     f"{iam['median']:.3f} / {iam['iqr']:.3f} / {iam['zero']:.0%} | {number(iam['rho'])} | "
                     f"{am_rs} | {number(am['rho']) if am else '—'} | {number(r['rho_drop'])} |")
    return "\n".join(lines)


def rs_claims(rows: list[dict]) -> str:
    """The RS paper's readings, each decided by the numbers."""
    shallow = {r["layer"]: r for r in rows if r["network"] == "shallow_cnn"}
    mlp = [r for r in rows if r["network"] == "mlp"]
    convs = [shallow[f"conv {i}"] for i in range(1, 5)]
    drawn = [shallow["conv 1"], shallow["conv 3"]]
    positive = all(r[m]["rho"] is not None and r[m]["rho"] > 0 for r in drawn for m in METHODS)
    lower = all(r["iam"]["median"] <= r["am"]["median"] for r in drawn)
    fc = shallow["hidden fc"]
    fc_holds = fc["iam"]["zero"] >= 0.5 and all(fc["median_si"] > r["median_si"] for r in convs)
    rhos = [r["iam"]["rho"] for r in convs]
    falling = rhos[0] is not None and rhos[-1] is not None and rhos[0] > 0 and rhos[0] > rhos[-1]
    steady = all(b < a for a, b in zip(rhos, rhos[1:])) if None not in rhos else False
    flat = max(r["iam"]["iqr"] for r in mlp) < min(r["iam"]["iqr"] for r in drawn)
    said = lambda holds: "matches" if holds else "**does not hold**"  # noqa: E731
    conv_si = ", ".join(f"{r['median_si']:.3f}" for r in convs)
    rho_path = " -> ".join("—" if v is None else f"{v:.3f}" for v in rhos)
    mlp_iqr = ", ".join(f"{r['layer']} {r['iam']['iqr']:.3f}" for r in mlp)
    return "\n".join([
        f"- **RS rises with class selectivity, under AM and IAM (Fig. 1: the shallow CNN's first and third "
        f"layers)** {said(positive)}: rho(RS, SI) in conv 1 {shallow['conv 1']['iam']['rho']:.3f} (IAM) and "
        f"{shallow['conv 1']['am']['rho']:.3f} (AM), in conv 3 {shallow['conv 3']['iam']['rho']:.3f} and "
        f"{shallow['conv 3']['am']['rho']:.3f}.",
        f"- **IAM lowers RS a little against AM, the trend unchanged** {said(lower)}: median RS in conv 1 "
        f"{shallow['conv 1']['iam']['median']:.3f} (IAM) vs {shallow['conv 1']['am']['median']:.3f} (AM), in conv 3 "
        f"{shallow['conv 3']['iam']['median']:.3f} vs {shallow['conv 3']['am']['median']:.3f}.",
        f"- **Before the classifier, selectivity is high and RS mostly zero (Fig. 3a)** {said(fc_holds)}: the hidden "
        f"layer's median SI {fc['median_si']:.3f} (the convolutions' {conv_si}), "
        f"RS 0 for {fc['iam']['zero']:.0%} of its units.",
        f"- **rho(RS, SI) is positive and falls with depth (Fig. 3b)** {said(falling)}: conv 1 to conv 4 "
        f"{rho_path} ({'falling at every layer' if steady else 'not at every layer'}).",
        f"- **An MLP's RS has no diversity (Fig. 5)** {said(flat)}: the interquartile range of RS (IAM) in the MLP's "
        f"layers {mlp_iqr}, in the shallow CNN's conv 1 and "
        f"conv 3 {drawn[0]['iam']['iqr']:.3f} and {drawn[1]['iam']['iqr']:.3f}.",
        f"- **Selective units matter little because others can stand in (RS against the unit's largest class drop)**: "
        f"rho(RS, class drop) {fc['rho_drop']:.3f} on the shallow CNN's hidden layer (a negative rho: units that "
        "others can stand in for cost less when ablated)."])


def rs_figure(models: list[dict]) -> None:
    """Figs. 1, 3a and 5 as the paper draws them: RS against SI per unit, IAM (and AM)."""
    panels = [(m["meta"]["arch"], layer) for m in models for layer in m["layers"]
              if layer["layer"] in ("conv 1", "conv 3", "hidden fc", "hidden 1", "hidden 3")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True)
    for ax, (arch, layer) in zip(axes, panels):
        for method, marker, colour in (("am", "x", "C0"), ("iam", "o", "C1")):
            if method in layer["rs"]:
                ax.scatter(layer["si"], layer["rs"][method], s=8, marker=marker, color=colour, alpha=0.6,
                           label=method.upper())
        ax.set(title=f"{arch}: {layer['layer']}", xlabel="class selectivity")
    axes[0].set_ylabel("RS")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "rs.png", 110)
    plt.close(fig)


def rs_body(models: list[dict]) -> str:
    """The section's table, figure and verdicts, or what to run where the study is not here."""
    if {m["meta"]["arch"] for m in models} != set(RS_LAYERS):
        return ("Not here: neither the study's checkpoints nor checkpoints/studies/rs.json. "
                "`bash checkpoints/train_rs.sh`, then `.venv/bin/python checkpoints/make_report.py`, fills this section.")
    rows = rs_rows(models)
    rs_figure(models)
    return f"{rs_table(rows)}\n\n![rs](docs/reproduction/rs.png)\n\n{rs_claims(rows)}"


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


def sweep_points(models: list[dict]) -> dict[str, tradeoffs.Sweep]:
    """The minimax paper's Fig. 5 from the sweeps study (train_sweeps.sh): each sweep's points,
    mean and sample std over the seeds, as the Specificity and cost page folds them."""
    return {sweep.option: sweep for sweep in tradeoffs.sweeps([(m["meta"], m["measured"]) for m in models])}


def sweep_table(sweep: tradeoffs.Sweep, option: str) -> str:
    lines = [f"| {option} | seeds | accuracy | NTE (nats) | NTE / log 9 | median SI |", "|---|---|---|---|---|---|"]
    for point in sweep.points:
        nats = {key: None if point[key] is None else point[key] * NTE_BOUND for key in ("nte_fraction", "nte_fraction_spread")}
        lines.append(f"| {point['value']:g} | {point['seeds']} | {tradeoffs.cell(point, 'accuracy')} | "
                     f"{tradeoffs.cell(nats, 'nte_fraction')} | "
                     f"{tradeoffs.cell(point, 'nte_fraction')} | {tradeoffs.cell(point, 'median_si')} |")
    return "\n".join(lines)


def sweeps_body(sweeps: dict[str, tradeoffs.Sweep]) -> str:
    """The section's tables, figure and verdicts, or what to run where the sweeps are not here."""
    if not {"p_t", "lam"} <= set(sweeps):
        return ("Not here: neither the sweeps' checkpoints nor checkpoints/studies/sweeps.json. "
                "`bash checkpoints/train_sweeps.sh` (about 15 minutes on 2 CPU cores), then "
                "`.venv/bin/python checkpoints/make_report.py`, fills this section.")
    return (f"MaxNTE over lambda:\n\n{sweep_table(sweeps['lam'], 'lambda')}\n\nminimax over p_t:\n\n"
            f"{sweep_table(sweeps['p_t'], 'p_t')}\n\n![sweeps](docs/reproduction/sweeps.png)\n\n{sweep_claims(sweeps)}")


def sweep_figure(sweeps: dict[str, tradeoffs.Sweep]) -> None:
    """Fig. 5 as the paper draws it: NTE (left axis, the bound dotted) and test accuracy (right
    axis) against lambda and 1 - p_t, mean +- std over the seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, (option, label) in zip(axes, (("lam", "MaxNTE: lambda"), ("p_t", "minimax: 1 - p_t"))):
        points = sorted(sweeps[option].points, key=lambda p: p["value"] if option == "lam" else 1 - p["value"])
        xs = [p["value"] if option == "lam" else 1 - p["value"] for p in points]
        ax.errorbar(xs, [p["nte_fraction"] * NTE_BOUND for p in points],
                    [(p["nte_fraction_spread"] or 0) * NTE_BOUND for p in points], fmt="o-", color="C0", capsize=3)
        ax.axhline(NTE_BOUND, color="C0", linestyle=":")
        ax.set(xlabel=label, ylabel="non-target entropy (nats)", title=label)
        right = ax.twinx()
        right.errorbar(xs, [p["accuracy"] for p in points], [p["accuracy_spread"] or 0 for p in points],
                       fmt="s--", color="C3", capsize=3)
        right.set_ylabel("test accuracy", color="C3")
    fig.tight_layout()
    save_figure(fig, "sweeps.png", 120)
    plt.close(fig)


def sweep_claims(sweeps: dict[str, tradeoffs.Sweep]) -> str:
    """Fig. 5's two readings, each checked on the means over seeds."""
    lam, pt = sweeps["lam"].points, sweeps["p_t"].points
    lam_acc = [p["accuracy"] for p in lam]
    falling = all(b < a for a, b in zip(lam_acc, lam_acc[1:]))
    lam_nte = max(p["nte_fraction"] for p in lam) * NTE_BOUND
    by_gap = sorted(pt, key=lambda p: 1 - p["value"])  # 1 - p_t rising, as the paper's axis
    pt_nte = [p["nte_fraction"] for p in by_gap]
    rising = all(b > a for a, b in zip(pt_nte, pt_nte[1:]))
    pt_acc = [p["accuracy"] for p in by_gap]
    stable = max(pt_acc) - min(pt_acc) <= 0.01
    return "\n".join([
        f"- **MaxNTE: accuracy falls as lambda rises, and its entropy stalls below the bound (paper: at about 2.12 "
        f"of 2.197 nats)** {'matches' if falling and lam_nte < NTE_BOUND - 0.01 else '**does not hold**'}: accuracy "
        + " -> ".join(f"{a:.2%}" for a in lam_acc) + f" over lambda " + ", ".join(f"{p['value']:g}" for p in lam)
        + f"; its highest mean NTE is {lam_nte:.3f} nats.",
        f"- **minimax: as 1 - p_t rises the entropy approaches the bound with stable accuracy** "
        f"{'matches' if rising and stable else '**does not hold**'}: NTE / log 9 "
        + " -> ".join(f"{v:.3f}" for v in pt_nte) + " over 1 - p_t " + ", ".join(f"{1 - p['value']:.1f}" for p in by_gap)
        + f", accuracy within {100 * (max(pt_acc) - min(pt_acc)):.2f} points (stable: within 1 point)."])


SEED_KINDS = {  # train_seeds.sh's runs, in the tables' order: file stem before "-seed" -> what it is
    "ce": "cross-entropy (STD)", "confidence_penalty": "confidence penalty", "label_smoothing": "label smoothing",
    "minimax": "minimax", "lsg": "LSG (trained gate)", "lsg-fixed": "LSG, fixed gate (App. C)",
    "lsg-tight": "LSG, gate tightened to binary after 2 epochs (Sec. 3.3)"}


NO_CORRELATION = 0.01  # a C_IC below this is no correlation: half of it means nothing
TARGET_DENSITY = LSG.options["target_density"][0]  # the bundle's and the study's


def by_kind(models: list[dict]) -> dict[str, dict]:
    """The seeds study's models grouped by kind: the measures' mean and sample std over seeds
    (tradeoffs.over_seeds, as the Specificity and cost page folds seeds), and the gate's and the
    filters' figures the same way."""
    kinds = {}
    for kind in SEED_KINDS:
        members = [m for m in models if Path(m["file"]).stem.rsplit("-seed", 1)[0] == kind]
        if not members:
            continue
        extra = {"gate_density": [m["gate"]["density"] for m in members],
                 "c_ic": [m["filters"]["c_ic"] for m in members],
                 "monopolised": [statistics.fmean(m["gate"]["monopolised"]) for m in members]}
        kinds[kind] = {"seeds": len(members), "members": members, **tradeoffs.over_seeds([m["measured"] for m in members]),
                       **{k: statistics.fmean(v) for k, v in extra.items()},
                       **{f"{k}_spread": statistics.stdev(v) if len(v) > 1 else None for k, v in extra.items()}}
    return kinds


def seeds_table(kinds: dict[str, dict]) -> str:
    lines = ["| model | seeds | accuracy | test CE (nats) | median SI | NTE / log 9 | Phi | gate density | C_IC |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind, k in kinds.items():
        lines.append(f"| {SEED_KINDS[kind]} | {k['seeds']} | " + " | ".join(
            tradeoffs.cell(k, key) for key in ("accuracy", "nll", "median_si", "nte_fraction", "phi", "gate_density",
                                               "c_ic")) + " |")
    return "\n".join(lines)


def seeds_claims(kinds: dict[str, dict]) -> str:
    """The papers' claims that need several runs, each decided on the means over seeds."""
    acc = {kind: (k["accuracy"], k["accuracy_spread"] or 0) for kind, k in kinds.items()}
    rivals = [kind for kind in ("ce", "confidence_penalty", "label_smoothing") if kind in acc]
    best = max(rivals, key=lambda kind: acc[kind][0])
    ahead = acc["minimax"][0] - acc[best][0]
    beyond = abs(ahead) > acc["minimax"][1] + acc[best][1]
    ce, gated, fixed = kinds["ce"], kinds["lsg"], kinds["lsg-fixed"]
    units = gated["members"][0]["meta"]["num_features"]
    share = gated["monopolised"] / units
    ratio = {kind: kinds[kind]["c_ic"] / ce["c_ic"] for kind in ("lsg", "lsg-fixed")}
    return "\n".join([
        f"- **Minimax is as accurate as the output regularisers or more (minimax paper Table 1: ResNet-18 on "
        f"CIFAR-10, minimax 95.33 +- 0.12 against 94.94-95.11)** "
        f"{'matches' if ahead >= 0 else '**does not hold**'}: minimax {100 * acc['minimax'][0]:.2f} +- "
        f"{100 * acc['minimax'][1]:.2f}, the best of the others ({SEED_KINDS[best]}) {100 * acc[best][0]:.2f} +- "
        f"{100 * acc[best][1]:.2f}: minimax {'ahead' if ahead >= 0 else 'behind'} by {100 * abs(ahead):.2f} points, "
        f"{'more' if beyond else 'less'} than the two spreads together.",
        f"- **LSG keeps CE's accuracy and cross-entropy and lowers Phi (LSG paper Table 1: 0.9062 vs 0.9046, "
        f"Phi 0.2203 vs 0.8234)** {'matches' if gated['phi'] < ce['phi'] and gated['accuracy'] >= ce['accuracy'] - 0.01 else '**does not hold**'}: "
        f"accuracy {gated['accuracy']:.4f} vs {ce['accuracy']:.4f}, test CE {gated['nll']:.4f} vs {ce['nll']:.4f}, "
        f"Phi {gated['phi']:.4f} vs {ce['phi']:.4f}.",
        f"- **Each class monopolises about 10% of the units (LSG paper Sec. 4.3: 6 of ResNet-20's 64, over 20 "
        f"models)** {'matches' if 0.05 <= share <= 0.15 else '**does not hold**'}: {gated['monopolised']:.1f} of "
        f"{units} a class on average over {gated['seeds']} LSG models (sample std of the models' means "
        f"{gated['monopolised_spread'] or 0:.1f}), whose trained gates' density is {gated['gate_density']:.3f} "
        f"against its target of {TARGET_DENSITY} (a gate that has not grown sparse gives no unit to one class alone).",
        f"- **Inter-class filter correlation under LSG is about half of STD's (LSG paper Table 2, ResNet-20: "
        f"0.1022 vs 0.1648, a ratio of 0.62)** "
        + (f"cannot tell: STD's C_IC is {ce['c_ic']:.4f}, no correlation to halve (the fixed gate's "
           f"{fixed['c_ic']:.4f}, the trained gate's {gated['c_ic']:.4f})." if ce["c_ic"] < NO_CORRELATION else
           f"{'matches' if ratio['lsg-fixed'] <= 0.7 else '**does not hold**'} for the fixed gate the paper used "
           f"there: C_IC {fixed['c_ic']:.4f} vs {ce['c_ic']:.4f} (ratio {ratio['lsg-fixed']:.2f}); the trained "
           f"gate's is {gated['c_ic']:.4f} (ratio {ratio['lsg']:.2f})."),
    ])


def seeds_figure(kinds: dict[str, dict]) -> None:
    """Fig. 7 as the paper draws it: the filter correlation matrix of a CE and a fixed-gate LSG
    model (seed MATRIX_SEED, ordered by the gate's classes), and (e) the share of entries above a
    threshold, mean over seeds, for CE, LSG and the fixed gate."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    for ax, kind in zip(axes, ("ce", "lsg-fixed")):
        matrix = next(m["filters"]["matrix"] for m in kinds[kind]["members"] if m["filters"]["matrix"] is not None)
        shown = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=f"{SEED_KINDS[kind]}, seed {MATRIX_SEED}", xticks=[], yticks=[])
    fig.colorbar(shown, ax=axes[1], fraction=0.046, label="correlation")
    for kind in [k for k in ("ce", "lsg", "lsg-fixed", "lsg-tight") if k in kinds]:
        members = kinds[kind]["members"]
        thresholds = members[0]["filters"]["thresholds"]
        curve = [statistics.fmean(m["filters"]["redundancy"][i] for m in members) for i in range(len(thresholds))]
        axes[2].plot(thresholds, curve, marker="o", label=SEED_KINDS[kind])
    axes[2].set(xlabel="threshold", ylabel="share of entries above it", title="(e) redundancy, mean over seeds")
    axes[2].legend(fontsize=8)
    save_figure(fig, "seeds.png", 120)
    plt.close(fig)


def seeds_body(models: list[dict]) -> str:
    """The section's table, figure and verdicts, or what to run where the study is not here."""
    kinds = by_kind(models)
    if not {"ce", "minimax", "lsg", "lsg-fixed"} <= set(kinds):
        return ("Not here: neither the study's checkpoints nor checkpoints/studies/seeds.json. "
                "`bash checkpoints/train_seeds.sh`, then `.venv/bin/python checkpoints/make_report.py`, fills this "
                "section.")
    seeds_figure(kinds)
    return f"{seeds_table(kinds)}\n\n![seeds](docs/reproduction/seeds.png)\n\n{seeds_claims(kinds)}"


def masking_table(models: list[dict]) -> str:
    lines = ["| model | masked class, gate's units (>= 0.5) | units per class (gate) | masked class, 5 influential units | "
             "other classes |", "|---|---|---|---|---|"]
    for m in models:
        gate, infl = m["masking"]["gate"], m["masking"]["influential"]
        lines.append(f"| {m['name']} | {gate['masked']:.3f} | {gate['units']:.1f} ({m['gate_source']} gate) | "
                     f"{infl['masked']:.3f} | {min(gate['others'], infl['others']):.3f} - "
                     f"{max(gate['others'], infl['others']):.3f} |")
    return "\n".join(lines)


def trajectory_table(models: list[dict]) -> str:
    epochs = sorted({1, 10, 20, 30, len(models[0]["trajectory"])})
    lines = ["| model | median SI at epoch " + ", ".join(map(str, epochs)) + " | NTE / log 9 at epoch "
             + ", ".join(map(str, epochs)) + " |", "|---|---|---|"]
    for m in models:
        at = {e["epoch"]: e for e in m["trajectory"]}
        lines.append(f"| {m['name']} | " + " / ".join(f"{at[e]['median_selectivity']:.2f}" for e in epochs) + " | "
                     + " / ".join(f"{at[e]['nontarget_fraction']:.2f}" for e in epochs) + " |")
    return "\n".join(lines)


def retrain_verdict(models: list[dict]) -> str:
    """Per model: how much of the decomposed head's gap to the full head one epoch recovers, or
    that there was no gap to recover (within 0.1 point)."""
    said = []
    for m in models:
        r = m["retrain"]
        gap = r["full"] - r["before"]
        said.append(f"{m['name']}: no gap to recover" if gap <= 0.001 else
                    f"{m['name']}: {(r['after'] - r['before']) / gap:.0%} of its gap recovered")
    recovered = all(m["retrain"]["after"] > m["retrain"]["before"] for m in models
                    if m["retrain"]["full"] - m["retrain"]["before"] > 0.001)
    return ("matches where there is a gap" if recovered else "**does not hold**") + " (" + "; ".join(said) + ")"


def influential_maps_figure(models: list[dict]) -> None:
    """Table 7's pictures for the CE/minimax/LSG trio: one class's three mean maps over its first
    test image, on one scale per model, drawn as the Ablations page draws them."""
    from core.data import dataset_image, view_of
    from core.render import overlays_on
    shown = [m for m in models if m["name"] in ("ce", "minimax", "lsg") and m.get("influential_maps")]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 3, figsize=(7.5, 2.6 * len(shown)), squeeze=False)
    for row, m in zip(axes, shown):
        result = m["influential_maps"]
        image, _ = dataset_image(m["view"]["dataset"], result["example"], view=view_of(m["view"]))
        for ax, picture, group in zip(row, overlays_on(image, result["maps"]), result["groups"]):
            ax.imshow(picture)
            ax.set_title(f"{m['name']}: {group}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    save_figure(fig, "influential_maps.png", 110)
    plt.close(fig)


def influential_maps_table(models: list[dict]) -> str:
    """Each model's mean activation of a class's influential, non-influential and all units on the
    class's own test images, averaged over the classes."""
    done = [m for m in models if m.get("influential_maps")]
    if not done:
        return "(not computed yet: `checkpoints/make_results.py`)"
    lines = ["| model | influential units | non-influential units | all units | non-influential / influential |",
             "|---|---|---|---|---|"]
    for m in done:
        means = m["influential_maps"]["mean_activation"]  # per class: all, influential, non-influential
        every, infl, non = (statistics.fmean(row[i] for row in means) for i in range(3))
        lines.append(f"| {m['name']} | {infl:.3f} | {non:.3f} | {every:.3f} | {non / infl:.1%} |")
    return "\n".join(lines)


def adversarial_table(models: list[dict]) -> str:
    """The LSG paper's Table 4 on the models it was computed for: AUC mean +- std a training size."""
    done = [m for m in models if m.get("adversarial")]
    if not done:
        return "(not computed yet: `checkpoints/make_results.py ce lsg`)"
    sizes = done[0]["adversarial"]["images_a_class"]
    lines = ["| model | " + " | ".join(f"AUC at {n} a class" for n in sizes) + " | attack success (test) |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for m in done:
        a = m["adversarial"]
        cells = " | ".join(f"{mean:.4f} ± {std:.4f}" for mean, std in zip(a["auc_mean"], a["auc_std"]))
        lines.append(f"| {m['name']} | {cells} | {a['attack_success_test']:.1%} |")
    return "\n".join(lines)


def adversarial_claim(ce: dict, lsg: dict) -> tuple[str, str, str]:
    """Table 4's claim, our AUCs beside it and a verdict: a detector that finds nearly every attacked
    image for both models cannot show which features make it easier."""
    claim = ("LSG's features make adversarial samples easier to detect (LSG paper Table 4: AUC 77.4 / 85.0 / "
             "86.9 vs CE 72.9 / 80.8 / 83.6 at 100 / 500 / 1000 images a class)")
    if not (ce.get("adversarial") and lsg.get("adversarial")):
        return claim, "not computed", "not computed"
    a, b = lsg["adversarial"]["auc_mean"], ce["adversarial"]["auc_mean"]
    ours = f"lsg {' / '.join(f'{x:.4f}' for x in a)} vs ce {' / '.join(f'{x:.4f}' for x in b)}"
    if min(a + b) >= 0.99:
        return claim, ours, "**cannot tell**: both detect almost every attacked image here"
    return claim, ours, "matches" if all(x > y for x, y in zip(a, b)) else "**does not hold**"


def claims_table(models: list[dict]) -> str:
    """Each target and claim, the figures behind it, and a verdict computed here."""
    by = {m["name"]: m for m in models}
    ce, mm, lsg, mx = by["ce"], by["minimax"], by["lsg"], by["maxnte"]
    si = {n: m["selectivity"]["median"] for n, m in by.items()}
    met = {True: "met", False: "**not met**"}
    noise_reversed = [m["name"] for m in models if m["noise_ablation"]["gaussian"]["influential"]
                      >= m["noise_ablation"]["gaussian"]["non_influential"]]
    largest = max(m["largest_overall_drop"] for m in models)
    rows = [
        ("CE test accuracy >= 92%", f"{ce['headline']['accuracy']:.2%}", met[ce["headline"]["accuracy"] >= 0.92]),
        ("minimax accuracy >= CE - 0.5 points (paper: minimax >= CE)",
         f"{mm['headline']['accuracy']:.2%} vs {ce['headline']['accuracy']:.2%} (floor {ce['headline']['accuracy'] - 0.005:.2%})",
         met[mm["headline"]["accuracy"] >= ce["headline"]["accuracy"] - 0.005] + ("" if mm["headline"]["accuracy"] >= ce["headline"]["accuracy"] else
                                                          "; below CE, unlike the paper's Table 1")),
        ("minimax median SI >= CE + 0.15", f"{si['minimax']:.3f} vs {si['ce']:.3f} ({si['minimax'] - si['ce']:+.3f})",
         met[si["minimax"] >= si["ce"] + 0.15]),
        ("minimax median SI >= 0.9 (paper Fig. 7: concentrated near 1)", f"{si['minimax']:.3f}", met[si["minimax"] >= 0.9]),
        ("minimax mean NTE >= 0.95 log 9 (paper Fig. 5)",
         f"{mm['nontarget_entropy']['fraction']:.3f} log 9 ({mm['nontarget_entropy']['mean']:.3f} nats)",
         met[mm["nontarget_entropy"]["fraction"] >= 0.95]),
        ("MaxNTE stalls near 2.12 nats, minimax reaches the bound (Fig. 5)",
         f"MaxNTE {mx['nontarget_entropy']['mean']:.3f}, minimax {mm['nontarget_entropy']['mean']:.3f} of "
         f"{mm['nontarget_entropy']['bound']:.3f}",
         "**does not hold**" if mm["nontarget_entropy"]["mean"] <= mx["nontarget_entropy"]["mean"] else
         "holds only narrowly: minimax is above MaxNTE by "
         f"{mm['nontarget_entropy']['mean'] - mx['nontarget_entropy']['mean']:.3f} nats"
         if mm["nontarget_entropy"]["mean"] - mx["nontarget_entropy"]["mean"] < 0.05 else "matches"),
        ("LSG Phi below CE's (paper Table 1: 0.22 vs 0.82)", f"{lsg['headline']['phi']:.4f} vs {ce['headline']['phi']:.4f}",
         met[lsg["headline"]["phi"] < ce["headline"]["phi"]]),
        ("the decomposed head retrained for one epoch recovers accuracy (ReLU+FC paper: 88.59% -> 91.51%, "
         "full 91.17%; here only the final layer is retrained)",
         "; ".join(f"{m['name']} {m['retrain']['before']:.2%} -> {m['retrain']['after']:.2%} (full "
                   f"{m['retrain']['full']:.2%})" for m in (ce, mm, lsg)),
         retrain_verdict([ce, mm, lsg])),
        ("selectivity is highest in the last layer, before the classifier (RS paper Fig. 3a); median SI "
         "of ResNet-20's nine blocks, first to last",
         "; ".join(f"{m['name']} " + ", ".join(f"{v:.2f}" for v in m["layer_medians"]) for m in (ce, mm, lsg)),
         "matches" if all(m["layer_medians"] and m["layer_medians"][-1] == max(m["layer_medians"]) for m in (ce, mm, lsg))
         else "**does not hold**"),
        ("each class monopolises about 10% of the units under LSG (paper Sec. 4.3: 6 of ResNet-20's 64, "
         "counted over 20 models; here the one bundled LSG model's trained gate)",
         f"{min(lsg['monopolised'])}-{max(lsg['monopolised'])} units a class, mean "
         f"{sum(lsg['monopolised']) / len(lsg['monopolised']):.1f} of {len(lsg['selectivity']['per_unit'])}",
         "matches" if 0.05 <= sum(lsg["monopolised"]) / len(lsg["monopolised"]) / len(lsg["selectivity"]["per_unit"]) <= 0.15
         else "**differs**"),
        ("LSG has fewer filter pairs correlated above 0.3 than CE (LSG paper Fig. 7e)",
         f"{lsg['redundancy_03']:.1%} vs {ce['redundancy_03']:.1%} of pairs",
         "matches" if lsg["redundancy_03"] < ce["redundancy_03"] else "**does not hold**"),
        ("CE, label smoothing, confidence penalty less selective than minimax (Fig. 7)",
         ", ".join(f"{n} {si[n]:.3f}" for n in ("ce", "label_smoothing", "confidence_penalty") if n in si)
         + f" vs {si['minimax']:.3f}",
         "matches" if all(si[n] < si["minimax"] for n in ("ce", "label_smoothing", "confidence_penalty") if n in si)
         else "**does not hold**"),
        ("influential features, k = 5: r_A ~ 0.97", f"{min(m['headline']['r_a'] for m in models):.3f} - "
         f"{max(m['headline']['r_a'] for m in models):.3f}", "matches" if min(m["headline"]["r_a"] for m in models) >= 0.95 else "**lower**"),
        ("noise on influential features hurts more than on the rest (paper: 48.97% vs 82.24%)",
         "; ".join(f"{m['name']} {m['noise_ablation']['gaussian']['influential']:.1%} vs "
                   f"{m['noise_ablation']['gaussian']['non_influential']:.1%}" for m in models),
         "matches" if not noise_reversed else f"matches except **{', '.join(noise_reversed)}**"),
        ("single-unit ablation: overall accuracy barely moves, single classes drop",
         f"largest overall drop of any unit {largest:.2%}; largest class drop "
         f"{max(max(m['max_class_drop']) for m in models):.1%}", "matches" if largest <= 0.01 else "**does not hold**"),
        ("the gated path, each class's logit through its own gate row, classifies as well as the plain head "
         "(CSG paper Table 1: 0.8809 and 0.8809)",
         "; ".join(f"{m['name']} {m['gated_path']['accuracy']:.2%} vs {m['gated_path']['plain_accuracy']:.2%}"
                   for m in (ce, mm, lsg)),
         "matches" if all(abs(m["gated_path"]["accuracy"] - m["gated_path"]["plain_accuracy"]) <= 0.005
                          for m in (ce, mm, lsg)) else "**differs**"),
        adversarial_claim(ce, lsg),
        ("LSG's masked class disappears, CE's stays (LSG paper Fig. 5; 5 influential units masked)",
         f"lsg {lsg['masking']['influential']['masked']:.3f}, ce {ce['masking']['influential']['masked']:.3f}; "
         f"with the gate: lsg {lsg['masking']['gate']['masked']:.3f}, ce {ce['masking']['gate']['masked']:.3f}",
         "matches with influential units; with the post-hoc gate CE loses its class too"
         if lsg["masking"]["influential"]["masked"] < ce["masking"]["influential"]["masked"] else "**does not hold**"),
    ]
    return "\n".join(["| claim / target | ours | verdict |", "|---|---|---|"]
                     + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def vit_table(cnns: list[dict], vits: list[dict]) -> str:
    """The ViT trio beside the CNN trio: specificity (median SI, Phi, NTE) and its cost in accuracy."""
    lines = ["| objective | ViT accuracy (vs its CE) | CNN accuracy (vs its CE) | ViT median SI | CNN median SI | "
             "ViT Phi | CNN Phi | ViT NTE / log 9 | CNN NTE / log 9 |", "|---|---|---|---|---|---|---|---|---|"]
    cnn = {m["name"]: m for m in cnns}
    vit = {m["name"].removeprefix("vit_"): m for m in vits}
    for name in ("ce", "minimax", "lsg"):
        v, c = vit[name], cnn[name]
        lines.append(f"| {name} | {v['headline']['accuracy']:.2%} ({v['headline']['accuracy'] - vit['ce']['headline']['accuracy']:+.2%}) | "
                     f"{c['headline']['accuracy']:.2%} ({c['headline']['accuracy'] - cnn['ce']['headline']['accuracy']:+.2%}) | "
                     f"{v['selectivity']['median']:.3f} | {c['selectivity']['median']:.3f} | {v['headline']['phi']:.4f} | "
                     f"{c['headline']['phi']:.4f} | {v['nontarget_entropy']['fraction']:.3f} | {c['nontarget_entropy']['fraction']:.3f} |")
    return "\n".join(lines)


def vit_verdict(cnns: list[dict], vits: list[dict]) -> str:
    """The answer in words, each clause decided by the numbers."""
    cnn = {m["name"]: m for m in cnns}
    vit = {m["name"].removeprefix("vit_"): m for m in vits}
    si = {k: m["selectivity"]["median"] for k, m in vit.items()}
    cnn_si = {k: cnn[k]["selectivity"]["median"] for k in vit}
    phi = {k: m["headline"]["phi"] for k, m in vit.items()}
    cost = {k: vit[k]["headline"]["accuracy"] - vit["ce"]["headline"]["accuracy"] for k in ("minimax", "lsg")}
    minimax = ("yes" if si["minimax"] > si["ce"] + 0.05 else "no") + \
        f": the ViT's median SI goes {si['ce']:.3f} -> {si['minimax']:.3f} (the CNN's {cnn_si['ce']:.3f} -> {cnn_si['minimax']:.3f})"
    gate = ("yes" if phi["lsg"] < phi["ce"] else "no") + \
        f": the ViT's Phi goes {phi['ce']:.4f} -> {phi['lsg']:.4f} (the CNN's {cnn['ce']['headline']['phi']:.4f} -> {cnn['lsg']['headline']['phi']:.4f})"
    gap = vit["ce"]["headline"]["accuracy"] - cnn["ce"]["headline"]["accuracy"]
    return (f"- **Does the minimax loss make a ViT's units class-specific?** {minimax}.\n"
            f"- **Does LSG make its filters less ambiguous?** {gate}.\n"
            f"- **At what cost?** Accuracy against the ViT's own CE: minimax {100 * cost['minimax']:+.2f} points, "
            f"LSG {100 * cost['lsg']:+.2f} points; the ViT's CE is {100 * gap:+.2f} points from the CNN's CE (a shorter "
            "schedule on a CPU, and no convolutional prior).")


def main():
    store = Store()
    models = [analyse(ROOT / "checkpoints" / f"{name}.pt", store) for name in BUNDLED
              if (ROOT / "checkpoints" / f"{name}.pt").exists()]
    # p_t on the earlier 10-epoch schedule: the runs that chose the bundle's p_t
    full = sorted((analyse(p, store, faithfulness=False) for p in (ROOT / "checkpoints" / "full_pt").glob("*.pt")),
                  key=lambda r: -r["p_t"])
    vits = [analyse(ROOT / "checkpoints" / f"{name}.pt", store, faithfulness=False) for name in VIT
            if (ROOT / "checkpoints" / f"{name}.pt").exists()]
    controls = [analyse(ROOT / "checkpoints" / "controls" / f"{name}.pt", store, faithfulness=False) for name in CONTROLS
                if (ROOT / "checkpoints" / "controls" / f"{name}.pt").exists()]
    swept = study("sweeps", store, seed_figures)
    sweeps = sweep_points(swept)
    seeds = study("seeds", store, seed_figures)
    rs = study("rs", store, rs_figures)
    # the bundle's CE beside the controls: the same questions on a model trained to convergence
    reference = [{**m, "name": f"{m['name']} (bundled, {m['epochs']} epochs)"} for m in models if m["name"] == "ce"]
    plots(models, full)
    influential_maps_figure(models)
    if {"p_t", "lam"} <= set(sweeps):
        sweep_figure(sweeps)
    (OUT / "figures.json").write_text(json.dumps({"bundled": models, "full_pt": full, "vit": vits, "controls": controls,
                                                "sweeps": {k: v.points for k, v in sweeps.items()}}, indent=1))
    tables = {"results_table": table(models, "model"), "detail_table": detail_table(models),
              "noise_table": noise_table(models), "claims_table": claims_table(models),
              "masking_table": masking_table(models), "adversarial_table": adversarial_table(models),
              "influential_maps_table": influential_maps_table(models), "maps_class": MAPS_CLASS, "trajectory_table": trajectory_table(models),
              "faithfulness_table": faithfulness_table(models), "pt_table": table(full, "10-epoch schedule"),
              "epochs": models[0]["epochs"],
              "vit_table": vit_table(models, vits) if len(vits) == len(VIT) else "(the ViT trio is not trained yet)",
              "vit_verdict": vit_verdict(models, vits) if len(vits) == len(VIT) else "",
              "vit_epochs": vits[0]["epochs"] if vits else 0,
              "controls_table": controls_table([*controls, *reference]) if len(controls) == len(CONTROLS) else "(the controls are not trained yet)",
              "sweeps_body": sweeps_body(sweeps), "seeds_body": seeds_body(seeds), "rs_body": rs_body(rs),
              "retrained_alike": retrained_alike(swept, seeds, rs),
              "controls_verdict": controls_verdict([*controls, *reference]) if len(controls) == len(CONTROLS) else ""}
    TARGET.write_text(TEMPLATE.read_text().format_map(tables))
    print(f"wrote {TARGET.relative_to(ROOT)} and {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
