"""Unit Lens: the Streamlit entry. The sidebar (model choice, training) is on every page;
the Overview page lives here, the others in pages/."""
import pandas as pd
import streamlit as st

from pages import common

SUMMARY = ("accuracy", "selectivity", "nontarget_entropy", "gate", "influential")


def overview() -> None:
    st.title("Unit Lens")
    st.caption("Class-specific units in CNNs: compare models trained with cross-entropy, the minimax loss, "
               "Label Sensitive Gates and baselines, on one image or over the whole test set.")
    found = st.session_state.get("app_found", {})
    if not found:
        st.info("No checkpoints found. Train one from the sidebar, or put .pt files in checkpoints/.")
        return
    rows, missing = [], []
    for label, meta in found.items():
        engine, _ = common.analyzer(meta)
        cached = {name: engine.cached(name) for name in SUMMARY}
        missing += [label] if any(v is None for v in cached.values()) else []
        sel, nte, gate, infl = (cached[k] for k in ("selectivity", "nontarget_entropy", "gate", "influential"))
        rows.append({
            "model": label, "method": meta["method"], "arch": meta["arch"], "dataset": meta["dataset"],
            "epochs": meta.get("epochs_completed", meta.get("epochs")),
            "accuracy": cached["accuracy"]["accuracy"] if cached["accuracy"] else meta.get("test_accuracy"),
            "median SI": sel and sel["median"], "dead units": sel and sel["dead_count"],
            "NTE / log(C-1)": nte and nte["fraction"], "Phi": gate and gate["phi"],
            "gate density": gate and gate["density"], "r_A (k=5)": infl and infl["r_A"],
        })
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                ("accuracy", "median SI", "NTE / log(C-1)", "Phi", "gate density", "r_A (k=5)")})
    common.download_csv(frame, "unit-lens-models", key="overview_csv")
    if missing:
        st.caption(f"Metrics not computed yet for: {', '.join(missing)} (accuracy shown from the checkpoint).")
        if st.button(f"Compute metrics for {len(missing)} model(s)", key="overview_compute"):
            for label in missing:
                for name in SUMMARY:
                    common.analysis(found[label], name)
            st.rerun()
    chosen = common.chosen_models()
    st.subheader("Compared models")
    st.write(", ".join(f"**{m['label']}** ({m['method']})" for m in chosen) or "none chosen")
    st.caption("Pick the models in the sidebar; every page compares them side by side. "
               "Figures: the chart menu (⋯) saves PNG; tables download as CSV.")
    with st.expander("Checkpoint details"):
        for label, meta in found.items():
            st.markdown(f"**{label}** — `{meta['path']}`  \n`{meta.get('command') or 'no command recorded'}`  \n"
                        f"options {meta.get('options', {})}, seed {meta.get('seed')}, "
                        f"trained {meta.get('time', '?')}, torch {meta.get('versions', {}).get('torch', '?')}")


def run_overview():
    common.guarded(overview)


common.app_frame()
page = st.navigation([
    st.Page(run_overview, title="Overview", icon=":material/home:", url_path="overview", default=True),
    st.Page("pages/compare.py", title="Compare on an image", icon=":material/image:"),
    st.Page("pages/selectivity.py", title="Selectivity", icon=":material/bar_chart:"),
    st.Page("pages/gates.py", title="Gates", icon=":material/grid_on:"),
    st.Page("pages/ablations.py", title="Ablations", icon=":material/content_cut:"),
    st.Page("pages/unit.py", title="Unit", icon=":material/search:"),
])
try:
    page.run()
finally:
    common.leave_frame()
