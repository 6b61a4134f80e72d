"""Gates: each model's C x K gate (LSG trained, others fitted post hoc) ordered by assigned
class, Phi and density, feature/gate similarity, class-masking confusion matrices."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import altair as alt
import pandas as pd
import streamlit as st

from ui import common
from core.charts import heatmap, model_colour, shared_range
from core import lsg
from core.analysis import ANALYSES
from core.headline import LABELS, figure_columns, format_number

GATE_RHO = ANALYSES["gate"].defaults["rho"]  # the density target Phi's fit aims at


def render():
    st.title("Gates")
    models = common.require_models()
    phi_section(models)
    correlation_section(models)
    similarity_section(models)
    masking_section(models)
    adversarial_section(models)


def adversarial_section(models: list[dict]) -> None:
    """Adversarial samples told apart from clean ones by a random forest on every layer's pooled
    features (the LSG paper's Table 4), on request: minutes of PGD a model."""
    st.subheader("Adversarial detection")
    left, right = st.columns(2)
    epsilon = left.number_input("epsilon (of the pixel range)", 0.0, 1.0, step=0.01, format="%.2f",
                                help="the L-infinity radius of the attack (the paper: 0.3)",
                                **common.kept("gates_adv_epsilon", 0.3))
    steps = right.number_input("PGD steps", 1, 200, step=1, help="steps of 0.01 each (the paper: 40)",
                               **common.kept("gates_adv_steps", 40))
    params = {"epsilon": float(epsilon), "steps": int(steps)}
    suited = common.on_request(models, "adversarial_detection", f"Attack and detect for {{count}} model(s) (targeted "
                               f"PGD, {int(steps)} steps, on up to 1,100 images a class, then 15 random forests: "
                               "minutes a model on a CPU, with a progress bar)", "gates_adversarial", **params)
    rows, tested = [], set()
    for meta in suited:
        done = common.stored_results(meta).cached("adversarial_detection", **params)
        if done:
            tested.add(done["test_images"])
            row = {"model": meta["label"]}
            row.update({f"AUC at {n} a class": f"{mean:.3f} ± {std:.3f}"
                        for n, mean, std in zip(done["images_a_class"], done["auc_mean"], done["auc_std"])})
            rows.append({**row, "attack success (test)": done["attack_success_test"]})
    if rows:
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True, column_config=common.number_columns(["attack success (test)"]))
        st.caption("A random forest learns clean against targeted-PGD images from every depth layer's "
                   f"average-pooled output, on that many training images a class; AUC on "
                   f"{' or '.join(map(str, sorted(tested)))} held-out test images (clean and attacked), mean ± std "
                   "over 5 draws. The paper (ResNet-20, CIFAR-10): "
                   "LSG 77.4 / 85.0 / 86.9 against CE 72.9 / 80.8 / 83.6 at 100 / 500 / 1000 a class. Attack "
                   "success: the share of attacked test images the model reads as their target.")
        common.training_note("adversarial_detection")


def phi_section(models: list[dict]) -> None:
    """Phi and every model's gate (a click on a unit's column opens it)."""
    st.caption("Phi, the filter ambiguity (LSG paper, Eq. 2): with the network frozen, the lowest cross-entropy "
               "that a gate G (which units each class may use) can reach, plus how far G's density is from "
               "rho = 0.2. LSG models start from their trained gate; the others are fitted post hoc on cached "
               "training features. Lower Phi: less filter ambiguity. Phi contains the gated cross-entropy, so a model "
               "trained to be less confident starts from a higher Phi: minimax is trained toward p_t = 0.7, a "
               "cross-entropy of -ln 0.7 = 0.36, and part of its Phi is that, not its filters.")
    summary = []
    for meta in models:
        gate = common.analysis(meta, "gate")
        path = common.analysis(meta, "gated_path")
        summary.append({"model": meta["label"], "method": meta["method"], "gate": gate["source"],
                        **figure_columns({"gate": gate}), "gated CE": gate["gated_ce"],
                        "accuracy": path["plain_accuracy"], "gated-path accuracy": path["accuracy"],
                        "single-class units": gate["single_class_fraction"],
                        "fit's density": gate["fitted_density"], "fit steps": gate.get("steps"),
                        "converged": lsg.fit_verdict(gate.get("converged"), GATE_RHO, len(meta["class_names"]),
                                                     gate.get("stopped") or "step cap")})
    table = pd.DataFrame(summary)
    st.dataframe(table, hide_index=True, column_config=common.number_columns(
        [LABELS["phi"], LABELS["gate_density"], "gated CE", "accuracy", "gated-path accuracy", "single-class units",
         "fit's density"]))
    st.caption("Gated-path accuracy: each class's logit read through its own gate row, W_c (G_c * a) + b_c, which "
               "needs no label (the CSG paper's Table 1 finds it equal to the plain head's accuracy).")
    common.training_note("gate")
    common.download_csv(table, "gates-summary", key="gates_csv")

    for meta in models:
        gate = common.analysis(meta, "gate")
        rows = common.window(f"{meta['label']}: classes", len(meta["class_names"]), common.HEATMAP_CLASSES,
                             f"gates_rows_{meta['label']}")
        columns = gate["order"][common.window(f"{meta['label']}: units, by assigned class", len(gate["order"]),
                                              common.HEATMAP_UNITS, f"gates_cols_{meta['label']}")]
        classes = meta["class_names"][rows]
        units = [str(u) for u in columns]
        order = units
        matrix = [[line[u] for u in columns] for line in gate["gate"][rows]]
        chart, frame = heatmap(matrix, classes, units, "class", "unit (by assigned class; click one to open it)",
                               f"{meta['label']}: {gate['source']} gate, Phi {gate['phi']:.3f}, "
                               f"{LABELS['gate_density']} {gate['density']:.3f}", domain=[0, 1], col_order=order,
                               value_title="gate entry", pick=True)
        event = common.chart(chart, f"{meta['label']}-gate", f"gates_gate_{meta['label']}", on_select="rerun",
                             selection_mode="unit_pick")
        common.open_unit_from(event, meta["label"], field="col")
        common.download_csv(frame, f"{meta['label']}-gate", key=f"gates_csv_{meta['label']}")


def correlation_section(models: list[dict]) -> None:
    """The incoming filters' correlation matrix, units ordered by the gate's class assignment (LSG
    paper, Fig. 7): a block of high correlation within a class and little between is what LSG aims at."""
    st.subheader("Filter correlation")
    for column, meta in zip(common.grid(len(models), 2), models):
        reason = common.stored_results(meta).skipped_reason("filter_correlation")
        if reason:
            column.caption(common.plain(reason))
            continue
        result = common.analysis(meta, "filter_correlation")
        if result["matrix"] is None:
            column.caption(common.plain(f"{meta['label']}: C_IC {format_number(result['c_ic'], '.4f')}; the matrix is "
                                        "kept up to 512 units"))
            continue
        units = [str(u) for u in result["order"]]
        chart, frame = heatmap(result["matrix"], units, units, "unit", "unit (both by assigned class)",
                               f"{meta['label']}: C_IC {format_number(result['c_ic'], '.4f')}, within a class "
                               f"{format_number(result['within_class'], '.4f')}",  # None: one filter a class, no pair
                               scheme="redblue", domain=[-1, 1], col_order=units, value_title="correlation", height=320)
        common.chart(chart.encode(y=alt.Y("row:O", sort=units, title="unit", axis=alt.Axis(labels=len(units) <= 32))),
                     f"{meta['label']}-filter-correlation", f"gates_corr_{meta['label']}", column)
    st.caption("Cosine similarity of the units' flattened incoming filters. C_IC: the mean between the dominant "
               "filters (the m most activated on each class, m = K / C) of different classes.")
    redundancy_chart(models)


def redundancy_chart(models: list[dict]) -> None:
    """Fig. 7e: the share of filter pairs correlated above a threshold, every model on one chart."""
    rows = []
    for meta in models:
        if common.stored_results(meta).skipped_reason("filter_correlation"):
            continue
        result = common.analysis(meta, "filter_correlation")
        rows += [{"model": meta["label"], "threshold": t, "share": v}
                 for t, v in zip(result["thresholds"], result["redundancy"])]
    if not rows:
        return
    labels = [m["label"] for m in models]
    chart = alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("threshold:Q", title="threshold s"),
        y=alt.Y("share:Q", title="filter pairs with correlation > s", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=model_colour(labels), tooltip=["model", "threshold", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=260, title="Filter redundancy (LSG paper, Fig. 7e)")
    common.chart(chart, "filter-redundancy", "gates_redundancy")
    st.caption("For each threshold s, the share of pairs of different units whose filters' correlation exceeds s. "
               "The paper reads LSG's curve below standard training's at weak thresholds (about 0.3) as less "
               "redundant filters.")


def similarity_section(models: list[dict]) -> None:
    """How strongly each class's images drive each gate row, right and wrong."""
    st.subheader("Feature/gate similarity")
    st.caption("Row y, column c: how strongly images of class y drive the units of gate row c (the mean over "
               "those images of their features times the gate row: the LSG paper's similarity); over the images "
               "of y the model got right (left) and those it missed (right). A class-specific model is bright "
               "on the diagonal.")
    one_scale = st.toggle("One colour scale for all models", **common.kept("gates_shared", True),
                          help="Off: each model's own range (its two maps still share one), for a model whose "
                               "features are small, such as minimax's, which look dark on the shared scale")
    similarities = {m["label"]: common.analysis(m, "gate_similarity") for m in models}
    shared = shared_range(sim[key] for sim in similarities.values() for key in ("tp", "fn"))
    for meta in models:
        sim = similarities[meta["label"]]
        domain = shared if one_scale else shared_range(sim[key] for key in ("tp", "fn"))
        window = common.window(f"{meta['label']}: classes", len(meta["class_names"]), common.HEATMAP_CLASSES,
                               f"gates_sim_rows_{meta['label']}")
        classes = meta["class_names"][window]
        left, right = st.columns(2)
        for column, key, name in ((left, "tp", "true positives"), (right, "fn", "false negatives")):
            chart, _ = heatmap([line[window] for line in sim[key][window]], classes, classes, "true class y", "gate row c",
                               f"{meta['label']}: {name}", scheme="viridis", domain=domain, value_title="similarity")
            common.chart(chart, f"{meta['label']}-similarity-{key}", f"gates_sim_{meta['label']}_{key}", column)


def masking_section(models: list[dict]) -> None:
    """Accuracy with one class's units masked, per model."""
    st.subheader("Class masking")
    reference = models[0]["class_names"]
    left, right = st.columns(2)
    cls = left.selectbox("Mask the units of class", reference, **common.kept("gates_mask_class", reference[0], reference))
    partners = ["no other class", *[name for name in reference if name != cls]]
    partner = right.selectbox("and the units of", partners, help="two classes masked at once (the LSG paper's "
                              "Fig. 5): where do both classes' images go?",
                              **common.kept("gates_mask_partner", partners[0], partners))
    ways = ["gate", "influential"]
    by = st.radio("Units assigned by", ways, horizontal=True, **common.kept("gates_mask_by", ways[0], ways),
                  help="gate: the units whose gate entry for the class reaches the threshold; influential: the "
                       "class's influential features (the first time per model, a pass over the training split: "
                       "about a minute on a CPU, with a progress bar)")
    threshold = st.slider("Gate threshold", 0.05, 1.0, step=0.05, disabled=by != "gate",
                          **common.kept("gates_mask_threshold", 0.5))
    # every model's result first, then the charts: drawn as each came, the old choice's charts stood
    # beside the new one's while the next model computed
    wanted = [cls] + ([partner] if partner != partners[0] else [])
    masks = {meta["label"]: common.analysis(meta, "class_masking", threshold=threshold, by=by,
                                            with_class=meta["class_names"].index(partner) if len(wanted) > 1 else -1)
             for meta in models if all(name in meta["class_names"] for name in wanted)}
    for column, meta in zip(common.grid(len(models), 2), models):  # three 10 x 10 matrices a row: unreadable
        classes = meta["class_names"]
        if meta["label"] not in masks:
            column.info(common.plain(f"{meta['label']} has no class {' or '.join(n for n in wanted if n not in classes)}"))
            continue
        mask = masks[meta["label"]]
        c = classes.index(cls)
        units = set(mask["units"][c]) | (set(mask["units"][classes.index(partner)]) if len(wanted) > 1 else set())
        chart, frame = heatmap(mask["confusions"][c], classes, classes, "true", "predicted",
                               f"{meta['label']}: {len(units)} units masked", scheme="blues", height=300,
                               value_title="images")
        common.chart(chart.encode(x=alt.X("col:O", sort=classes, title="predicted")),
                     f"{meta['label']}-masking-{cls}", f"gates_mask_{meta['label']}", column)
        accuracy = mask["masked_class_accuracy"][c]
        unmasked = common.analysis(meta, "accuracy")["per_class"][c]
        column.caption(f"accuracy on {common.plain(cls)} with its units masked: "
                       f"{'-' if accuracy is None else f'{accuracy:.1%}'}"
                       f"{'' if unmasked is None else f' (unmasked {unmasked:.1%})'}")
        if len(wanted) > 1:
            both, p = mask["partner_accuracy"][c], classes.index(partner)
            before = common.analysis(meta, "accuracy")["per_class"][p]
            column.caption(f"on {common.plain(partner)}: {'-' if both is None else f'{both:.1%}'}"
                           f"{'' if before is None else f' (unmasked {before:.1%})'}")
    common.training_note("class_masking")


common.guarded(render)
