"""Trade-offs: is a model more class-specific, and at what cost? Each class-specificity figure
beside each cost, over the compared models (seeds folded into mean +- spread)."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import altair as alt
import pandas as pd
import streamlit as st

from core.charts import model_colour
from core.tradeoffs import (COST, MEASURES, ON_REQUEST, SPECIFICITY, WHY_THEY_DISAGREE, cell, summarise, sweeps,
                            values)
from ui import common


def render():
    st.title("Class specificity and its cost")
    models = common.require_models()
    needed = dict.fromkeys(m.analysis for m in MEASURES)
    collected = []
    for meta in models:
        engine = common.stored_results(meta)
        results = {name: None if engine.skipped_reason(name) else  # e.g. non-target entropy of 2 classes
                   engine.cached(name) if name in ON_REQUEST else common.analysis(meta, name)
                   for name in needed}
        collected.append((meta, values({k: v for k, v in results.items() if v is not None})))
    rows = summarise(collected)
    st.caption("One row per model; models that differ only in their seed share a row (mean ± sample standard "
               "deviation). Arrows say which way is better. The faithfulness margins show where the faithfulness "
               "analysis was computed (Compare on an image, at the bottom).")
    for side in (SPECIFICITY, COST):
        measures = [m for m in MEASURES if m.side == side]
        table = pd.DataFrame([{"model": r["model"], "method": r["method"],
                               **{header(m): cell(r, m.key) for m in measures}} for r in rows])
        st.subheader(side.capitalize())
        st.dataframe(table, hide_index=True)
    frame = pd.DataFrame([{"model": r["model"], **{m.key: r[m.key] for m in MEASURES},
                           **{f"{m.key} spread": r[f"{m.key}_spread"] for m in MEASURES}} for r in rows])
    common.download_csv(frame, "tradeoffs", key="tradeoffs_csv")
    scatter(rows)
    sweep_section(sweeps(collected))
    with st.expander("What each figure says", expanded=True):
        for measure in MEASURES:
            st.markdown(f"**{common.plain(measure.label)}** ({arrow(measure)}): {common.plain(measure.meaning)}")
        st.markdown(common.plain(WHY_THEY_DISAGREE))
        st.caption("Definitions: docs/metrics.md in the project.")


def sweep_section(found) -> None:
    """Figure against an option's value, mean +- std over seeds, where the compared models differ in
    that option alone (`python -m core.sweep` trains such a set): the minimax paper's Fig. 5."""
    st.subheader("Sweeps")
    if not found:
        st.caption("Compare models that differ in one option alone (and their seeds) to see each figure against "
                   "it, e.g. python -m core.sweep --vary p_t=0.6,0.7,0.9 --seeds 0,1,2 --out-dir runs/pt -- "
                   "--method minimax (then add runs/ to the compared models).")
        return
    left, right = st.columns(2)
    labels = [s.label for s in found]
    label = left.selectbox("Sweep", labels, **common.kept("tradeoffs_sweep", labels[0], labels))
    names = [m.label for m in MEASURES]
    name = right.selectbox("Figure", names, **common.kept("tradeoffs_sweep_measure", "NTE / log(C-1)", names))
    sweep, measure = found[labels.index(label)], MEASURES[names.index(name)]
    frame = pd.DataFrame([{sweep.option: p["value"], name: p[measure.key], "spread": p[f"{measure.key}_spread"] or 0.0,
                           "seeds": p["seeds"]} for p in sweep.points if p[measure.key] is not None])
    if frame.empty:
        st.caption(common.plain(f"No model of this sweep has {name} yet."))
        return
    frame["low"], frame["high"] = frame[name] - frame["spread"], frame[name] + frame["spread"]
    x = alt.X(f"{sweep.option}:Q", scale=alt.Scale(zero=False))
    line = alt.Chart(frame).mark_line(point=True).encode(
        x=x, y=alt.Y(f"{name}:Q", scale=alt.Scale(zero=False)),
        tooltip=[sweep.option, alt.Tooltip(f"{name}:Q", format=".4f"), alt.Tooltip("spread:Q", format=".4f"), "seeds"])
    bars = alt.Chart(frame).mark_errorbar().encode(x=x, y="low:Q", y2="high:Q")
    common.chart((line + bars).properties(height=280, title=f"{name} against {sweep.option} ({sweep.method}); "
                                                            "bars: ± sample std over seeds"),
                 "sweep", "tradeoffs_sweep_chart")
    common.download_csv(frame, f"sweep-{sweep.option}", key="tradeoffs_csv_sweep")


def header(measure) -> str:
    """The column's name with its arrow; a figure with no better direction gets none."""
    return f"{measure.label} {arrow(measure)}" if measure.better else measure.label


def arrow(measure) -> str:
    return {"higher": "↑ better", "lower": "↓ better"}.get(measure.better, "no better way")


def scatter(rows: list[dict]) -> None:
    """Median selectivity against accuracy, one point per row: the question in one picture."""
    points = pd.DataFrame([{"model": r["model"], "median SI": r["median_si"], "accuracy": r["accuracy"]}
                           for r in rows if r["median_si"] is not None and r["accuracy"] is not None])
    if points.empty:
        return
    labels = list(points["model"])
    chart = alt.Chart(points).mark_circle(size=120).encode(
        x=alt.X("median SI:Q", scale=alt.Scale(zero=False)), y=alt.Y("accuracy:Q", scale=alt.Scale(zero=False)),
        color=model_colour(labels), tooltip=["model", alt.Tooltip("median SI:Q", format=".3f"),
                                             alt.Tooltip("accuracy:Q", format=".4f")])
    common.chart(chart.properties(height=280, title="More class-specific (right) at what accuracy (up)?"),
                 "tradeoffs", "tradeoffs_chart")


common.guarded(render)
