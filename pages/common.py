"""Shared by every page: cached models and analyzers, the model choice, downloads, the error
guard, and the sidebar's training panel. Widgets and caching only; the work is in core."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from core import runs
from core.analysis.engine import DEFAULT_TRAIN_LIMIT, Analyzer
from core.checkpoints import CheckpointError, discover, load_checkpoint, model_label
from core.data import DataError, ImageError
from core.losses import OBJECTIVES
from core.models import MODELS
from core.render import altair_png, png_bytes
from core.store import Store, StoreError

EVAL_LIMIT = int(os.environ.get("UNITLENS_EVAL_LIMIT", "0")) or None
TRAIN_LIMIT = int(os.environ.get("UNITLENS_TRAIN_LIMIT", str(DEFAULT_TRAIN_LIMIT))) or None
EXTRA_DIRS = [d for d in os.environ.get("UNITLENS_MODEL_DIRS", "").split(os.pathsep) if d]
DEFAULT_METHODS = ("ce", "minimax", "lsg")
_ENTRY = threading.local()  # set while app.py (the navigation entry) runs in this thread
EXPECTED_ERRORS = (CheckpointError, DataError, ImageError, StoreError, runs.RunError, ValueError, OSError)


# ----------------------------------------------------------------------------- caches
@st.cache_resource(show_spinner=False)
def store() -> Store:
    return Store()


@st.cache_resource(show_spinner=False, max_entries=64)
def _load(path: str, mtime: float, size: int):
    return load_checkpoint(path)


def load_model(path: str):
    """(model, meta), cached until the file changes; CheckpointError for a bad file."""
    stat = Path(path).stat()
    return _load(path, stat.st_mtime, stat.st_size)


def available_models() -> tuple[dict[str, dict], list[str]]:
    """label -> meta for every loadable checkpoint, and one line per file that failed."""
    found, errors = {}, []
    for path in discover(EXTRA_DIRS):
        try:
            _, meta = load_model(str(path))
        except (CheckpointError, OSError) as exc:
            errors.append(str(exc))
            continue
        label = model_label(meta)
        if label in found:
            label = f"{label} ({Path(path).parent.name})"
        found[label] = meta
    return found, errors


@st.cache_resource(show_spinner=False, max_entries=32)
def _analyzer(path: str, content_hash: str) -> tuple[Analyzer, threading.Lock]:
    return Analyzer(path, store(), limit=EVAL_LIMIT, train_limit=TRAIN_LIMIT), threading.Lock()


def analyzer(meta: dict) -> tuple[Analyzer, threading.Lock]:
    return _analyzer(meta["path"], meta["content_hash"])


def analysis(meta: dict, name: str, **params) -> dict:
    """A result from the store, or computed now with a progress bar (one at a time per model)."""
    engine, lock = analyzer(meta)
    with lock:
        cached = engine.cached(name, **params)
        if cached is not None:
            return cached
        bar = st.progress(0.0, text=f"{model_label(meta)}: computing {name}")

        def report(step, done, total):
            bar.progress(min(1.0, done / max(1, total)), text=f"{model_label(meta)}: {step}")
        engine.progress = report
        try:
            return engine.run(name, **params)
        finally:
            engine.progress = None
            bar.empty()


def show_store_notices() -> None:
    for notice in store().notices:
        st.toast(notice)
    store().notices.clear()


# ----------------------------------------------------------------------------- the frame
def app_frame() -> None:
    """The sidebar every page shares; app.py calls it before the page runs."""
    _ENTRY.active = True
    st.set_page_config(page_title="Unit Lens", page_icon=":material/biotech:", layout="wide")
    guarded(model_choice)
    guarded(training_panel)


def page_frame() -> None:
    """At the top of every page: a page opened by a deep link on a freshly started server runs
    without app.py (Streamlit's pages/ folder mode), so it draws the shared sidebar itself."""
    if not getattr(_ENTRY, "active", False):
        app_frame()


def leave_frame() -> None:
    _ENTRY.active = False


# ----------------------------------------------------------------------------- the model choice
def model_choice() -> list[dict]:
    """The models to compare, chosen in the sidebar and shared by every page."""
    found, errors = available_models()
    st.session_state["app_found"] = found
    labels = list(found)
    defaults = [m for m in DEFAULT_METHODS if m in labels] or labels[:3]
    # app_chosen is the source of truth; the widget is re-seeded from it on every page
    chosen = [label for label in st.session_state.get("app_chosen", defaults) if label in labels]
    st.session_state["app_chosen"] = st.session_state["app_models"] = chosen
    st.sidebar.multiselect("Models to compare", labels, key="app_models",
                           on_change=lambda: st.session_state.update(app_chosen=st.session_state["app_models"]),
                           help="Bundled checkpoints, runs trained here, and folders in UNITLENS_MODEL_DIRS")
    for error in errors:
        st.sidebar.caption(f"skipped: {error}")
    return [found[label] | {"label": label} for label in chosen if label in found]


def chosen_models() -> list[dict]:
    found = st.session_state.get("app_found", {})
    return [found[label] | {"label": label} for label in st.session_state.get("app_chosen", []) if label in found]


def require_models(minimum: int = 1) -> list[dict]:
    models = chosen_models()
    if len(models) < minimum:
        st.info("Choose at least one model in the sidebar (or train one).")
        st.stop()
    return models


# ----------------------------------------------------------------------------- downloads and guard
def download_csv(frame: pd.DataFrame, name: str, key: str) -> None:
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), f"{name}.csv", "text/csv", key=key,
                       on_click="ignore")


def download_png(image, name: str, key: str, label: str = "PNG") -> None:
    st.download_button(label, lambda: png_bytes(image), f"{name}.png", "image/png", key=key, on_click="ignore")


def chart(figure, name: str, key: str, container=None, **kwargs):
    """An Altair chart with a PNG download under it (rendered only when clicked)."""
    container = container or st
    kwargs.setdefault("width", "stretch")
    event = container.altair_chart(figure, key=key, **kwargs)
    container.download_button("PNG", data=lambda: altair_png(figure), file_name=f"{name}.png", mime="image/png",
                              key=f"{key}_png", on_click="ignore")
    return event


def picked_unit(event) -> int | None:
    """The unit of a click on an Altair point selection named `unit_pick`, or None. Streamlit's
    event is a dict: {"selection": {"unit_pick": [{"unit": 7, ...}]}}, with {} before any click."""
    points = (event or {}).get("selection", {}).get("unit_pick") or []
    unit = points[0].get("unit") if points else None
    return None if unit is None else int(unit)


def guarded(render) -> None:
    """Run a page; an expected failure is one clear line, an unexpected one too (never a traceback)."""
    try:
        render()
        show_store_notices()
    except EXPECTED_ERRORS as exc:
        st.error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - the browser gets one line, never a traceback
        first = str(exc).splitlines()[0] if str(exc) else ""
        st.error(f"Something went wrong: {type(exc).__name__}: {first[:200]}")


# ----------------------------------------------------------------------------- training panel
def training_panel() -> None:
    with st.sidebar.expander("Train a model", expanded=False):
        method = st.selectbox("Method", sorted(OBJECTIVES), index=sorted(OBJECTIVES).index("minimax"), key="train_method")
        options = {}
        for key, (default, help_text) in OBJECTIVES[method].options.items():
            label = key.replace("_", " ")
            if isinstance(default, bool):
                options[key] = st.checkbox(label, value=default, help=help_text, key=f"train_opt_{method}_{key}")
            elif isinstance(default, int):
                options[key] = st.number_input(label, value=default, step=1, help=help_text, key=f"train_opt_{method}_{key}")
            else:
                options[key] = st.number_input(label, value=float(default), format="%g", help=help_text,
                                               key=f"train_opt_{method}_{key}")
        arch = st.selectbox("Architecture", sorted(MODELS), index=sorted(MODELS).index("resnet20"), key="train_arch")
        dataset = st.text_input("Dataset", "fashion-mnist", key="train_dataset",
                                help="fashion-mnist, cifar10, cifar100, stl10 or imagefolder:PATH")
        epochs = st.number_input("Epochs", 1, 500, 1, key="train_epochs")
        limit = st.number_input("Use only the first N images (0: all)", 0, 10_000_000, 2000, step=500, key="train_limit")
        if st.button("Start", key="train_start", type="primary"):
            try:
                run = runs.start_run(method, options, dataset, arch, int(epochs), int(limit) or None)
                st.success(f"started {run.run_id}")
            except runs.RunError as exc:
                st.warning(str(exc))
        # refreshes itself every 2 s only while a run trains (an idle page stays idle)
        st.fragment(run_monitor, run_every=2 if runs.active_run() else None)()


def run_monitor() -> None:
    """Progress of the active run and the list of runs."""
    all_runs = runs.list_runs()
    runs.ingest(store(), all_runs)
    active = next((r for r in all_runs if r.status == "running"), None)
    if active is not None:
        step = active.last_step or {}
        text = (f"{active.run_id}: epoch {step.get('epoch', 0)}, loss {step.get('loss', float('nan')):.3f}, "
                f"{step.get('images_per_s', 0):.0f} img/s, eta {step.get('eta_s', 0):.0f} s")
        st.progress(active.fraction, text=text)
        points = [e for e in active.events if e.get("event") == "step"]
        if len(points) > 1:
            frame = pd.DataFrame(points)[["global_step", "loss", "accuracy"]].set_index("global_step")
            st.line_chart(frame, height=140)
        if st.button("Cancel", key="train_cancel"):
            try:
                runs.cancel_run(active)
            except runs.RunError as exc:
                st.warning(str(exc))
    for run in all_runs[:8]:
        icon = {"running": ":material/hourglass_top:", "done": ":material/check_circle:",
                "failed": ":material/error:", "cancelled": ":material/stop_circle:"}[run.status]
        accuracy = next((e.get("test_accuracy") for e in reversed(run.events) if e.get("event") == "done"), None)
        extra = f" — test acc {accuracy:.3f}" if accuracy is not None else ""
        st.caption(f"{icon} {run.run_id}: {run.status}{extra}")
        if run.status == "failed" and run.message:
            st.code(run.message, language=None)
    for run in all_runs:
        if run.status == "done" and run.run_id not in st.session_state.get("app_seen_runs", set()):
            st.session_state.setdefault("app_seen_runs", set()).add(run.run_id)
            if st.session_state.get("app_runs_initialised"):
                st.rerun(scope="app")  # a finished run joins the model list; the refresh stops
    st.session_state["app_runs_initialised"] = True
