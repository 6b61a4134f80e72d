"""The bundled models' figures (checkpoints/*.pt, the ViTs, the p_t runs and the controls: one
`analyse` each) and the tables and claims REPRODUCTION.md builds from them."""
from __future__ import annotations

import statistics
from pathlib import Path

import torch

from core import lsg
from core.analysis.engine import REPORT, Analyzer, summary
from core.store import Store

from .common import markdown_table, near

MAPS_CLASS = "Sneaker"  # the class drawn in influential_maps.png
BUNDLED = ["ce", "minimax", "lsg", "maxnte", "label_smoothing", "confidence_penalty"]
VIT = ["vit_ce", "vit_minimax", "vit_lsg"]  # the same objectives on our ViT (issue 30)
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


def table(rows: list[dict], label: str) -> str:
    header = [label, "accuracy", "test CE (nats)", "median SI", "dead", "NTE (nats)", "NTE / log 9", "Phi", "density",
              "single-class units", "r_A (k=5)", "noise infl. / non-infl.", "rho(drop, SI)", "rho(drop, L1)", "C_IC"]
    return markdown_table(header, [
        [r["name"], f"{r['headline']['accuracy']:.4f}", f"{r['test_ce']:.4f}", f"{r['selectivity']['median']:.3f}",
         r["selectivity"]["dead"], f"{r['nontarget_entropy']['mean']:.3f}", f"{r['nontarget_entropy']['fraction']:.3f}",
         f"{r['headline']['phi']:.3f}", f"{r['gate_density']:.3f}", f"{r['single_class_fraction']:.2f}",
         f"{r['headline']['r_a']:.3f}",
         f"{r['noise_ablation']['gaussian']['influential']:.4f} / {r['noise_ablation']['gaussian']['non_influential']:.4f}",
         f"{r['headline']['rho_drop_selectivity']:.3f}", f"{r['headline']['rho_drop_l1']:.3f}", f"{r['headline']['c_ic']:.4f}"]
        for r in rows])


def faithfulness_table(models: list[dict]) -> str:
    maps = list(models[0]["faithfulness"])
    names = [models[0]["faithfulness"][n]["label"].split(" (")[0] for n in maps]
    return markdown_table(["model: measure", *names], [
        [f"{m['name']}: {measure}",
         *(f"{m['faithfulness'][n][measure]['mean']:.3f} ± {m['faithfulness'][n][measure]['std']:.3f}" for n in maps)]
        for measure in ("deletion", "insertion", "road_morf", "road_lerf") for m in models])


def noise_table(models: list[dict]) -> str:
    return markdown_table(["model", "N(0,1) (as the paper)", "noise matched to each unit's mean/std", "zero"], [
        [m["name"], *(f"{m['noise_ablation'][mode]['influential']:.3f} / {m['noise_ablation'][mode]['non_influential']:.3f}"
                      for mode in ("gaussian", "matched", "zero"))] for m in models])


def detail_table(models: list[dict]) -> str:
    header = ["model", "SI q1 / median / q3", "units at SI >= 0.9", "mean / largest overall drop of one unit",
              "largest drop of one class", "rho(overall drop, SI)", "rho(drop, filter L1)"]
    rows = []
    for m in models:
        si, rho_filter = m["selectivity"], m["headline"]["rho_drop_filter_l1"]  # quartiles: the JSON's (linear)
        rows.append([m["name"], f"{si['q1']:.3f} / {si['median']:.3f} / {si['q3']:.3f}",
                     f"{sum(v >= 0.9 for v in si['per_unit'])} of {len(si['per_unit'])}",
                     f"{m['mean_overall_drop']:.2%} / {m['largest_overall_drop']:.2%}", f"{max(m['max_class_drop']):.1%}",
                     f"{m['rho_overall_si']:.3f}", "-" if rho_filter is None else f"{rho_filter:.3f}"])
    return markdown_table(header, rows)


def masking_table(models: list[dict]) -> str:
    header = ["model", "masked class, gate's units (>= 0.5)", "units per class (gate)", "masked class, 5 influential units",
              "other classes"]
    rows = []
    for m in models:
        gate, infl = m["masking"]["gate"], m["masking"]["influential"]
        rows.append([m["name"], f"{gate['masked']:.3f}", f"{gate['units']:.1f} ({m['gate_source']} gate)",
                     f"{infl['masked']:.3f}",
                     f"{min(gate['others'], infl['others']):.3f} - {max(gate['others'], infl['others']):.3f}"])
    return markdown_table(header, rows)


def trajectory_table(models: list[dict]) -> str:
    epochs = sorted({1, 10, 20, 30, len(models[0]["trajectory"])})
    at = lambda m: {e["epoch"]: e for e in m["trajectory"]}  # noqa: E731
    listed = ", ".join(map(str, epochs))
    return markdown_table(["model", f"median SI at epoch {listed}", f"NTE / log 9 at epoch {listed}"], [
        [m["name"], " / ".join(f"{at(m)[e]['median_selectivity']:.2f}" for e in epochs),
         " / ".join(f"{at(m)[e]['nontarget_fraction']:.2f}" for e in epochs)] for m in models])


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


def influential_maps_table(models: list[dict]) -> str:
    """Each model's mean activation of a class's influential, non-influential and all units on the
    class's own test images, averaged over the classes."""
    done = [m for m in models if m.get("influential_maps")]
    if not done:
        return "(not computed yet: `checkpoints/make_results.py`)"
    rows = []
    for m in done:
        means = m["influential_maps"]["mean_activation"]  # per class: all, influential, non-influential
        every, infl, non = (statistics.fmean(row[i] for row in means) for i in range(3))
        rows.append([m["name"], f"{infl:.3f}", f"{non:.3f}", f"{every:.3f}", f"{non / infl:.1%}"])
    return markdown_table(["model", "influential units", "non-influential units", "all units",
                           "non-influential / influential"], rows)


def adversarial_table(models: list[dict]) -> str:
    """The LSG paper's Table 4 on the models it was computed for: AUC mean +- std a training size."""
    done = [m for m in models if m.get("adversarial")]
    if not done:
        return "(not computed yet: `checkpoints/make_results.py ce lsg`)"
    sizes = done[0]["adversarial"]["images_a_class"]
    return markdown_table(["model", *(f"AUC at {n} a class" for n in sizes), "attack success (test)"], [
        [m["name"], *(f"{mean:.4f} ± {std:.4f}" for mean, std in zip(m["adversarial"]["auc_mean"], m["adversarial"]["auc_std"])),
         f"{m['adversarial']['attack_success_test']:.1%}"] for m in done])


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
         "matches" if near(sum(lsg["monopolised"]) / len(lsg["monopolised"]) / len(lsg["selectivity"]["per_unit"]), 0.10)
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
    return markdown_table(["claim / target", "ours", "verdict"], rows)
