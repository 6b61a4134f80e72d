"""Shared by every page: one cached record per checkpoint (model, metadata, analyzer), the model
choice, chart and PNG downloads, the error guard, and the sidebar's training panel; plain-text
display and CSV downloads come from ui/basics.py (free of PyTorch). Widgets and caching only;
the work is in core."""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core import runs
from core.analysis.engine import DEFAULT_TRAIN_LIMIT, Analyzer, AnalysisSkipped, StepClock
from core.analysis.base import fed_by_training
from core.analysis.features import describe_analysis_device
from core.catalog import analysis_limits, describe_analysis_limits, discover, extra_dirs, labelled, weight_files
from core.checkpoints import CheckpointError, LoadedCheckpoint, load
from core.charts import training_curve
from core.data import DATASETS, on_this_machine
from core.errors import UserError
from core.import_weights import import_into_folder
from core.losses import OBJECTIVES
from core.models import MODELS
from core.progress import format_seconds, steps_of, summarize
from core.render import altair_png, png_bytes
from core.store import Store
from core.trainer import describe_device
from ui.basics import default_models, download_csv, number_columns, plain  # noqa: F401  (pages use them as common.*)

log = logging.getLogger("unitlens")


# ----------------------------------------------------------------------------- caches
@st.cache_resource(show_spinner=False)
def store() -> Store:
    return Store()


@dataclass
class ModelRecord:
    """One checkpoint as the app holds it: read, built and hashed once; its analyzer and the lock
    that lets one computation at a time run on it."""
    checkpoint: LoadedCheckpoint
    analyzer: Analyzer
    lock: threading.Lock


def limits() -> tuple[int | None, int | None]:
    """(test, train) images the app's analyses read (None: the whole split)."""
    test_limit, train_limit = analysis_limits()
    return test_limit, train_limit or DEFAULT_TRAIN_LIMIT


def training_note(analysis: str) -> None:
    """Under a figure of `analysis`, where it (or one it builds on) fits or counts on the training
    split: how many training images fed it (all, or the class-balanced sample a limit reads), so
    figures read at a limit are never taken for the whole split's."""
    if fed_by_training(analysis):
        train_limit = limits()[1]
        read = (f"a seeded class-balanced sample of up to {train_limit:,} training images a model "
                "(UNITLENS_TRAIN_LIMIT)" if train_limit else "every training image of each model's dataset")
        st.caption(f"Fitted or counted on {read}.")


@st.cache_resource(show_spinner=False, max_entries=64)
def _record(path: str, mtime: float, size: int) -> ModelRecord:
    test_limit, train_limit = limits()
    checkpoint = load(path)
    analyzer = Analyzer(checkpoint, store(), limit=test_limit, train_limit=train_limit)
    analyzer.read_through(listing(path).stored)  # one parsed copy of each result (a 1000-class gate: 80 MB of JSON)
    return ModelRecord(checkpoint, analyzer, threading.Lock())


def file_key(path: str) -> tuple[str, float, int]:
    """(path, mtime, size): what the caches are keyed by, so a changed file is read again."""
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise CheckpointError(f"{Path(path).name}: {exc.strerror or exc}") from None
    return path, stat.st_mtime, stat.st_size


def record(path: str) -> ModelRecord:
    """The cached record, rebuilt when the file changes; CheckpointError for a bad file."""
    return _record(*file_key(path))


@dataclass
class Listing:
    """One checkpoint as the model list and the Overview need it: its checked metadata and an
    analyzer that only reads stored results, its model a skeleton on the meta device (no
    weights). Hundreds of checkpoints are listed without holding their models: with only the
    records' 64, every Overview visit past 64 checkpoints rebuilt every model (50-83 s)."""
    meta: dict
    stored: Analyzer


@st.cache_resource(show_spinner=False, max_entries=4096)
def _listing(path: str, mtime: float, size: int) -> Listing:
    import torch
    checkpoint = load(path)  # checked whole once, as a record is
    checkpoint.model.to(torch.device("meta"))  # its weights freed: the skeleton answers what suits it
    test_limit, train_limit = limits()
    return Listing(checkpoint.meta, Analyzer(checkpoint, store(), limit=test_limit, train_limit=train_limit))


def listing(path: str) -> Listing:
    """The cached listing, read again when the file changes; CheckpointError for a bad file."""
    return _listing(*file_key(path))


def stored_results(meta: dict) -> Analyzer:
    """An analyzer that reads a model's stored results (cached, headline_figures, skipped_reason)
    and never computes: compute with `analysis`."""
    return listing(meta["path"]).stored


def load_model(path: str):
    """(model, meta) of a checkpoint, from its record."""
    rec = record(path)
    return rec.checkpoint.model, rec.checkpoint.meta


def available_models() -> tuple[dict[str, dict], list[str]]:
    """label -> meta for every loadable checkpoint, and one line per file that was skipped."""
    found, errors = {}, []
    for label, path in labelled(discover(extra_dirs())).items():
        try:
            found[label] = listing(str(path)).meta
        except CheckpointError as exc:
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - one file the checks missed is refused, never every model
            log.exception("reading %s", path)
            errors.append(f"{Path(path).name}: not readable as a model ({type(exc).__name__})")
    imported = {meta.get("source", {}).get("file") for meta in found.values()}
    errors += [f"{path.name}: a weights file, not yet a model: add it with 'Add a model from a weights file' "
               "or python -m core.import_weights" for path in weight_files(extra_dirs()) if path.name not in imported]
    return found, errors


def preload() -> None:
    """Every checkpoint read and the results its headline figures come from, by the server's
    warm-up thread (ui/warm.py) before the first full page, which then finds them cached (a
    1000-class model's are 140 MB of JSON, seconds to read)."""
    for meta in available_models()[0].values():
        stored_results(meta).headline_figures()


def build_default_models() -> None:
    """The models compared before the user chooses, built by the warm-up thread once the Overview
    can be drawn: the first visit to a page that runs them (a ResNet-50 takes a second or more to
    build) finds them ready."""
    found, _ = available_models()
    for label in default_models(list(found)):
        try:
            record(found[label]["path"])
        except CheckpointError:  # changed since it was listed: its page says so; build the others
            continue


def analyzer(meta: dict) -> tuple[Analyzer, threading.Lock]:
    rec = record(meta["path"])
    return rec.analyzer, rec.lock


def depth_layers(meta: dict) -> list[str]:
    """A model's depth layers by name, shallowest first (the layers whose channels the layer-wise
    analyses take as units)."""
    return list(load_model(meta["path"])[0].depth_layers())


def layer_names(models: list[dict]) -> list[str]:
    """The depth layers of the compared models, each once, in order."""
    return list(dict.fromkeys(name for meta in models for name in depth_layers(meta)))


def on_request(models: list[dict], name: str, button: str, key: str, **params) -> list[dict]:
    """The models an on-request analysis suits. Those without a stored result get one button
    (`button`, where {count} is their number, says what it costs) that computes it for each; the
    page is then drawn again without the button."""
    suited = [m for m in models if not stored_results(m).skipped_reason(name)]
    missing = [m for m in suited if stored_results(m).cached(name, **params) is None]
    if missing and st.button(button.format(count=len(missing)), key=key):
        for meta in missing:
            analysis(meta, name, **params)
        st.rerun()
    return suited


def analysis(meta: dict, name: str, **params) -> dict:
    """A result from the store, or computed now with a progress bar (one at a time per model).
    A stored one is read through the model's listing, without building the model; the record's
    analyzer shares what it reads and computes (Analyzer.read_through)."""
    cached = stored_results(meta).cached(name, **params)
    if cached is not None:
        return cached
    engine, lock = analyzer(meta)
    with lock:
        cached = engine.cached(name, **params)
        if cached is not None:
            return cached
        bar = st.progress(0.0, text=f"{plain(meta.get('label', engine.name))}: computing {name}")
        clock = StepClock()

        def report(step, done, total):
            bar.progress(min(1.0, done / max(1, total)),
                         text=f"{plain(meta.get('label', engine.name))}: {plain(step)}{clock.text(step, done, total)}")
        engine.progress = report
        try:
            return engine.run(name, **params)
        finally:
            engine.progress = None
            bar.empty()


def show_store_notices() -> None:
    for notice in store().notices:
        st.toast(plain(notice))
    store().notices.clear()


# ----------------------------------------------------------------------------- the frame
def app_frame() -> None:
    """The sidebar every page shares; app.py calls it before the page runs."""
    guarded(model_choice)
    guarded(training_panel)
    guarded(import_panel)
    guarded(where_it_runs)


def where_it_runs() -> None:
    st.sidebar.caption(f"Training runs on: {describe_device()}. The analyses' forward passes run on: "
                       f"{describe_analysis_device()}. {describe_analysis_limits()}")


# ----------------------------------------------------------------------------- the model choice
def model_choice() -> list[dict]:
    """The models to compare, chosen in the sidebar and shared by every page."""
    found, errors = available_models()
    st.session_state["app_found"] = found
    labels = list(found)
    defaults = default_models(labels)
    # kept across pages (each draws the sidebar anew); a model whose file went is dropped from the choice
    choose("app_models", [label for label in st.session_state.get("app_models_chosen", defaults) if label in labels])
    st.sidebar.multiselect("Models to compare", labels, **kept("app_models", defaults),
                           help="Bundled checkpoints, runs trained here, and folders in UNITLENS_MODEL_DIRS")
    for error in errors:
        st.sidebar.caption(f"skipped: {plain(error)}")
    return chosen_models()


def chosen_models() -> list[dict]:
    found = st.session_state.get("app_found", {})
    return [found[label] | {"label": label} for label in st.session_state.get("app_models_chosen", []) if label in found]


def require_models(minimum: int = 1) -> list[dict]:
    models = chosen_models()
    if len(models) < minimum:
        st.info("Choose at least one model in the sidebar (or train one).")
        st.stop()
    return models


# ----------------------------------------------------------------------------- downloads and guard
def download_png(image, name: str, key: str, label: str = "PNG") -> None:
    st.download_button(label, lambda: png_bytes(image), f"{name}.png", "image/png", key=key, on_click="ignore")


def chart(figure, name: str, key: str, container=None, **kwargs):
    """An Altair chart with a PNG download under it (rendered only when clicked). Drawn with
    Vega-Lite's own theme, not Streamlit's, so the PNG has the colours of the screen."""
    container = container or st
    kwargs.setdefault("width", "stretch")
    kwargs.setdefault("theme", None)
    event = container.altair_chart(figure, key=key, **kwargs)
    container.download_button("PNG", data=lambda: altair_png(figure), file_name=f"{name}.png", mime="image/png",
                              key=f"{key}_png", on_click="ignore")
    return event


def grid(count: int, per_row: int) -> list:
    """`count` cells in rows of at most `per_row` columns, each row starting level (models side by
    side: more to a row squeezed their names, pictures and charts unreadably)."""
    per_row = max(1, min(count, per_row))
    return [column for _ in range(0, count, per_row) for column in st.columns(per_row)]


def kept(key: str, default, options=None) -> dict:
    """A widget's `key` and `on_change` (spread into the call) so that it is drawn with the user's
    last choice on every run, and a new one is recorded. A widget left out of a run (the other
    view, another page, a file being replaced) and drawn again otherwise comes back at its default,
    and the frontend sends that back as if chosen. `options`: a kept choice no longer among them
    falls back to `default`."""
    chosen = f"{key}_chosen"
    if options is not None and st.session_state.get(chosen) not in options:
        st.session_state.pop(chosen, None)
    st.session_state[key] = st.session_state.get(chosen, default)
    return {"key": key, "on_change": lambda: st.session_state.update({chosen: st.session_state[key]})}


def choose(key: str, value) -> None:
    """Set a kept widget's value from the page (a link, a Random button) before it is drawn."""
    st.session_state[key] = st.session_state[f"{key}_chosen"] = value


def picked_unit(event, field: str = "unit") -> int | None:
    """The unit of a click on an Altair point selection named `unit_pick` (on `field`), or None.
    Streamlit's event is a dict: {"selection": {"unit_pick": [{"unit": 7, ...}]}}, {} before any click."""
    points = (event or {}).get("selection", {}).get("unit_pick") or []
    unit = points[0].get(field) if points else None
    return None if unit is None else int(unit)


def open_unit_from(event, model_label: str, field: str = "unit") -> None:
    """A click on a unit in a chart -> the unit page, with the model and unit in the URL."""
    unit = picked_unit(event, field)
    if unit is not None:
        st.switch_page("pages/unit.py", query_params={"model": model_label, "unit": unit})


def parse_unit(text: str, num_units: int) -> tuple[int | None, str | None]:
    """A unit number from a link: (unit, None), or (None, what was asked) when it is not one."""
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()):
        return None, f"unit “{clipped(text)}”, which is not a unit number"
    digits = text.lstrip("0") or "0"  # Python refuses int() of over 4300 digits: compare lengths first
    if len(digits) > len(str(num_units - 1)) or int(digits) >= num_units:
        return None, f"unit {clipped(digits)}, but this model has units 0 to {num_units - 1}"
    return int(digits), None


def clipped(text: str, most: int = 20) -> str:
    """A value from a link, as a warning quotes it: a long one cut (a 3000-character link filled the page)."""
    return text if len(text) <= most else text[:most] + "…"


def guarded(render) -> None:
    """Run a page. A user error (core.errors.UserError) is one line; an analysis that does not
    suit a model says why; anything else is a programming error: its traceback goes to the
    server log and the page says so in one line (never a traceback in the browser)."""
    try:
        render()
        show_store_notices()
    except AnalysisSkipped as exc:
        st.info(plain(exc))
    except UserError as exc:
        st.error(plain(exc))
    except Exception as exc:  # noqa: BLE001 - the browser gets one line, never a traceback
        log.exception("internal error while rendering a page")
        st.error(f"Internal error ({plain(type(exc).__name__)}); the details are in the server log.")


# ----------------------------------------------------------------------------- training panel
def training_panel() -> None:
    with st.sidebar.expander("Train a model", expanded=False):
        methods = st.multiselect("Methods", sorted(OBJECTIVES), ["minimax"], key="train_methods",
                                 help="One run per method, on the same data: on a GPU they train at once, "
                                      "on the CPU one after another")
        options = {method: method_options(method, several=len(methods) > 1) for method in methods}
        sweep = sweep_fields(methods)
        arch = st.selectbox("Architecture", sorted(MODELS), index=sorted(MODELS).index("resnet20"), key="train_arch")
        choices = [*DATASETS, "image folder"]
        present = {name: name == "image folder" or on_this_machine(name) for name in choices}
        dataset = st.selectbox("Dataset", choices, key="train_dataset",
                               format_func=lambda name: name if present[name] else f"{name} (not downloaded)",
                               help="Fashion-MNIST comes with Unit Lens; the others need `python -m core.data "
                                    "download NAME` first (the network). An image folder has one sub-folder per class")
        if dataset == "image folder":
            folder = st.text_input("Folder", key="train_folder", placeholder="/path/to/images")
            dataset = f"imagefolder:{folder}"
        init = st.text_input("Initial weights (optional)", key="train_init", placeholder="/path/to/weights.pth",
                             help="a .pth/.pt/.safetensors state dict of the architecture, or a Unit Lens "
                                  "checkpoint of it; a head of another class count is trained anew")
        input_size = st.number_input("Input size of the images (0: 64, or 224 for torchvision's families)",
                                     0, 512, 0, key="train_input_size") if dataset.startswith("imagefolder:") else 0
        epochs = st.number_input("Epochs", 1, 500, 2, key="train_epochs")  # LSG's gated steps begin in epoch 2
        head_only = st.number_input("Of which, epochs training only the last layer", 0, 500, 0, key="train_head_only",
                                    help="fit a new head to the initial weights before the rest moves") if init.strip() else 0
        limit = st.number_input("Use only N images, a class-balanced sample (0: all)", 0, 10_000_000, 2000, step=500, key="train_limit",
                                help="of the training split, and of the test split each epoch is measured on: a "
                                     "quick look; 0 trains on all of it (minutes an epoch on a CPU)")
        if st.button("Start", key="train_start", type="primary", disabled=not methods):
            try:
                choices, seeds = list(options.items()), None
                if sweep:
                    choices, seeds = runs.sweep_choices(methods[0], options[methods[0]], *sweep)
                started = runs.start_runs(choices, dataset, arch, int(epochs), int(limit) or None,
                                          init=init.strip(), input_size=int(input_size) or None,
                                          head_only_epochs=int(head_only), seeds=seeds)
                st.toast(f"started {plain(', '.join(run.run_id for run in started))}")  # the monitor shows the rest
            except UserError as exc:
                st.warning(plain(exc))
        # refreshes itself every second only while a run trains (an idle page stays idle)
        st.fragment(guarded_run_monitor, run_every=1 if runs.active_run() else None)()


def import_panel() -> None:
    """The sidebar's face of core.import_weights: a weights file on this machine becomes a model
    in the runs folder, listed with the others."""
    with st.sidebar.expander("Add a model from a weights file", expanded=False):
        weights = st.text_input("Weights file", key="import_weights", placeholder="/path/to/resnet50.pth",
                                help=".pth/.pt (a state dict, read with weights_only) or .safetensors")
        arch = st.selectbox("Architecture", sorted(MODELS), index=sorted(MODELS).index("resnet50"), key="import_arch")
        folder = st.text_input("Images its figures are computed on", key="import_dataset",
                               placeholder="/path/to/images, or cifar10",
                               help="an image folder (one sub-folder per class, with train/ and test/ or val/, or one "
                                    "tree split once) or a dataset's name")
        classes = st.text_input("Classes (optional)", key="import_classes", placeholder="imagenet, a count, or a file",
                                help="default: the head's count, named after the image folder's class folders")
        if st.button("Add", key="import_add", disabled=not weights.strip() or not folder.strip()):
            try:
                meta = import_into_folder(weights, arch, folder, classes)
                st.toast(f"added {plain(Path(meta['path']).stem)}")
            except UserError as exc:
                st.warning(plain(exc))


HEATMAP_CLASSES, HEATMAP_UNITS = 50, 256  # cells drawn at once; a 1000-class ResNet-50's gate has 2 million


def window(label: str, total: int, size: int, key: str) -> slice:
    """All of `total` items, or `size` of them from where the user asks: a 1000 x 2048 heatmap is
    2 million cells, more than a browser draws."""
    if total <= size:
        return slice(0, total)
    start = int(st.number_input(f"{label}: from (of {total}, {size} at a time)", 0, total - 1,
                                **kept(key, 0), step=size))
    return slice(start, min(total, start + size))


RANKINGS = ["largest first", "by number"]


def ranked_window(label: str, total: int, scores, size: int, key: str) -> list[int]:
    """The positions to draw: all `total` in order when they fit; otherwise `size` of them from
    where the user asks, largest score first by default (`scores()`, asked only then), so the
    first page holds the top units or classes and the pager the rest (or by number, to find one)."""
    if total <= size:
        return list(range(total))
    order = st.radio(f"{label}: order", RANKINGS, horizontal=True, **kept(f"{key}_order", RANKINGS[0], RANKINGS))
    positions = list(range(total))
    if order == RANKINGS[0]:
        values = scores()
        positions.sort(key=lambda i: -values[i] if values[i] is not None and not math.isnan(values[i]) else math.inf)
    return positions[window(label, total, size, key)]


def guarded_run_monitor() -> None:
    """The monitor redraws itself apart from the page: it needs its own one-line errors."""
    guarded(run_monitor)


def sweep_fields(methods: list[str]) -> tuple[str, str, str] | None:
    """(option, values, seeds) of a sweep when one is asked for: one method's numeric option over
    several values, each with several seeds (the Specificity and cost page draws the figures
    against the value, mean +- std over the seeds)."""
    if len(methods) != 1 or not runs.sweepable(methods[0]):
        return None
    if not st.toggle("Sweep an option over values and seeds", key="train_sweep",
                     help="one run per value and seed, instead of one run: the minimax paper's Fig. 5 and the "
                          "mean +- std of its Table 1"):
        return None
    option = st.selectbox("Option", runs.sweepable(methods[0]), key="train_sweep_option")
    values = st.text_input("Values", key="train_sweep_values", placeholder="0.6, 0.7, 0.9",
                           help="replace the option's value above, one run each")
    seeds = st.text_input("Seeds", "0, 1, 2", key="train_sweep_seeds")
    return option, values, seeds


def method_options(method: str, several: bool) -> dict:
    """The method's own options as widgets (under its name when several methods are chosen)."""
    fields = OBJECTIVES[method].options
    if fields and several:
        st.caption(plain(f"{method} options"))
    options = {}
    for key, (default, help_text) in fields.items():
        label, widget_key = key, f"train_opt_{method}_{key}"  # as recorded in the checkpoint and in the help
        if isinstance(default, bool):
            options[key] = st.checkbox(label, value=default, help=help_text, key=widget_key)
        elif isinstance(default, int):
            options[key] = st.number_input(label, value=default, step=1, help=help_text, key=widget_key)
        else:
            options[key] = st.number_input(label, value=float(default), format="%g", help=help_text, key=widget_key)
    return options


def progress_text(progress, loss_label: str = "loss") -> str:
    """One line a researcher can read at a glance, from the first second of a run."""
    if not progress.global_step:  # before the first step: its phase, or nothing written yet
        if not progress.phase:
            return "starting: loading PyTorch"
        waited = "waiting" if progress.queued else "elapsed"
        return f"{progress.phase} · {waited} {format_seconds(progress.elapsed_s)}"
    parts = [f"epoch {max(progress.epoch, 1)}/{progress.epochs or '?'}"]
    if progress.steps_per_epoch:
        parts.append(f"step {progress.step}/{progress.steps_per_epoch}")
    if progress.loss is not None:
        parts.append(f"{loss_label} {progress.loss:.3f}")
    if progress.images_per_s:
        parts.append(f"{progress.images_per_s:,.0f} img/s")
    parts.append(f"elapsed {format_seconds(progress.elapsed_s)}")
    if progress.eta_s is not None:
        parts.append(f"remaining {format_seconds(progress.eta_s)}")
    return " · ".join(parts)


def attempt(action, run, rerun: bool = True) -> None:
    """A run's button: do it, then redraw the whole app (the model list changes); a refusal is
    one line here."""
    try:
        action(run)
    except UserError as exc:
        st.warning(plain(exc))
        return
    if rerun:
        st.rerun(scope="app")


def run_monitor() -> None:
    """A progress bar and Cancel for every running run (training or queued), and the list of
    runs with resume and delete."""
    all_runs = runs.list_runs()
    runs.ingest(store(), all_runs)
    for active in reversed([r for r in all_runs if r.status == "running"]):  # in the order started
        progress = summarize(active.events)
        loss_label = OBJECTIVES[active.method].loss_label if active.method in OBJECTIVES else "loss"
        st.progress(progress.fraction, text=plain(f"{active.run_id}: {progress_text(progress, loss_label)}"))
        points = steps_of(active.events)
        if len(points) > 1:
            st.altair_chart(training_curve(pd.DataFrame(points), loss_label), height=150)
        if st.button("Cancel", key=f"train_cancel_{active.run_id}"):
            attempt(runs.cancel_run, active, rerun=False)
    for run in [r for r in all_runs if r.status != "running"][:8]:  # a running one has its bar above
        icon = {"done": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/stop_circle:"}[run.status]
        progress = summarize(run.events)
        extra = f" — test acc {progress.test_accuracy:.3f}" if progress.test_accuracy is not None else ""
        if extra and progress.test_images:
            extra += f" on {progress.test_images:,} test image{'s' * (progress.test_images != 1)}"
        if run.status in ("cancelled", "failed"):
            extra += f" {progress.how_far}"
        dataset = runs.run_option(run, "--dataset", "fashion-mnist")
        on = "" if dataset == "fashion-mnist" else f" on {dataset}"  # runs on other data told apart
        st.caption(f"{icon} {plain(run.run_id)}{plain(on)}: {run.status}{plain(extra)}")
        if run.status == "failed" and run.message:
            st.code(run.message, language=None, wrap_lines=True)
        left, right = st.columns(2)
        if runs.can_resume(run) and left.button("Resume", key=f"train_resume_{run.run_id}"):
            attempt(runs.resume_run, run)
        with right.popover("Delete", help="remove this run's files (asks first)"):
            st.caption(f"Delete {plain(run.run_id)}: its checkpoint, log and progress files? Nothing else is touched.")
            if st.button("Delete for good", key=f"train_delete_{run.run_id}", type="primary"):
                attempt(runs.delete_run, run)
    for run in all_runs:
        if run.status == "done" and run.run_id not in st.session_state.get("app_seen_runs", set()):
            st.session_state.setdefault("app_seen_runs", set()).add(run.run_id)
            if st.session_state.get("app_runs_initialised"):
                st.rerun(scope="app")  # a finished run joins the model list; the refresh stops
    st.session_state["app_runs_initialised"] = True
