"""Unit Lens: the Streamlit entry. The navigation comes first (so a first visit never shows
anything else), then the sidebar (model choice, training), then the page; the Overview page
lives here, the others in pages/.

`streamlit run app.py` finds the `st.App` below and serves this file as the script. The server
then starts importing PyTorch and the engine at once, in the background, so the first visitor
does not wait for it (2-3 s on 2 cores); a visit that arrives sooner says what it waits for."""
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

ICON = Path(__file__).resolve().parent / "docs" / "icon.png"


@asynccontextmanager
async def warm_up(_app):
    """At server start: import the engine on a thread (the first script run waits on Python's
    import lock rather than importing it again)."""
    threading.Thread(target=__import__, args=("ui.common",), name="unitlens-warm-up", daemon=True).start()
    yield


def overview() -> None:
    st.title("Unit Lens")
    st.caption("Class-specific units in CNNs: compare models trained with cross-entropy, the minimax loss, "
               "Label Sensitive Gates and baselines, on one image or over the whole test set.")
    found = st.session_state.get("app_found", {})
    if not found:
        st.info("No checkpoints found. Train one from the sidebar, or put .pt files in checkpoints/.")
        return
    rows, missing = [], []
    compared = {m["label"] for m in common.chosen_models()}
    for label, meta in sorted(found.items(), key=lambda item: item[0] not in compared):  # compared models first
        engine, _ = common.analyzer(meta)
        results = {name: None if engine.skipped_reason(name) else engine.cached(name) for name in ANALYSES_NEEDED}
        if any(results[n] is None and not engine.skipped_reason(n) for n in ANALYSES_NEEDED):
            missing.append(label)
        figures = {f.key: (f.read(results[f.analysis]) if results[f.analysis] else None) for f in HEADLINE}
        if figures["accuracy"] is None:
            figures["accuracy"] = meta.get("test_accuracy")
        rows.append({"model": label, "method": meta["method"], "epochs": meta.get("epochs_completed", meta.get("epochs")),
                     **{f.label: figures[f.key] for f in HEADLINE}})
    frame = pd.DataFrame(rows)
    config = {f.label: st.column_config.NumberColumn(f.label, help=f.help, format="%d" if f.sql == "INTEGER" else "%.3f")
              for f in HEADLINE}
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config)
    common.download_csv(frame, "unit-lens-models", key="overview_csv")
    if missing:
        st.caption(f"Not computed yet for {len(missing)} model(s): {common.plain(', '.join(missing))} "
                   "(empty cells; accuracy is read from the checkpoint).")
        if st.button(f"Compute metrics for {len(missing)} model(s)", key="overview_compute",
                     help="Stop it with the Stop button at the top right; finished models are kept"):
            compute_all([found[label] | {"label": label} for label in missing])
            st.rerun()
    chosen = common.chosen_models()
    st.subheader("Compared models")
    st.write(", ".join(f"{common.plain(m['label'])} ({common.plain(m['method'])})" for m in chosen) or "none chosen")
    st.caption("Pick the models in the sidebar; every page compares them side by side. "
               "Every chart has a PNG download under it; tables download as CSV.")
    with st.expander("Checkpoint details"):
        for label, meta in found.items():  # st.code shows text as it is (never markdown)
            st.code(f"{label} ({meta['method']}): {meta['path']}\n{meta.get('command') or 'no command recorded'}\n"
                    f"options {meta.get('options', {})}, seed {meta.get('seed')}, trained {meta.get('time', '?')}, "
                    f"torch {meta.get('versions', {}).get('torch', '?')}", language=None, wrap_lines=True)


def compute_all(models: list[dict]) -> None:
    """Every headline analysis of every model, one after another, with 'x of N' and an estimate;
    a model that cannot be analysed is reported and the others go on."""
    total = len(models) * len(ANALYSES_NEEDED)
    bar = st.progress(0.0, text=f"0 of {total}")
    started, done, failures = pd.Timestamp.now(), 0, []
    for meta in models:
        for name in ANALYSES_NEEDED:
            try:
                common.analysis(meta, name)
            except AnalysisSkipped:
                pass
            except common.UserError as exc:
                failures.append(f"{meta['label']}: {exc}")
                done += len(ANALYSES_NEEDED) - ANALYSES_NEEDED.index(name) - 1
                break
            finally:
                done += 1
                elapsed = (pd.Timestamp.now() - started).total_seconds()
                remaining = elapsed / done * (total - done)
                bar.progress(min(1.0, done / total), text=f"{done} of {total} · {common.plain(meta['label'])} · "
                                                          f"about {remaining:.0f} s left")
    bar.empty()
    for failure in failures:
        st.warning(common.plain(failure))


def run_overview():
    common.guarded(overview)


if get_script_run_ctx(suppress_warning=True) is None:  # imported by the server (`streamlit run` serves `app`), not run for a visitor
    app = st.App(__file__, lifespan=warm_up)
else:
    st.set_page_config(page_title="Unit Lens", page_icon=str(ICON) if ICON.exists() else None, layout="wide")
    page = st.navigation([
        st.Page(run_overview, title="Overview", url_path="overview", default=True),
        st.Page("pages/compare.py", title="Compare on an image"),
        st.Page("pages/selectivity.py", title="Selectivity"),
        st.Page("pages/gates.py", title="Gates"),
        st.Page("pages/ablations.py", title="Ablations"),
        st.Page("pages/unit.py", title="Unit"),
    ], position="top")
    # shown only if the import takes over half a second: a visit that arrives while the server warms up
    with st.spinner("Starting Unit Lens: loading PyTorch (a few seconds, once per server start)…"):
        import pandas as pd
        from core.analysis.engine import AnalysisSkipped
        from core.analysis.headline import ANALYSES_NEEDED, HEADLINE
        from ui import common
    with common.entry():
        common.app_frame()
        page.run()
