"""Ablations: influential-feature sets, r_A against k, noise/zero ablation, the single-unit
drop heatmap and drop against selectivity. Clicking a unit opens its page."""
import altair as alt
import pandas as pd
import streamlit as st

from ui import common
from core.charts import heatmap


def open_unit_from(event, model_label: str) -> None:
    """A click on a unit -> the unit page, with the model and unit in the URL."""
    unit = common.picked_unit(event)
    if unit is not None:
        st.switch_page("pages/unit.py", query_params={"model": model_label, "unit": unit})


def render():
    st.title("Ablations")
    models = common.require_models()

    st.subheader("Influential features (k1 = k2 = 5)")
    sweep_rows, noise_rows = [], []
    for meta in models:
        infl = common.analysis(meta, "influential")
        sweep_rows += [{"model": meta["label"], **row} for row in infl["sweep"]]
        noise = common.analysis(meta, "noise_ablation")
        for mode in ("gaussian", "matched", "zero"):
            for which in ("influential", "non_influential"):
                noise_rows.append({"model": meta["label"], "replacement": mode,
                                   "features replaced": which.replace("_", "-"), "accuracy": noise[mode][which],
                                   "spread (std)": noise[mode].get(f"{which}_std"), "seeds": noise[mode].get("seeds")})
    with st.expander("Influential sets per class", expanded=False):
        for meta in models:
            infl = common.analysis(meta, "influential")
            frame = pd.DataFrame({"class": meta["class_names"], "units": [", ".join(map(str, s)) for s in infl["sets"]]})
            st.markdown(f"**{common.plain(meta['label'])}** — A_d {infl['A_d']:.4f}, A_f {infl['A_f']:.4f}, r_A {infl['r_A']:.3f}")
            st.dataframe(frame, hide_index=True)
    sweep = pd.DataFrame(sweep_rows)
    common.chart(alt.Chart(sweep).mark_line(point=True).encode(
        x=alt.X("k:Q", scale=alt.Scale(type="log", base=2), title="k (= k1 = k2)"),
        y=alt.Y("r_A:Q", title="r_A = A_d / A_f"), color="model:N", tooltip=["model", "k", "A_d", "r_A"]
    ).properties(height=260, title="Decomposed accuracy ratio against k"), "influential-sweep", "abl_sweep")
    common.download_csv(sweep, "influential-sweep", key="abl_csv_sweep")

    noise = pd.DataFrame(noise_rows)
    common.chart(alt.Chart(noise).mark_bar().encode(
        x=alt.X("features replaced:N", title=None), y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color="features replaced:N", column=alt.Column("replacement:N"), row=alt.Row("model:N"),
        tooltip=["model", "replacement", "features replaced", alt.Tooltip("accuracy:Q", format=".3f"),
                 alt.Tooltip("spread (std):Q", format=".3f"), "seeds"]
    ).properties(height=120, width=120, title="Noise ablation (mean over seeds; spread in the tooltip and CSV)"),
        "noise-ablation", "abl_noise", width="content")
    common.download_csv(noise, "noise-ablation", key="abl_csv_noise")

    st.subheader("Single-unit ablation")
    label = st.selectbox("Model", [m["label"] for m in models], key="abl_model")
    meta = next(m for m in models if m["label"] == label)
    abl = common.analysis(meta, "unit_ablation")
    sel = common.analysis(meta, "selectivity")
    classes = meta["class_names"]
    units = list(range(len(abl["drop"])))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("largest overall drop", f"{abl['largest_overall_drop']:.2%}")
    c2.metric("Spearman(max class drop, SI)", f"{abl['spearman_selectivity']:.3f}")
    c3.metric("Spearman(max class drop, fc column L1)", f"{abl['spearman_l1']:.3f}",
              help="L1 norm of the unit's outgoing weights W[:, k]")
    c4.metric("Spearman(max class drop, filter L1)",
              "-" if abl.get("spearman_filter_l1") is None else f"{abl['spearman_filter_l1']:.3f}",
              help="L1 norm of the unit's incoming last-conv filter (the pruning literature's usual meaning)")
    pick = alt.selection_point(name="unit_pick", fields=["unit"], on="click")
    transposed = [list(col) for col in zip(*abl["drop"])]  # classes x units
    chart, frame = heatmap(transposed, classes, units, "class", "unit (click to open)",
                           f"{label}: class accuracy drop when one unit is zeroed", scheme="reds")
    frame = frame.rename(columns={"row": "class", "col": "unit", "value": "drop"})
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("unit:O", axis=alt.Axis(labelFontSize=7)),
        y=alt.Y("class:O", sort=classes, axis=alt.Axis(labelOverlap=False, labelLimit=160)),
        color=alt.Color("drop:Q", scale=alt.Scale(scheme="redblue", reverse=True, domainMid=0),
                        title="drop (red: worse)"),
        tooltip=["unit", "class", alt.Tooltip("drop:Q", format=".3f")]).add_params(pick).properties(height=260)
    event = common.chart(chart, f"{label}-unit-drop", "abl_heatmap", on_select="rerun", selection_mode="unit_pick")
    open_unit_from(event, label)
    common.download_csv(frame, f"{label}-unit-drop", key="abl_csv_drop")
    scatter = pd.DataFrame({"unit": units, "selectivity": sel["per_unit"], "max class drop": abl["max_class_drop"],
                            "class": [classes[c] for c in abl["max_drop_class"]], "L1 of W[:, k]": abl["l1_norm"],
                            "dead": sel["dead"]})
    pick2 = alt.selection_point(name="unit_pick", fields=["unit"], on="click")
    chart = alt.Chart(scatter).mark_circle(size=60).encode(
        x="selectivity:Q", y="max class drop:Q", color="class:N",
        tooltip=["unit", "class", alt.Tooltip("selectivity:Q", format=".3f"), alt.Tooltip("max class drop:Q", format=".3f")]
    ).add_params(pick2).properties(height=300, title=f"Drop against selectivity (rho = {abl['spearman_selectivity']:.3f})")
    event = common.chart(chart, f"{label}-drop-vs-selectivity", "abl_scatter", on_select="rerun",
                         selection_mode="unit_pick")
    open_unit_from(event, label)
    common.download_csv(scatter, f"{label}-units", key="abl_csv_units")


common.page_frame()
common.guarded(render)
