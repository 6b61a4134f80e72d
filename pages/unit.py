"""One unit: class means, selectivity, top-activating test images, IAM and RS, its drop per
class, its gate column (the URL carries ?model=LABEL&unit=K). Or one class across the compared
models, side by side: the unit each model gives most to it (unit k of one model is not unit k
of another, so the class is what lines them up)."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import textwrap

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core.analysis.selectivity import unit_for_class
from core.charts import epoch_axis
from core.lsg import gate_assignment
from core.data import dataset_image, view_of
from core.render import input_picture
from ui import common


VIEWS = ("One unit", "One class across the compared models")


def bar(values, names, title, y_title, highlight: str | None = None, percent: bool = False):
    frame = pd.DataFrame({"class": names, "value": values})
    colour = alt.condition(alt.datum["class"] == highlight, alt.value("#d62728"), alt.value("#4c78a8")) \
        if highlight is not None else alt.value("#4c78a8")
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("class:N", sort=names, title=None, axis=alt.Axis(labelOverlap=False, labelAngle=-45)),
        y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=".2~%" if percent else "~g")), color=colour,
        tooltip=["class", alt.Tooltip("value:Q", format=".2%" if percent else ".3f")]
    ).properties(height=220, title=textwrap.wrap(title, 16)), frame  # two lines: three charts side by side


def top_pictures(meta: dict, top: dict, unit: int, count: int, size: int):
    """The unit's `count` top-activating test images as pictures, with their captions."""
    pictures, captions = [], []
    for index, activation, lab in list(zip(top["index"][unit], top["activation"][unit], top["labels"][unit]))[:count]:
        image, _ = dataset_image(meta["dataset"], index, view=view_of(meta))
        pictures.append(input_picture(image, size))
        captions.append(f"#{index} {common.plain(meta['class_names'][lab])} ({activation:.2f})")
    return pictures, captions


def picture_grid(pictures, captions, per_row: int) -> None:
    """Equal cells, row by row: every picture the same size whatever its caption's length."""
    for start in range(0, len(pictures), per_row):
        cells = st.columns(per_row)
        for cell, picture, caption in zip(cells, pictures[start:start + per_row], captions[start:start + per_row]):
            cell.image(picture, caption=caption, width="stretch")


def render():
    st.title("Unit")
    found = st.session_state.get("app_found", {})
    if not found:
        st.info("No models found.")
        return
    url = (st.query_params.get("model"), st.query_params.get("unit"))
    class_url = st.query_params.get("class")
    if url != st.session_state.get("unit_url") and any(url):  # a link to a unit opens that unit
        st.session_state["unit_view"] = VIEWS[0]
    elif class_url is not None and class_url != st.session_state.get("unit_class_url"):  # a link to a class view
        st.session_state["unit_view"] = VIEWS[1]
    if st.session_state.get("unit_view") not in VIEWS:
        st.session_state["unit_view"] = VIEWS[0]
    view = st.segmented_control("View", VIEWS, key="unit_view", required=True, label_visibility="collapsed")
    if view == VIEWS[0]:
        st.session_state["unit_class_url"] = None
        if "class" in st.query_params:
            del st.query_params["class"]
        one_unit(found, url)
    else:
        st.session_state["unit_url"] = (None, None)
        class_across_models(class_url)


def class_across_models(class_url: str | None):
    """The view's URL names its class (?class=Shirt), so it can be shared like a unit's."""
    models = common.require_models()
    classes = models[0]["class_names"]
    unknown = None
    if class_url is not None and class_url != st.session_state.get("unit_class_url"):  # arrived by a link
        if class_url in classes:
            common.choose("unit_class", class_url)
        else:
            unknown = class_url
    name = st.selectbox("Class", classes, **common.kept("unit_class", classes[0], classes))  # kept while the other view shows
    if unknown is not None:
        st.warning(common.plain(f"The link asked for class “{unknown}”, which {models[0]['label']} does not have; "
                                f"showing {name} instead."))
    st.query_params.from_dict({"class": name})
    st.session_state["unit_class_url"] = name
    st.caption("For each model: among its live units that prefer the class (largest class-mean activation), "
               "the most selective; its class means, with the class in red; its top-activating test images.")
    # three a row: nine in one row cut their names and ran the class labels together
    for column, meta in zip(common.grid(len(models), 3), models):
        with column:
            st.subheader(common.plain(meta["label"]))
            if name not in meta["class_names"]:
                st.info(f"{common.plain(meta['label'])} has no class {common.plain(name)}.")
                continue
            sel = common.analysis(meta, "selectivity")
            unit, why = unit_for_class(sel, meta["class_names"].index(name))
            if unit is None:
                st.info(common.plain(why))
                continue
            st.metric(f"unit {unit}", f"SI {sel['per_unit'][unit]:.3f}")
            st.caption(common.plain(why))
            chart, frame = bar([row[unit] for row in sel["class_means"]], meta["class_names"], "class-mean activation",
                               "mean activation", highlight=name)
            common.chart(chart, f"{meta['label']}-unit{unit}-class-means", f"unit_across_{meta['label']}")
            pictures, captions = top_pictures(meta, common.analysis(meta, "top_images"), unit, 6, 64)
            picture_grid(pictures, captions, 2)
            st.page_link("pages/unit.py", label=f"Open unit {unit} of {common.plain(meta['label'])}",
                         query_params={"model": meta["label"], "unit": str(unit)})


def one_unit(found: dict, url: tuple):
    meta, sel, unit = choose_unit(found, url)
    unit_figures(meta, sel, unit)
    top_images_section(meta, unit)
    iam_section(meta, unit)


def choose_unit(found: dict, url: tuple) -> tuple[dict, dict, int]:
    """The model and unit: a link's (said, where it asks for what does not exist), else the widgets'.
    Keeps the URL in step, so the view can be shared."""
    labels = list(found)
    asked = []  # what a link asked for and cannot have
    if url != st.session_state.get("unit_url"):  # arrived by a link: the URL wins over old widget state
        st.session_state["unit_url"] = url
        if url[0] is not None and url[0] not in found:
            asked.append(f"model “{common.clipped(url[0], 60)}”, which is not among the models found")
        elif url[0] is not None:
            common.choose("unit_model", url[0])
        st.session_state["unit_requested"] = url[1]
    if st.session_state.get("unit_model_chosen") not in found:
        chosen = common.chosen_models()
        common.choose("unit_model", chosen[0]["label"] if chosen else labels[0])
    left, right = st.columns(2)  # both kept while the class view shows (back, they came at the first model, unit 0)
    label = left.selectbox("Model", labels, **common.kept("unit_model", labels[0], labels))
    meta = found[label] | {"label": label}
    sel = common.analysis(meta, "selectivity")
    k_total = len(sel["per_unit"])
    requested = st.session_state.pop("unit_requested", None)
    if requested is not None:
        unit, problem = common.parse_unit(requested, k_total)
        if problem:
            asked.append(problem)
        else:
            common.choose("unit_index", unit)
    common.choose("unit_index", min(max(int(st.session_state.get("unit_index_chosen", 0)), 0), k_total - 1))
    unit = int(right.number_input("Unit", 0, k_total - 1, **common.kept("unit_index", 0)))
    for problem in asked:
        st.warning(common.plain(f"The link asked for {problem}; showing {label}, unit {unit} instead."))
    st.query_params.update({"model": label, "unit": str(unit)})
    st.session_state["unit_url"] = (label, str(unit))
    return meta, sel, unit


def unit_figures(meta: dict, sel: dict, unit: int) -> None:
    """The unit's selectivity, classes and drop, its class means, gate column and drops, and its
    selectivity over training."""
    label, classes = meta["label"], meta["class_names"]
    gate = common.analysis(meta, "gate")
    abl = common.analysis(meta, "unit_ablation")

    (m1, m2), (m3, m4) = st.columns(2), st.columns(2)  # two a row: four cut class names short ("T-shir…")
    m1.metric("selectivity", "dead" if sel["dead"][unit] else f"{sel['per_unit'][unit]:.3f}")
    m2.metric("preferred class", common.plain(classes[sel["preferred_class"][unit]]),
              help="the class with the largest mean activation over its test images (the selectivity index's "
                   "own choice); the top-activating images below are single images and can come from other classes")
    gate_column = [row[unit] for row in gate["gate"]]
    assigned, tied = gate_assignment(gate_column)
    ties = common.plain(f"tied with {', '.join(classes[c] for c in tied)}") if tied else None
    m3.metric("assigned by gate", "none" if assigned is None else common.plain(classes[assigned]),
              delta=ties, delta_color="off", delta_arrow="off",  # a tie said under the class, not only in the tooltip
              help="the class whose gate row is largest for this unit" + (
                  "; the gate gives this unit to no class (its column is all zero)" if assigned is None else
                  f"; {ties} (the first is shown)" if tied else ""))
    unchanged = not any(abl["drop"][unit])  # zeroing it moves no test image to another class
    m4.metric("largest class drop", f"{abl['max_class_drop'][unit]:.2%}",
              help="zeroing this unit changes no class's accuracy" if unchanged else
              f"class {common.plain(classes[abl['max_drop_class'][unit]])}")
    col1, col2, col3 = st.columns(3)
    means = [row[unit] for row in sel["class_means"]]
    for column, values, title, y in ((col1, means, "class-mean activation", "mean activation"),
                                     (col2, gate_column, f"gate column ({gate['source']})", "gate value"),
                                     (col3, abl["drop"][unit], "accuracy drop when zeroed", "drop")):
        chart, frame = bar(values, classes, title, y, percent=title.startswith("accuracy drop"))
        common.chart(chart, f"{label}-unit{unit}-{title.split()[0]}", f"unit_chart_{title.split()[0]}", column)
        common.download_csv(frame, f"{label}-unit{unit}-{title.split()[0]}", key=f"unit_csv_{title}",
                            label=f"CSV: {title.split(' (')[0]}")
    if unchanged:
        col3.caption("No bars: zeroing this unit changes no class's accuracy on the test images; "
                     "the other units carry what it does.")

    history = common.analysis(meta, "trajectory")
    if history["available"]:
        over = pd.DataFrame({"epoch": [e["epoch"] for e in history["epochs"]],
                             "selectivity": [row[unit] for row in history["unit_selectivity"]],
                             "median of all units": [e["median_selectivity"] for e in history["epochs"]]})
        long = over.melt("epoch", var_name="series", value_name="value")
        common.chart(alt.Chart(long).mark_line(point=True).encode(
            x=epoch_axis(), y=alt.Y("value:Q", title="selectivity index"),
            color=alt.Color("series:N", title=None, scale=alt.Scale(range=["#9e9e9e", "#111111"])),  # not model colours
            tooltip=["series", "epoch", alt.Tooltip("value:Q", format=".3f")]).properties(
            height=200, title=f"unit {unit} over training"), f"{label}-unit{unit}-over-training", "unit_over")


def top_images_section(meta: dict, unit: int) -> None:
    st.subheader("Top-activating test images")
    top = common.analysis(meta, "top_images")
    pictures, captions = top_pictures(meta, top, unit, len(top["index"][unit]), 96)
    picture_grid(pictures, captions, max(1, min(len(pictures), 6)))  # nine a row broke class names mid-word


def iam_section(meta: dict, unit: int) -> None:
    """The image that most excites the unit (computed for all units at once, on request)."""
    st.subheader("Independent activation maximisation")
    iam = common.stored_results(meta).cached("iam")
    slot = st.empty()  # the button goes once its images are there
    if iam is None and slot.button("Compute the image that most excites each unit, for all units (IAM, about a "
                                   "minute on a CPU)", key="unit_iam"):
        slot.empty()
        iam = common.analysis(meta, "iam")
    if iam is not None:
        st.image(input_picture(np.asarray(iam["images"][unit]), 160), caption=f"IAM({unit}); RS = {iam['rs'][unit]:.3f} "
                                                      "(units more active on it, over all units of the layer)")
        above = iam["more_active"][unit]
        st.caption(f"More active than unit {unit} on its own image: " + (", ".join(f"unit {j}" for j in above)
                   if above else "no unit") + (" (the most active first; at most 8 listed)" if above else ""))


common.guarded(render)
