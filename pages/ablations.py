"""Ablations: influential-feature sets, r_A against k, noise/zero ablation, the single-unit
drop heatmap and drop against selectivity. Clicking a unit opens its page."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import altair as alt
import pandas as pd
import streamlit as st

from core.charts import heatmap, model_colour
from core.data import dataset_image, view_of
from core.render import overlays_on
from core.headline import figure_columns, format_number
from ui import common


def render():
    st.title("Ablations")
    models = common.require_models()
    influential_section(models)
    unit_ablation_section(models)
    layer_ablation_section(models)


def retrain_section(models: list[dict], k: dict) -> None:
    """The decomposed final layer retrained with each class kept to its influential units (ReLU+FC
    paper, Sec. 5.2.3), on request: it reads the cached training features."""
    suited = common.on_request(models, "decomposed_retrain", "Retrain the decomposed head of {count} model(s) for one "
                               "epoch (the network frozen; seconds, more where the training features are not cached "
                               "yet)", "abl_retrain", **k)
    rows = []
    for meta in suited:
        done = common.stored_results(meta).cached("decomposed_retrain", **k)
        if done:
            rows.append({"model": meta["label"], "full head": done["full"], "decomposed": done["before"],
                         f"retrained ({done['epochs']} epoch)": done["after"]})
    if rows:
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True, column_config=common.number_columns(table.columns[1:]))
        st.caption("Test accuracy of the full head, of each class's logit kept to its k2 influential units (bias "
                   "kept), and of that decomposed head retrained with the restriction held (the paper: 88.59% -> "
                   "91.51% after one epoch, ResNet-20 on CIFAR-10).")
        common.training_note("decomposed_retrain")


def influential_section(models: list[dict]) -> None:
    """Influential features (ReLU+FC paper): the sets, r_A against k, and replacing them by noise."""
    st.subheader("Influential features")
    most = min(m.get("num_features", 64) for m in models)
    left, right = st.columns(2)
    k1 = left.number_input("k1: each image's top units", 1, most, step=1, help="Alg. 1: the units each image "
                           "counts for its class (the paper's Fig. 3 varies k1 and k2 apart)", **common.kept("abl_k1", 5))
    k2 = right.number_input("k2: units kept per class", 1, most, step=1, help="the most frequent units of each "
                            "class's histogram", **common.kept("abl_k2", 5))
    k = {"k1": int(k1), "k2": int(k2)}
    sweep_rows, noise_rows = [], []
    for meta in models:
        infl = common.analysis(meta, "influential", **k)
        sweep_rows += [{"model": meta["label"], **row} for row in infl["sweep"]]
        noise = common.analysis(meta, "noise_ablation", **k)
        for mode in ("gaussian", "matched", "zero"):
            for which in ("influential", "non_influential"):
                noise_rows.append({"model": meta["label"], "replacement": mode,
                                   "features replaced": which.replace("_", "-"), "accuracy": noise[mode][which],
                                   "spread (std)": noise[mode].get(f"{which}_std"), "seeds": noise[mode].get("seeds")})
    with st.expander("Influential sets per class, and how often each unit is among an image's top k1", expanded=False):
        for i, meta in enumerate(models):
            infl = common.analysis(meta, "influential", **k)
            frame = pd.DataFrame({"class": meta["class_names"], "units": [", ".join(map(str, s)) for s in infl["sets"]]})
            st.markdown(f"**{common.plain(meta['label'])}** — A_d {infl['A_d']:.4f}, A_f {infl['A_f']:.4f}, "
                        f"r_A {format_number(infl['r_A'])}")
            st.dataframe(frame, hide_index=True)
            frequency_map(meta, infl, i)
    sweep = pd.DataFrame(sweep_rows)
    labels = [m["label"] for m in models]
    common.chart(alt.Chart(sweep).mark_line(point=True).encode(  # dashes and point shapes too: the lines meet near 1
        x=alt.X("k:Q", scale=alt.Scale(type="log", base=2), title="k (= k1 = k2)"),
        y=alt.Y("r_A:Q", title="r_A = A_d / A_f", scale=alt.Scale(zero=False)), color=model_colour(labels),
        strokeDash=model_colour(labels, alt.StrokeDash), shape=model_colour(labels, alt.Shape),
        tooltip=["model", "k", "A_d", "r_A"]
    ).properties(height=260, title="Decomposed accuracy ratio against k"), "influential-sweep", "abl_sweep")
    common.download_csv(sweep, "influential-sweep", key="abl_csv_sweep")
    common.training_note("influential")
    retrain_section(models, k)
    maps_section(models, k)
    coverage = {m["label"]: common.analysis(m, "influential", **k).get("coverage") for m in models}
    said = [f"{label} {c['median']:g} (mean {c['mean']:.1f})" for label, c in coverage.items() if c]
    if said:
        st.caption(common.plain("k1 by coverage (the paper's other choice): the units carrying 90% of a training "
                                "image's activation, median over the images: " + "; ".join(said) + "."))

    noise = pd.DataFrame(noise_rows)
    common.chart(alt.Chart(noise).mark_bar().encode(
        x=alt.X("features replaced:N", title=None, axis=alt.Axis(labels=False, ticks=False)),  # the legend names them
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("features replaced:N", scale=alt.Scale(range=["#333333", "#b0b0b0"])),  # not model colours
        column=alt.Column("replacement:N"), row=alt.Row("model:N", sort=labels),
        tooltip=["model", "replacement", "features replaced", alt.Tooltip("accuracy:Q", format=".3f"),
                 alt.Tooltip("spread (std):Q", format=".3f"), "seeds"]
    ).properties(height=120, width=120, title="Noise ablation (mean over seeds; spread in the tooltip and CSV)"),
        "noise-ablation", "abl_noise", width="content")
    common.download_csv(noise, "noise-ablation", key="abl_csv_noise")
    common.training_note("noise_ablation")


def maps_section(models: list[dict], k: dict) -> None:
    """Where a class's influential and non-influential units look, their maps averaged over the
    class (ReLU+FC paper, Table 7), on request: one pass over the test split a model."""
    suited = common.on_request(models, "influential_maps", "Average the maps of each class's influential and "
                               "non-influential units for {count} model(s) (one pass over the test split)",
                               "abl_maps", **k)
    done = {m["label"]: common.stored_results(m).cached("influential_maps", **k) for m in suited}
    shown = [m for m in suited if done[m["label"]]]
    if not shown:
        return
    names = shown[0]["class_names"]
    cls = st.selectbox("Maps of the class", names, **common.kept("abl_maps_class", names[0], names))
    for meta in shown:
        result = done[meta["label"]]
        c = meta["class_names"].index(cls) if cls in meta["class_names"] else None
        if c is None or result["example"][c] is None:
            st.caption(common.plain(f"{meta['label']}: no test image of {cls}"))
            continue
        image, _ = dataset_image(meta["dataset"], result["example"][c], view=view_of(meta))
        for cell, picture, group, value in zip(st.columns(len(result["groups"])), overlays_on(image, result["maps"][c]),
                                               result["groups"], result["mean_activation"][c]):
            cell.image(picture, caption=common.plain(f"{meta['label']}: {group} (mean activation {value:.3f})"),
                       width="stretch")  # equal cells whatever the caption's length
    st.caption(f"Each map is the mean, over the class's test images, of the maps of all units, of its k2 = "
               f"{k['k2']} influential units and of {k['k2']} other live units drawn at random (the paper's Table 7), "
               "upsampled and drawn on one scale per model and class over the class's first test image.")
    common.training_note("influential_maps")


def frequency_map(meta: dict, infl: dict, i: int) -> None:
    """The paper's Fig. 2: per class, how many training images have each unit among their top k1
    (the k2 most frequent are the class's set), a page of classes and units at a time."""
    names, counts = meta["class_names"], infl["frequencies"]
    rows = common.window(f"{meta['label']}: classes", len(names), common.HEATMAP_CLASSES, f"abl_freq_rows_{i}")
    cols = common.window(f"{meta['label']}: units", len(counts[0]), common.HEATMAP_UNITS, f"abl_freq_cols_{i}")
    units = list(range(len(counts[0])))[cols]
    chart, frame = heatmap([line[cols] for line in counts[rows]], names[rows], units, "class", "unit",
                           f"{meta['label']}: images with the unit among their top {infl['k1']}",
                           scheme="blues", value_title="images")
    common.chart(chart, f"{meta['label']}-influential-frequencies", f"abl_freq_{i}")


def unit_ablation_section(models: list[dict]) -> None:
    """Zeroing one unit at a time: the summary, the class-drop heatmaps and drop against selectivity
    (a click on a unit opens it)."""
    st.subheader("Single-unit ablation")
    results = [(meta, common.analysis(meta, "unit_ablation"), common.analysis(meta, "selectivity")) for meta in models]
    rotated = {meta["label"]: common.analysis(meta, "rotation_control") for meta in models}
    drops = pd.DataFrame([{"model": meta["label"], "largest overall drop (%)": 100 * abl["largest_overall_drop"],
                           **figure_columns({"unit_ablation": abl}),
                           "rho(overall drop, SI)": abl["spearman_selectivity_overall"],
                           "mean largest class drop, units (%)": 100 * rotated[meta["label"]]["unit_mean_max_class_drop"],
                           "the same, rotated directions (%)": 100 * rotated[meta["label"]]["mean_max_class_drop"]}
                          for meta, abl, _ in results])
    st.dataframe(drops, hide_index=True, placeholder="—",  # no filter L1 for a model without a last conv layer
                 column_config={**common.number_columns(drops.columns[2:]),
                                "largest overall drop (%)": st.column_config.NumberColumn(
            format="%.2f", help="the largest drop of accuracy over all classes when one unit is zeroed; one "
                                "class's own drop (the maps below) can be far larger")})
    st.caption("rho: Spearman correlation, over the units, of a unit's largest class accuracy drop with its "
               "selectivity, the L1 norm of its outgoing fc weights W[:, k], or that of its incoming last-conv "
               "filter (the pruning literature's usual meaning); rho(overall drop, SI) asks the ablation "
               "abstract's question of the drop in overall accuracy. The rotation control zeroes one direction "
               "at a time of a random rotation of the units (the logits unchanged): if rotated directions drop "
               "a class as much as units do, the units' class-specific drops say nothing of the units.")
    # one colour scale for every model: the largest drop or gain anywhere
    extent = max(max(abs(v) for row in abl["drop"] for v in row) for _, abl, _ in results) or 1e-3
    lowest = min(0.0, *(min(abl["max_class_drop"]) for _, abl, _ in results))
    for i, (meta, abl, sel) in enumerate(results):
        label = meta["label"]
        # past a page: the classes some unit hurts most and the units that hurt a class most come first
        rows = common.ranked_window(f"{label}: classes", len(meta["class_names"]),
                                    lambda: pd.DataFrame(abl["drop"]).max(axis=0).tolist(),  # each class's worst drop
                                    common.HEATMAP_CLASSES, f"abl_rows_{i}")
        units = common.ranked_window(f"{label}: units", len(abl["drop"]), lambda: abl["max_class_drop"],
                                     common.HEATMAP_UNITS, f"abl_cols_{i}")
        classes = [meta["class_names"][c] for c in rows]
        pick = alt.selection_point(name="unit_pick", fields=["unit"], on="click")
        frame = pd.DataFrame([{"class": name, "unit": unit, "drop": abl["drop"][unit][c]}
                              for unit in units for name, c in zip(classes, rows)])
        chart = alt.Chart(frame).mark_rect().encode(
            x=alt.X("unit:O", sort=units, axis=alt.Axis(values=units[::8], labelAngle=0),
                    title="unit (every 8th numbered; click a column to open the unit)"),
            y=alt.Y("class:O", sort=classes, axis=alt.Axis(labelOverlap=False, labelLimit=160)),
            color=alt.Color("drop:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[-extent, extent]),
                            title="drop (red: worse)", legend=alt.Legend(format=".0%")),
            tooltip=["unit", "class", alt.Tooltip("drop:Q", format=".1%", title="accuracy drop")]).add_params(pick).properties(
            height=240, title=f"{label}: class accuracy drop when one unit is zeroed")
        event = common.chart(chart, f"{label}-unit-drop", f"abl_heatmap_{i}", on_select="rerun",
                             selection_mode="unit_pick")
        common.open_unit_from(event, label)
        common.download_csv(frame, f"{label}-unit-drop", key=f"abl_csv_drop_{i}")
    columns = common.grid(len(results), 2)  # three a row left each plot a sliver beside its legend
    for i, (meta, abl, sel) in enumerate(results):
        label, classes = meta["label"], meta["class_names"]
        scatter = pd.DataFrame({"unit": range(len(abl["drop"])), "selectivity": sel["per_unit"],
                                "max class drop": abl["max_class_drop"],
                                "largest drop in": [classes[c] for c in abl["max_drop_class"]],  # not the unit's class
                                "L1 of W[:, k]": abl["l1_norm"],
                                "dead": sel["dead"]})
        pick = alt.selection_point(name="unit_pick", fields=["unit"], on="click")
        chart = alt.Chart(scatter).mark_circle(size=50).encode(
            x=alt.X("selectivity:Q", scale=alt.Scale(domain=[0, 1], padding=8)),  # room for the points at the ends
            y=alt.Y("max class drop:Q", scale=alt.Scale(domain=[lowest, extent], padding=8), axis=alt.Axis(format="%")),
            # three legend columns: at 1024 px a chart is about 300 px wide and a fourth lost its labels
            color=alt.Color("largest drop in:N", sort=classes, title="class with the largest drop",
                            # a legend of 1000 classes is taller than the page: the tooltip names it there
                            legend=alt.Legend(orient="bottom", columns=3) if len(classes) <= 30 else None),
            tooltip=["unit", "largest drop in", alt.Tooltip("selectivity:Q", format=".3f"),
                                      alt.Tooltip("max class drop:Q", format=".1%")]
        ).add_params(pick).properties(height=280, title=[f"{label}: drop against selectivity",
                                                         f"(rho {format_number(abl['spearman_selectivity'], '.2f')}; with the drop in "
                                                         f"overall accuracy {format_number(abl['spearman_selectivity_overall'], '.2f')})"])
        column = columns[i]
        event = common.chart(chart, f"{label}-drop-vs-selectivity", f"abl_scatter_{i}", column, on_select="rerun",
                             selection_mode="unit_pick")
        common.open_unit_from(event, label)
        with column:
            common.download_csv(scatter, f"{label}-units", key=f"abl_csv_units_{i}")


def layer_ablation_section(models: list[dict]) -> None:
    """Single-unit ablation in a chosen layer (on request: one forward pass per channel)."""
    st.subheader("Single-unit ablation in another layer")
    layer = st.selectbox("Layer", common.layer_names(models), key="abl_layer", help="each of its channels is zeroed in turn and the rest "
                         "of the network run again, on the first 100 test images of each class")
    suited = common.on_request([m for m in models if layer in common.depth_layers(m)],
                               "layer_ablation", f"Ablate every channel of {layer} in {{count}} model(s) (one pass "
                               "over 100 test images a class per channel, and one over all test images for "
                               "selectivity)", "abl_layer_run", layer=layer)
    rows, points = [], []
    for meta in suited:
        done = common.stored_results(meta).cached("layer_ablation", layer=layer)
        if not done:
            continue
        rows.append({"model": meta["label"], "channels": done["channels"], "images": done["images"],
                     "largest overall drop (%)": 100 * done["largest_overall_drop"],
                     "mean largest class drop (%)": 100 * sum(done["max_class_drop"]) / len(done["max_class_drop"]),
                     "rho(largest class drop, SI)": done["spearman_selectivity"]})
        points += [{"model": meta["label"], "channel": k, "max class drop": drop}
                   for k, drop in enumerate(done["max_class_drop"])]
    if not rows:
        st.caption("Not computed yet for this layer.")
        return
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, placeholder="—", column_config=common.number_columns(table.columns[3:]))
    common.chart(alt.Chart(pd.DataFrame(points)).mark_circle(size=40).encode(
        x=alt.X("channel:Q"), y=alt.Y("max class drop:Q", axis=alt.Axis(format="%")),
        color=model_colour([m["label"] for m in models]), tooltip=["model", "channel", "max class drop"]
    ).properties(height=240, title=f"Largest class accuracy drop when one channel of {layer} is zeroed"),
        "layer-ablation", "abl_layer_chart")
    st.caption("rho: Spearman correlation of a channel's largest class drop with its selectivity over all test "
               "images (the Selectivity page's 'Selectivity by layer', computed with it); '—' where the layer's "
               "activations take either sign.")


common.guarded(render)
