"""Compare on an image: one column per model — input, probabilities at T = 1 and 2, all
penultimate maps, the chosen class activation maps with their faithfulness on this image, the
gate row."""
from ui.basics import page_frame

page_frame()  # first, before the imports: a fresh server's deep link runs the real entry (navigation at once)

import random

import numpy as np
import pandas as pd
import streamlit as st

from core.cam import CAM_METHODS, shared_layers
from core.charts import FAITHFULNESS_MEASURES, faithfulness_chart, faithfulness_frame, probability_chart
from core.compare import (NOTICE_RATES, SILENCE, aucs_to_ask, explain_image, faithfulness_of, inverts, same_data,
                          scales, unlike_training, view_digest)
from core.explain import AUC_PASSES, DEFAULT_CAMS
from core.data import DataError, dataset_image, split_indices, view_of
from core.progress import format_seconds
from core.images import FLAT_NOTE, ImageError, load_image
from core.render import colour_bar, feature_grid, gate_strip, heat_overlay, input_picture, most_active
from ui import common

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]
GRID_UNITS = 64  # maps drawn per model unless "Show all" (a ResNet-50 has 2048)


def remember_upload_on_return():
    """Streamlit forgets a file uploader's file while it is hidden: coming back to Upload shows the kept file."""
    st.session_state["compare_upload_returned"] = "compare_upload_kept" in st.session_state


def forget_upload():
    st.session_state.pop("compare_upload_kept", None)
    st.session_state["compare_upload_returned"] = False


def uploaded_file() -> tuple[str, bytes]:
    """(name, bytes) of the uploaded file, or the one kept from before the source was switched away and back;
    stops the page with a hint when there is none. An empty uploader otherwise means the user removed the file."""
    upload = st.file_uploader("Upload an image (PNG, JPEG, WebP, BMP, GIF)", type=UPLOAD_TYPES, key="compare_upload")
    if upload is not None:
        st.session_state["compare_upload_kept"] = kept = (upload.name, upload.getvalue())
        st.session_state["compare_upload_returned"] = False
        return kept
    if st.session_state.get("compare_upload_returned"):
        name, data = st.session_state["compare_upload_kept"]
        text, clear = st.columns([4, 1], vertical_alignment="center")
        text.caption(common.plain(f"Showing {name}, uploaded before; upload another file to replace it."))
        clear.button("Clear", key="compare_upload_clear", on_click=forget_upload)
        return name, data
    forget_upload()
    st.info("Upload an image, or switch to the test set.")
    st.stop()


def pick_image(reference: dict):
    """The image to explain, from an upload or the test set; returns (PIL image, true label or None, caption)."""
    source = st.radio("Image", ["Test set", "Upload"], horizontal=True, key="compare_source",
                      on_change=remember_upload_on_return)
    if source == "Upload":
        name, data = uploaded_file()
        try:
            picture = load_image(data)
        except ImageError as exc:  # which file, as the user named it
            raise ImageError(f"{name}: {exc}") from None
        size = reference["input_size"]
        if min(picture.size) < size // 2:  # read, but blown up from almost nothing: say so before any prediction
            st.warning(common.plain(f"{name} is only {picture.size[0]}x{picture.size[1]} pixels; the models "
                                    f"see {size}x{size}, so this picture is mostly interpolation and the "
                                    "predictions below mean little."), icon=":material/warning:")
        return picture, None, name
    classes = reference["class_names"]
    left, middle, right = st.columns([2, 2, 1])
    options = ["any"] + classes
    cls = left.selectbox("Class", options, **common.kept("compare_class", "any", options))
    view = view_of(reference)
    pool = split_indices(reference["dataset"], None if cls == "any" else classes.index(cls), view=view)
    size = len(pool)  # every class has one (an image folder's listing is checked for it)
    if right.button("Random", key="compare_random"):
        common.choose("compare_index", random.randrange(size))
    if st.session_state.get("compare_index_chosen", 0) >= size:
        common.choose("compare_index", 0)
    index = int(middle.number_input("Index", 0, size - 1, **common.kept("compare_index", 0),
                                    help=f"0 to {size - 1}: the n-th test image" +
                                         (" of the chosen class" if cls != "any" else "")))
    dataset_index = pool[index]
    try:
        image, label = dataset_image(reference["dataset"], dataset_index, view=view)
    except DataError as exc:  # an image folder's file that is no picture: it keeps its number, not a page
        st.info(common.plain(f"Test image {dataset_index}: {exc}; pick another."))
        st.stop()
    return image, label, f"test image {dataset_index}"


FIT_ON_VISIT_CLASSES = 100  # above, a post-hoc gate is shown only once fitted (the Gates page fits it)


def gate_rows(meta: dict):
    """The gate a model's column shows: its trained gate, or its post-hoc fit (seconds up to 100
    classes, fitted now if need be). Above that the fit is shown only once stored (the Gates page
    or `core.analyze` fits it), None until then: one image's page should not wait the 15 s of a
    1000-class fit."""
    gate = common.load_model(meta["path"])[0].gate
    if gate is not None:
        return gate.detach().cpu().numpy()
    if len(meta["class_names"]) <= FIT_ON_VISIT_CLASSES:
        return np.array(common.analysis(meta, "gate")["gate"])
    fitted = common.stored_results(meta).cached("gate")
    return np.array(fitted["gate"]) if fitted else None


def render():
    st.title("Compare on an image")
    models = common.require_models()
    image, label, caption = pick_image(models[0])
    choice = explanation_controls(models)
    names = models[0]["class_names"]
    st.caption(common.plain(caption) + (f" — true class **{common.plain(names[label])}**" if label is not None else ""))
    uploaded = label is None
    if not uploaded:
        models, others = same_data(models)
        if others:
            st.info(common.plain(f"Not shown: {', '.join(m['label'] for m in others)}, trained on another dataset "
                                 f"than {models[0]['dataset']}, whose test image this is; upload a picture to "
                                 "compare them all."), icon=":material/info:")
    invert = invert_toggle() if uploaded and inverts(models) else None
    gates = {meta["label"]: gate_rows(meta) if choice["gate"] else None for meta in models}
    unfitted = [label for label, gate in gates.items() if choice["gate"] and gate is None]
    if unfitted:
        st.caption(common.plain(f"No gate row for {', '.join(unfitted)}: its post-hoc gate is not fitted yet (the "
                                "Gates page fits it; a fit at many classes takes minutes on a CPU)."))
    shown = [explain_image(common.load_model(meta["path"])[0], meta, image, choice["target"], choice["methods"],
                           invert, choice["layer"], gates[meta["label"]],
                           common.analysis(meta, "ood_reference") if uploaded else None)
             for meta in models]
    scale = scales(shown, choice["shared_scale"])
    if choice["methods"]:
        st.image(colour_bar(), caption="map colours: 0 (left) to the maximum (right); negative CAM shows as 0")
    st.caption("Probabilities at T = 1 are the model's softmax; at T = 2 (softmax of the logits halved) the "
               "probability spreads over the non-target classes, so their ranking shows.")
    # above the columns, not in one of them (a warning in one column put it out of line with the others)
    unlike = unlike_training(shown, label=lambda meta: common.plain(meta["label"]))
    if any(view.flat for view in shown):
        st.warning(f"The picture is {FLAT_NOTE}.", icon=":material/warning:")
    elif unlike:
        st.warning(f"Unlike the training data for {len(unlike)} of {len(shown)} models, so treat these predictions "
                   "with care. " + "; ".join(unlike) + ".", icon=":material/warning:")
        st.caption(NOTICE_RATES)
    elif uploaded:
        st.caption(SILENCE + " " + NOTICE_RATES)
    if uploaded:
        common.training_note("ood_reference")
    aucs = wants_aucs(shown)
    slots = []
    for i, (column, view) in enumerate(zip(common.grid(len(shown), 4), shown)):
        with column:
            slots.append(model_column(view, scale.maps[i], scale.cams[i], aucs))
    faithfulness_section(models)
    for view, slot in zip(shown, slots):  # last: seconds a model at 224 px, and the page is all there meanwhile
        if slot is not None:
            auc_table(slot, image_aucs(view.meta["path"], view.meta["content_hash"], view_digest(view), view))


@st.cache_data(show_spinner=False, max_entries=64)
def image_aucs(path: str, content_hash: str, digest: str, _view) -> dict:
    """Each map's deletion and insertion AUC on the view's image, once per model and `digest`
    (core.compare.view_digest: the image, class and maps)."""
    return faithfulness_of(common.load_model(path)[0], _view)


def wants_aucs(shown) -> bool:
    """Whether to compute each map's deletion and insertion AUC on this image: unasked where it is
    quick, on a toggle that says its measured cost where it is not."""
    seconds = aucs_to_ask(shown)
    if seconds is None:
        return True
    return st.toggle(f"Deletion and insertion AUC of the maps on this image (about {format_seconds(seconds)} here, "
                     "measured)", **common.kept("compare_image_auc", False),
                     help="Each map's pixels removed, most relevant first, and put back onto black: "
                          f"{AUC_PASSES} passes of the image a map")


def auc_table(slot, faithfulness: dict) -> None:
    """A model's deletion and insertion AUC on this image, in the place kept for it in its column."""
    slot.dataframe(pd.DataFrame([{"map": CAM_METHODS[n].label, "deletion": f["deletion"], "insertion": f["insertion"]}
                                 for n, f in faithfulness.items()]),
                   hide_index=True, column_config={  # short names: three models side by side
                       "deletion": st.column_config.NumberColumn(format="%.3f", help="deletion AUC, lower is better"),
                       "insertion": st.column_config.NumberColumn(format="%.3f", help="insertion AUC, higher is better")})


def explanation_controls(models: list[dict]) -> dict:
    """What to explain and how: the class, the colour scale, gate rows, the CAM methods and the layer."""
    controls = st.columns(3)
    targets = ["predicted"] + models[0]["class_names"]
    kept = common.kept  # every choice here outlives a visit to another page
    choice = {
        "target": controls[0].selectbox("Explain class", targets, **kept("compare_target", targets[0], targets)),
        "shared_scale": controls[1].toggle("Shared colour scale", **kept("compare_shared", True),
                                           help="One colour scale for every model's maps; off: each model's own range"),
        "gate": controls[2].toggle("Gate rows", **kept("compare_gate", True),
                                   help="Each model's gate row for the explained class: an LSG model's trained gate; "
                                        "for the others a post-hoc gate, fitted once per model (seconds, then cached)"),
        "methods": st.multiselect("Class activation maps", list(CAM_METHODS), **kept("compare_cams", list(DEFAULT_CAMS)),
                                  format_func=lambda name: CAM_METHODS[name].label,
                                  help="Grad-CAM equals ReLU(CAM) up to a constant for these networks; see 'About the maps'"),
    }
    layer_names = shared_layers([common.load_model(m["path"])[0] for m in models])
    choice["layer"] = st.selectbox("Layer the gradient methods hook", layer_names,
                                   **kept("compare_layer", layer_names[0], layer_names),
                                   help="Earlier stages give finer maps; CAM is defined on the last block only") \
        if len(layer_names) > 1 else None
    with st.expander("About the maps"):
        st.table(pd.DataFrame([{"map": m.label, "what it shows": m.about,  # a table wraps what a dataframe cut
                                "class-specific": "yes" if m.class_specific else "no"}
                               for m in CAM_METHODS.values()]).set_index("map"))
        st.caption("Below each model (unasked where it takes under a second): deletion AUC (pixels blacked out, "
                   "most relevant first; lower is more faithful) and insertion AUC (pixels put back onto black; "
                   "higher is better) on this image.")
    return choice


def invert_toggle() -> bool | None:
    """None: invert a light-background upload (the default), False: never."""
    # kept: a run without the toggle (a file being replaced) took it off the page, and drawn again
    # from its own default it showed off and sent that back (the next uploads silently not inverted)
    on = st.toggle("Invert a light-background picture (the training images are light on black)",
                   **common.kept("compare_invert", True),
                   help="Product photos are dark on light; the model has only seen the reverse")
    return None if on else False


def model_column(view, maps, cams, aucs: bool):
    """One model's column: its prediction, the input it saw, probabilities, maps, CAMs, gate row, top
    units. Returns the place kept for the maps' AUC on this image (None: no maps, or `aucs` off),
    filled last."""
    meta, out = view.meta, view.out
    classes = meta["class_names"]
    target = common.plain(classes[out["target"]])
    st.subheader(common.plain(meta["label"]))
    st.caption(f"{common.plain(meta['method'])} · {common.plain(meta['arch'])} · predicted **{common.plain(classes[out['predicted']])}** "
               f"({out['probabilities'][1.0][out['predicted']]:.1%})")
    st.image(input_picture(view.seen, 112), caption="input as the model sees it")
    with st.expander("What was done to the image"):
        for step in view.steps:
            st.text(step)
    common.chart(probability_chart(out["probabilities"], classes), f"{meta['label']}-probabilities",
                 f"compare_prob_{meta['label']}")
    count = len(out["maps"])
    if not view.units_have_maps:
        st.caption(f"{meta['arch']}'s {count} units are a hidden layer's neurons, with no maps of their own; "
                   "the CAMs below explain its last convolutional block.")
    else:
        every = count <= GRID_UNITS or st.toggle(f"Show all {count} maps", key=f"compare_all_maps_{meta['label']}")
        units = list(range(count)) if every else sorted({*most_active(out["maps"], GRID_UNITS), *out["class_units"]})
        grid = feature_grid(out["maps"][units], 0.0, maps.top, marked=out["class_units"], columns=8, cell=36, units=units)
        shown = f"{count} penultimate maps" if every else (f"the {GRID_UNITS} most active of {count} penultimate maps "
                                                            f"and the top units for {target}")
        st.image(grid, caption=f"{shown} ({maps.text}); red: top units for {target}", width="stretch")
        common.download_png(grid, f"{meta['label']}-maps", key=f"compare_png_{meta['label']}")
    if not out["cams"]:
        st.caption(f"{common.plain(meta['arch'])} has no spatial layer, so no class activation map explains it")
    cam_columns = st.columns(2)
    for j, (name, saliency) in enumerate(out["cams"].items()):
        cam = cams[name]
        cam_columns[j % 2].image(heat_overlay(view.seen, saliency / max(cam.top, 1e-12)),
                                 caption=f"{CAM_METHODS[name].label}: {target} ({cam.text})")
    slot = None
    if out["cams"] and aucs:
        slot = st.empty()
        slot.caption("Deletion and insertion AUC of these maps on this image: computing…")
    if "gate_row" in out:
        st.image(gate_strip(out["gate_row"], cell=max(2, 320 // len(out["gate_row"]))),
                 caption=f"gate row of {target}", width="stretch")
    top = pd.DataFrame([{"unit": u["unit"], "activation": u["activation"], "class": u["class_name"]}
                        for u in out["top_units"]])
    st.caption("Most active units on this image (class: the class each unit is assigned to; "
               "A = B where the gate gives the unit to several classes alike)")
    st.dataframe(top, hide_index=True, height=180,  # the class column gets the room: tied names are long
                 column_config={"unit": st.column_config.NumberColumn(width=40),
                                "activation": st.column_config.NumberColumn("act.", format="%.2f", width=50,
                                                                            help="activation (pooled map)"),
                                "class": st.column_config.TextColumn(width="large")})
    st.caption(f"Units that add most to {target} here (head weight × activation; red in the grid):")
    for unit in out["class_units"][:4]:
        st.page_link("pages/unit.py", label=f"unit {unit}", query_params={"model": meta["label"], "unit": unit},
                     icon=":material/search:")
    return slot


@st.cache_data(show_spinner=False, max_entries=256)
def faithfulness_seconds(path: str, content_hash: str) -> float:
    """The faithfulness analysis's time for one model, measured on one of its test images (its cost
    grows with the image's area: 30 s for a 28 px model, minutes for a 64 px colour one)."""
    return common.record(path).analyzer.faithfulness_seconds()[0]


def faithfulness_section(models: list[dict]):
    """Over a fixed test subset, per objective: are its maps faithful? Shipped for the bundle."""
    st.subheader("Faithfulness of the maps over 100 test images")
    cached = {m["label"]: common.stored_results(m).cached("faithfulness") for m in models}
    unsuited = {m["label"]: common.stored_results(m).skipped_reason("faithfulness") for m in models}
    for label, reason in unsuited.items():
        if reason:
            st.caption(common.plain(f"{label}: {reason}."))
    missing = [m for m in models if cached[m["label"]] is None and not unsuited[m["label"]]]
    if missing:
        with st.spinner("Measuring what it takes, on one test image…"):
            seconds = sum(faithfulness_seconds(m["path"], m["content_hash"]) for m in missing)
    if missing and st.button(f"Compute for {len(missing)} model(s) (about {format_seconds(seconds)} here, "
                             "measured on one image)", key="compare_faithfulness"):
        for meta in missing:
            cached[meta["label"]] = common.analysis(meta, "faithfulness")
    done = {label: result for label, result in cached.items() if result is not None}
    if not done:
        st.caption("Not computed yet for these models.")
        return
    frame = faithfulness_frame(done)
    columns = st.columns(2)
    for i, measure in enumerate(FAITHFULNESS_MEASURES):
        common.chart(faithfulness_chart(frame, measure), f"faithfulness-{measure}", f"compare_faith_{measure}",
                     columns[i % 2])
    common.download_csv(frame, "faithfulness", key="compare_faith_csv")
    st.caption("Explaining each image's predicted class; bars: mean over the images, lines: one standard deviation. "
               "The random map is the baseline every method should beat; where a method's bar is no better than "
               "the random map's, its maps are no more faithful than chance on that measure. Deletion and insertion "
               "AUCs scale with the model's confidence (minimax's is capped near p_t), so compare a method with the "
               "random map of the same model; 'Specificity and cost' gives CAM's margin over it as a share, which "
               "compares across objectives.")


common.guarded(render)
