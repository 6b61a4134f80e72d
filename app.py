"""Unit Lens: the Streamlit entry. The navigation comes first (so a first visit never shows
anything else), then the sidebar (model choice, training), then the page; the Overview page
lives here, the others in pages/.

`streamlit run app.py` finds the `st.App` below and serves this file as the script. From server
start a thread imports PyTorch and the engine (about 2.5 s on 2 cores), then what the other pages
import (ui/warm.py); a visit to the Overview that arrives meanwhile is drawn at once from the
results shipped with the bundled checkpoints (no PyTorch needed), then redrawn in full when the
engine is there."""
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import shipped
from core.catalog import bundled_dir, discover, extra_dirs, file_hash, labelled
from core.headline import GROUPS, HEADLINE, checkpoint_accuracy, describe_missing, grouped
from ui import warm
from ui.basics import default_models, download_csv, entry, number_columns, plain

ICON = Path(__file__).resolve().parent / "docs" / "icon.png"


@asynccontextmanager
async def warm_up(_app):
    """At server start: begin importing the engine."""
    warm.start()
    yield


def overview() -> None:
    """Every model found, its headline figures from the store (or shipped), the rest computed on request."""
    found = st.session_state.get("app_found", {})
    figures, missing = {}, {}
    for label, meta in found.items():
        figures[label], needed = common.stored_results(meta).headline_figures()
        if needed:
            missing[label] = needed
    notes = draw(found, figures, [m["label"] for m in common.chosen_models()],
                 "No checkpoints found. Train one from the sidebar, or put .pt files in checkpoints/.")
    if st.session_state.pop("overview_computing", False):  # still set: that run never reached its end
        notes.caption("The last computation was stopped before it finished; the analyses it finished are kept.")
    if missing:
        notes.caption(f"Not computed yet for {len(missing)} model(s): {plain(describe_missing(missing))}. Their empty "
                      "cells fill in when you compute them. Meanwhile a run's accuracy is the one its trainer "
                      "measured, shown only where that was on the whole test split.")
        if notes.button(f"Compute metrics for {len(missing)} model(s)", key="overview_compute",
                        help="Stop it with the Stop button at the top right; finished analyses are kept"):
            st.session_state["overview_computing"] = True
            with notes:
                compute_all([(found[label] | {"label": label}, needed) for label, needed in missing.items()])
            st.session_state["overview_computing"] = False
            st.rerun()


def first_overview() -> None:
    """The Overview while the engine loads: the bundled checkpoints' metadata and headline figures
    from checkpoints/results/index.json (the same numbers the engine reads from the shipped
    results, as a test checks); other checkpoints join when the engine is there."""
    index = shipped.index()
    bundled = bundled_dir().resolve()
    found, figures, waiting = {}, {}, 0
    for label, path in labelled(discover(extra_dirs())).items():
        try:
            entry = index.get(file_hash(path)) if path.resolve().is_relative_to(bundled) else None
        except OSError:  # unreadable: the engine says why, in the sidebar, in a moment
            entry = None
        if entry is None:
            waiting += 1
            continue
        found[label] = entry["meta"] | {"path": str(path)}
        figures[label] = entry["headline"]
    notes = draw(found, figures, st.session_state.get("app_models_chosen", default_models(list(found))),
                 "Reading the checkpoints…")
    if found and waiting:
        notes.caption(f"Reading {waiting} more checkpoint(s)…")


def draw(found: dict[str, dict], figures: dict[str, dict], chosen: list[str], when_empty: str):
    """The Overview's layout, the same element for element whether drawn by the engine or before it
    (so an expander opened meanwhile stays open): the table, compared models first; a container
    for notes under it, which is returned; the compared models and the checkpoints' details."""
    st.title("Unit Lens")
    st.caption("Class-specific units in CNNs: compare models trained with cross-entropy, the minimax loss, "
               "Label Sensitive Gates and baselines, on one image or over the whole test set.")
    with st.container():
        if found:
            draw_table(found, figures, chosen)
        else:
            st.info(when_empty)
    notes = st.container()
    st.subheader("Compared models")
    st.write(", ".join(plain(with_method(label, found[label])) for label in chosen if label in found) or "none chosen")
    st.caption("Pick the models in the sidebar; every page compares them side by side. "
               "Every chart has a PNG download under it; tables download as CSV.")
    with st.expander("Checkpoint details"):
        for label in compared_first(found, chosen):  # st.code shows text as it is (never markdown)
            meta = found[label]
            st.code(f"{with_method(label, meta)}: {meta['path']}\n{meta.get('command') or 'no command recorded'}\n"
                    f"options {meta.get('options', {})}, seed {meta.get('seed')}, trained {meta.get('time', '?')}, "
                    f"torch {meta.get('versions', {}).get('torch', '?')}", language=None, wrap_lines=True)
    return notes


def compared_first(found: dict[str, dict], chosen: list[str]) -> list[str]:
    """The models in the Overview's order: the compared ones in the sidebar's order, then the others."""
    return sorted(found, key=lambda label: (chosen.index(label) if label in chosen else len(chosen)))


def with_method(label: str, meta: dict) -> str:
    """'ce', or 'run-3 (lsg)' where the file's name does not already say the method."""
    return label if label == meta["method"] else f"{label} ({meta['method']})"


def dataset_label(name: str) -> str:
    """A dataset as a column shows it: an image folder by its folder's name."""
    return f"folder {Path(name.split(':', 1)[1]).name}" if name.startswith("imagefolder:") else name


def draw_table(found: dict[str, dict], figures: dict[str, dict], chosen: list[str]) -> None:
    """One row per model, the compared ones first in the sidebar's order; the figures in tabs by
    topic (in one table the columns past Phi were off the page), the CSV with all of them."""
    import pandas as pd  # here, not at the top: the server imports app.py at start, before the warm-up
    rows = []
    for label in compared_first(found, chosen):
        meta, values = found[label], dict(figures[label])
        if values.get("accuracy") is None:
            values["accuracy"] = checkpoint_accuracy(meta)
        rows.append({"model": label, "compared": label in chosen, "method": meta["method"], "arch": meta["arch"],
                     "dataset": dataset_label(meta["dataset"]), "epochs": meta.get("epochs_completed", meta.get("epochs")),
                     **{f.label: values.get(f.key) for f in HEADLINE}})
    frame = pd.DataFrame(rows)
    marked = frame.assign(model=[f"{label} ✓" if label in chosen else label for label in frame["model"]])
    st.caption("✓: compared (chosen in the sidebar), listed first. Hover a column's name for what it measures.")
    for i, (tab, figures_here) in enumerate(zip(st.tabs(list(GROUPS)), grouped().values())):
        with tab:  # the first tab, with the accuracy, also says how long each model trained
            config = {"model": st.column_config.TextColumn("model"),  # sized to the names: at 1024 px "medium" pushed figures off
                      **number_columns([f.label for f in figures_here])}
            columns = ["model", "method", *(["arch", "dataset", "epochs"] if i == 0 else []), *(f.label for f in figures_here)]
            st.dataframe(marked[columns], hide_index=True, width="stretch", column_config=config,
                         placeholder="—", height=min(38 + 35 * len(marked), 738))  # every row up to 20 (auto: 10)
    download_csv(frame, "unit-lens-models", key="overview_csv")


def compute_all(work: list[tuple[dict, list[str]]]) -> None:
    """The headline analyses each model still needs (those stored count for nothing, so the estimate
    is of real work), one after another, with 'x of N' and an estimate; a model that cannot be
    analysed is reported and the others go on."""
    from core.analysis import ANALYSES  # the engine is loaded by now (the button needs it)
    from core.analysis.engine import StepClock
    total = sum(len(needed) for _, needed in work)
    bar = st.progress(0.0, text=f"0 of {total} analyses")
    clock, done, failures = StepClock(), 0, []
    for meta, needed in work:
        for name in needed:
            left = clock.text("analyses", done, total)  # the pace so far over every analysis
            bar.progress(min(1.0, done / total),  # what runs now (its own steps show under it)
                         text=f"{done} of {total} analyses · now {plain(meta['label'])}: "
                              f"{ANALYSES[name].title}{left}")
            try:
                common.analysis(meta, name)
            except common.AnalysisSkipped:
                pass
            except common.UserError as exc:
                failures.append(f"{meta['label']}: {exc}")
                done += len(needed) - needed.index(name) - 1
                break
            finally:
                done += 1
    bar.empty()
    for failure in failures:
        st.warning(plain(failure))


def run_overview():
    common.guarded(overview)


if get_script_run_ctx(suppress_warning=True) is None:  # imported by the server (`streamlit run` serves `app`)
    app = st.App(__file__, lifespan=warm_up)
else:
    st.set_page_config(page_title="Unit Lens", page_icon=str(ICON) if ICON.exists() else None, layout="wide")
    page = st.navigation([
        st.Page(run_overview, title="Overview", url_path="overview", default=True),
        st.Page("pages/compare.py", title="Compare on an image"),
        st.Page("pages/tradeoffs.py", title="Specificity and cost"),
        st.Page("pages/selectivity.py", title="Selectivity"),
        st.Page("pages/gates.py", title="Gates"),
        st.Page("pages/ablations.py", title="Ablations"),
        st.Page("pages/unit.py", title="Unit"),
    ], position="top")
    if warm.loading() and page.url_path == "":  # the Overview, while the server still imports the engine
        loading = st.sidebar.empty()
        try:
            first_overview()
        except Exception as exc:  # noqa: BLE001 - only a head start: the full page follows
            logging.getLogger("unitlens").warning("drawing the first Overview failed: %r", exc)
        warm.wait(lambda: loading.caption("Loading PyTorch: the model choice and training appear in a moment."))
        st.rerun()
    # the spinner shows only if the import takes over half a second (a deep link while the server warms up)
    with st.spinner("Starting Unit Lens: loading PyTorch (a few seconds, once per server start)…"):
        from ui import common
    with entry():
        common.app_frame()
        page.run()
