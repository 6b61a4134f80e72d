"""Representative Substitution layer by layer (RS paper Figs. 1, 3, 5): each layer's units' SI and RS
under IAM and AM, and the paper's readings decided on them."""
from __future__ import annotations

import statistics

import torch

from core.analysis.engine import Analyzer
from core.analysis.iam import METHODS
from core.analysis.layers import layer_row
from core.analysis.selectivity import quartiles

from .common import markdown_table, plt, save_figure

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
    number = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    header = ["network", "layer", "units", "median SI", "RS (IAM): median / IQR / share 0", "rho(RS, SI), IAM",
              "RS (AM): median / IQR", "rho(RS, SI), AM", "rho(RS, class drop)"]
    return markdown_table(header, [
        [r["network"], r["layer"], r["units"], f"{r['median_si']:.3f}",
         f"{r['iam']['median']:.3f} / {r['iam']['iqr']:.3f} / {r['iam']['zero']:.0%}", number(r["iam"]["rho"]),
         "—" if r.get("am") is None else f"{r['am']['median']:.3f} / {r['am']['iqr']:.3f}",
         number(r["am"]["rho"]) if r.get("am") else "—", number(r["rho_drop"])] for r in rows])


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
