"""Selectivity: SI histograms of all models overlaid, dead units, non-target entropy against
log(C-1), and a PCA scatter of the features."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import altair as alt
import pandas as pd
import streamlit as st

from core.analysis.iam import METHOD_LABELS, METHODS
from core.analysis.layers import layer_row
from core.charts import epoch_axis, lines_coincide, model_colour, selectivity_density_chart, selectivity_histogram_chart
from core.headline import LABELS, figure_columns, format_number
from ui import common


def render():
    st.title("Selectivity")
    models = common.require_models()
    selectivity_section(models)
    substitution_section(models)
    layer_section(models)
    training_section(models)
    pca_section(models)


def selectivity_section(models: list[dict]) -> None:
    """Unit selectivity and non-target entropy, model beside model."""
    labels = [m["label"] for m in models]
    si_rows, summary, entropy_rows = [], [], []
    for meta in models:
        sel = common.analysis(meta, "selectivity")
        nte = common.analysis(meta, "nontarget_entropy")
        for unit, (value, dead) in enumerate(zip(sel["per_unit"], sel["dead"])):
            if not dead:
                si_rows.append({"model": meta["label"], "unit": unit, "selectivity": value})
        summary.append({"model": meta["label"], "method": meta["method"],
                        **figure_columns({"selectivity": sel, "nontarget_entropy": nte}),
                        "mean SI": sel["mean"], "units": len(sel["per_unit"]), "bound log(C-1)": nte["bound"]})
        entropy_rows.append({"model": meta["label"], "entropy": nte["mean"], "bound": nte["bound"]})
    si = pd.DataFrame(si_rows)
    kinds = ["Density", "Histogram"]
    kind = st.radio("Show", kinds, horizontal=True, **common.kept("sel_kind", kinds[0], kinds),
                    help="Density: a Gaussian kernel density (Scott's bandwidth) reflected at 0 and 1, so units "
                         "piled near an SI of 1 are not drawn as a density falling off at the edge")
    if kind == "Density":
        chart = selectivity_density_chart(si, labels)
    else:
        chart = selectivity_histogram_chart(si, labels)
    common.chart(chart.properties(height=300, title="Unit selectivity (dead units excluded)"), "selectivity", "sel_hist")
    table = pd.DataFrame(summary)
    st.dataframe(table, hide_index=True, column_config=common.number_columns(
        [column for column in table.columns if column not in ("model", "method", "units")]))
    common.download_csv(table, "selectivity-summary", key="sel_csv_summary", label="CSV: one row per model")
    common.download_csv(si, "selectivity-per-unit", key="sel_csv_units", label="CSV: one row per unit")

    entropy = pd.DataFrame(entropy_rows)
    bars = alt.Chart(entropy).mark_bar().encode(x=alt.X("model:N", title=None, sort=labels,
                                                          axis=alt.Axis(labelAngle=0, labelLimit=160)),
                                                y=alt.Y("entropy:Q", title="nats"), color=model_colour(labels),
                                                tooltip=["model", alt.Tooltip("entropy:Q", format=".3f")])
    rule = alt.Chart(entropy.head(1)).mark_rule(color="black", strokeDash=[4, 4]).encode(y="bound:Q")
    common.chart((bars + rule).properties(height=260, title="Mean non-target entropy; dashed: the bound log(C-1)"),
                 "nontarget-entropy", "sel_entropy")


def substitution_section(models: list[dict]) -> None:
    """Representative Substitution against selectivity (RS paper, Fig. 1), where IAM is computed:
    selective units tend to be ones other units substitute for."""
    st.subheader("Representative Substitution against selectivity")
    penultimate = "penultimate units"
    left, right = st.columns(2)
    chosen = left.selectbox("Units of", [penultimate, *common.layer_names(models)], key="sel_rs_layer", help="the RS paper computes RS layer by layer "
                            "(Fig. 3b); a layer's channels are its units, each map's mean its activation")
    method = right.radio("Each unit's image by", METHODS, format_func=METHOD_LABELS.get, key="sel_rs_method",
                         help="IAM, the RS paper's; plain activation maximisation, the baseline its Fig. 1 draws beside it")
    layer = "" if chosen == penultimate else chosen
    in_layer = [m for m in models if not layer or layer in common.depth_layers(m)]
    suited = common.on_request(in_layer, "iam", f"Compute {method.upper()} and RS of the {chosen} for {{count}} model(s) "
                               "(about a minute each on a CPU)", "sel_iam", layer=layer, method=method)
    rows, rhos = [], []
    for meta in suited:
        iam = common.stored_results(meta).cached("iam", layer=layer, method=method)
        if iam is None:
            continue
        sel = (common.analysis(meta, "selectivity") if not layer
               else layer_row(common.stored_results(meta).cached("layer_selectivity"), layer))
        if not sel.get("per_unit"):
            continue
        dead = sel["dead"] if not layer else [False] * len(sel["per_unit"])
        rows += [{"model": meta["label"], "unit": k, "selectivity": si, "RS": rs}
                 for k, (si, rs, gone) in enumerate(zip(sel["per_unit"], iam["rs"], dead)) if not gone]
        rhos.append(f"{meta['label']} rho(RS, SI) {format_number(iam['spearman_rs_selectivity'], '.2f')}"
                    + (f", rho(RS, largest class drop) {format_number(iam['spearman_rs_drop'], '.2f')}" if not layer else ""))
    if not rows:
        st.caption("RS needs each unit's IAM image: computed on request (the button above).")
        return
    labels = [m["label"] for m in models]
    frame = pd.DataFrame(rows)
    common.chart(alt.Chart(frame).mark_circle(size=40, opacity=0.7).encode(
        x=alt.X("selectivity:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("RS:Q", title="RS (Eq. 4)"),
        color=model_colour(labels), tooltip=["model", "unit", alt.Tooltip("selectivity:Q", format=".3f"),
                                             alt.Tooltip("RS:Q", format=".3f")]
    ).properties(height=280, title=f"RS against selectivity, {chosen}"), "rs-vs-selectivity", "sel_rs")
    st.caption(common.plain("; ".join(rhos)) + ". RS: the units more active than a unit on its own IAM image, over "
               "all units of the layer (Spearman rhos; the drop is the unit's largest class drop when zeroed).")
    common.download_csv(frame, "rs-vs-selectivity", key="sel_csv_rs")


def layer_section(models: list[dict]) -> None:
    """Selectivity of every depth layer's channels (RS paper, Fig. 3b), on request: one more
    forward pass over the test images."""
    st.subheader("Selectivity by layer")
    suited = common.on_request(models, "layer_selectivity", "Compute selectivity in every layer of {count} model(s) "
                               "(one forward pass over the test images each)", "sel_layers")
    rows, order = [], []
    for meta in suited:
        result = common.stored_results(meta).cached("layer_selectivity")
        for depth, row in enumerate((result or {}).get("layers", [])):
            order.append(row["layer"])
            if row["median"] is not None:
                rows.append({"model": meta["label"], "layer": row["layer"], "depth": depth, "median SI": row["median"],
                             "q1": row["q1"], "q3": row["q3"], "units": row["units"], "dead": row["dead"]})
    if not rows:
        st.caption("Not computed yet for these models." if suited else "No model here has units of one sign.")
        return
    frame, labels = pd.DataFrame(rows), [m["label"] for m in models]
    layers = list(dict.fromkeys(order))
    x = alt.X("layer:N", sort=layers, title="layer (shallow to deep)")
    base = alt.Chart(frame).encode(x=x, color=model_colour(labels))
    common.chart((base.mark_rule().encode(y=alt.Y("q1:Q", title="SI (median, q1-q3)",
                                                   scale=alt.Scale(domain=[0, 1])), y2="q3:Q")
                  + base.mark_line(point=True).encode(y="median SI:Q",
                                                      tooltip=["model", "layer", "units", "dead", "median SI", "q1", "q3"]))
                 .properties(height=340, title="Selectivity of each layer's channels"), "selectivity-by-layer", "sel_layers_chart")
    st.caption("Each channel of a layer is a unit, its activation the mean of its map; dead channels are left out. "
               "The last layer's channels are the penultimate units above.")


def training_section(models: list[dict]) -> None:
    """The figures epoch by epoch, from each run's snapshots."""
    st.subheader("Over training")
    labels = [m["label"] for m in models]
    rows, without = [], []
    for meta in models:
        history = common.analysis(meta, "trajectory")
        if not history["available"]:
            without.append(meta["label"])
            continue
        rows += [{"model": meta["label"], **epoch} for epoch in history["epochs"]]
    if rows:
        over = pd.DataFrame(rows)
        figures = {key: LABELS[key] for key in ("median_selectivity", "accuracy", "nontarget_fraction", "dead_units")}
        present = [(key, title) for key, title in figures.items() if key in over]
        for column, (key, title) in zip(common.grid(len(present), 2), present):  # four a row were too small
            line = alt.Chart(over).mark_line(point=True).encode(
                x=epoch_axis(),
                y=alt.Y(f"{key}:Q", title=title, axis=alt.Axis(format="d" if key == "dead_units" else "~g")),
                color=model_colour(labels),
                tooltip=["model", "epoch", alt.Tooltip(f"{key}:Q", format=".3f")]).properties(height=240, title=title)
            common.chart(line, f"over-training-{key}", f"sel_over_{key}", column)
            if lines_coincide(over, "epoch", key):
                column.caption("Every model has the same values here: their lines lie on one another.")
        common.download_csv(over, "over-training", key="sel_csv_over")
    if without:
        st.caption(f"No per-epoch snapshots in: {common.plain(', '.join(without))} (trained before the trainer kept them).")


def pca_section(models: list[dict]) -> None:
    """The test features in two of three principal components, one plot per model, for the classes
    asked (the minimax paper's Fig. 8 shows a few)."""
    st.subheader("PCA of the features")
    names = models[0]["class_names"]
    left, right = st.columns([1, 2])
    pairs = ["PC1 and PC2", "PC1 and PC3", "PC2 and PC3"]
    pair = left.radio("Components", pairs, horizontal=True, **common.kept("sel_pca_pair", pairs[0], pairs))
    first, second = (int(part[-1]) - 1 for part in pair.split(" and "))
    chosen = right.multiselect("Classes", names, help="none chosen: every class; the first model's class names",
                               **common.kept("sel_pca_classes", []))
    columns = common.grid(len(models), 2)  # three a row squeezed each plot to a sliver beside its legend
    for i, meta in enumerate(models):
        label = meta["label"]
        pca = common.analysis(meta, "pca")
        count = len(pca["coords"][0])
        frame = pd.DataFrame(pca["coords"], columns=[f"PC{j + 1}" for j in range(count)])
        frame["class"] = [meta["class_names"][c] for c in pca["labels"]]
        frame["index"] = pca["index"]
        if chosen:
            frame = frame[frame["class"].isin(chosen)]
        x, y = (f"PC{j + 1}" for j in (first, second))
        if max(first, second) >= count:
            column = columns[i]
            column.caption(common.plain(f"{label}: only {count} component(s)"))
            continue
        explained = ", ".join(f"PC{j + 1} {pca['explained'][j]:.0%}" for j in (first, second))
        domain = chosen or meta["class_names"]
        scatter = alt.Chart(frame).mark_circle(size=10, opacity=0.7).encode(
            x=f"{x}:Q", y=f"{y}:Q",
            color=alt.Color("class:N", scale=alt.Scale(scheme="tableau10" if len(domain) <= 10 else "category20",
                                                       domain=domain)),
            tooltip=["class", "index"]).properties(height=340, title=f"{label}: {explained}")
        column = columns[i]
        common.chart(scatter.interactive(), f"{label}-pca", f"sel_pca_{i}", column)
        with column:
            common.download_csv(frame, f"{label}-pca", key=f"sel_csv_pca_{i}")


common.guarded(render)
