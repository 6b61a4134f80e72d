"""Compare on an image: each model's explanation of one picture (core.explain, on the input
core.inputs prepares for it, judged against its own training data), and the colour scales and
warnings that only make sense across the models shown side by side. The Compare page lays out
what these return."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .analysis.ood import judge, unlike_text
from .data import black_value, denormalise, info_from_meta
from .explain import AUC_PASSES, explain, faithfulness_on_image
from .inputs import prepare
from .threads import one_image_threads


@dataclass
class Explained:
    """One model's view of the image: `out` is core.explain's result."""
    meta: dict
    out: dict
    seen: np.ndarray  # the input as the model sees it, in [0, 1] for display
    steps: list[str]  # what was done to the picture
    ood: dict | None = None  # core.analysis.ood.judge's verdict, for an uploaded picture
    flat: bool = False       # the picture is one colour: its predictions mean nothing
    units_have_maps: bool = True  # False: the units are a hidden layer's neurons (VGG), their maps 1 x 1
    x: torch.Tensor | None = None  # the input the model was given (for `faithfulness_of`)


def explain_image(model, meta: dict, image: Image.Image, target_name: str, cams, invert: bool | None = None,
                  layer: str | None = None, gate: np.ndarray | None = None,
                  ood_reference: dict | None = None) -> Explained:
    """`target_name`: a class name, or anything else (the page's "predicted") for the predicted
    class; a model without that class also explains its prediction."""
    prepared = prepare(image, meta, invert)
    classes = list(meta["class_names"])
    target = classes.index(target_name) if target_name in classes else None
    with one_image_threads():
        out = explain(model, prepared.x, target, gate, cams, layer=layer)
    for unit in out["top_units"]:  # "none", a class, or "A = B" where the gate gives the unit to several alike
        unit["class_name"] = "none" if unit["class"] is None else " = ".join(classes[c] for c in [unit["class"], *unit["tied"]])
    ood = judge(torch.from_numpy(out["features"]), torch.from_numpy(out["logits"]), ood_reference) \
        if ood_reference is not None else None
    return Explained(meta, out, denormalise(prepared.x[0], info_from_meta(meta)), prepared.steps, ood, prepared.flat,
                     model.units_have_maps, prepared.x)


QUICK_SECONDS = 1.0  # the maps' AUC on the image is computed unasked below this (the bundle: milliseconds)


def aucs_to_ask(shown: list[Explained]) -> float | None:
    """The seconds `faithfulness_of` will take for the shown models where the page should ask
    first (over QUICK_SECONDS: a ResNet-50 at 224 px), None where it runs unasked. Measured: each
    map costs AUC_PASSES of the forward pass `explain` timed (an upper bound: they run batched)."""
    seconds = sum(len(view.out["cams"]) * AUC_PASSES * view.out["forward_seconds"] for view in shown)
    return seconds if seconds > QUICK_SECONDS else None


def faithfulness_of(model, view: Explained) -> dict:
    """The deletion and insertion AUC of each of the view's maps on its image (core.explain)."""
    with one_image_threads():
        return faithfulness_on_image(model, view.x, view.out["cams"], view.out["target"],
                                     black_value(info_from_meta(view.meta)))


def view_digest(view: Explained) -> str:
    """What a view's AUCs depend on (its input, class and maps) as one hash: the page reruns on
    every widget change, and the AUCs of a 224 px model take seconds."""
    digest = hashlib.sha256(view.x.detach().cpu().numpy().tobytes())
    digest.update(str(view.out["target"]).encode())
    for name, saliency in sorted(view.out["cams"].items()):
        digest.update(name.encode())
        digest.update(torch.as_tensor(saliency).detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def same_data(models: list[dict]) -> tuple[list[dict], list[dict]]:
    """The models that share the first one's dataset, and the others: a test image of one dataset
    is outside every other's, so it is shown only to the first group."""
    first = models[0]["dataset"]
    return [m for m in models if m["dataset"] == first], [m for m in models if m["dataset"] != first]


def inverts(models: list[dict]) -> bool:
    """Whether inverting a light-background upload applies: some model's data is light on black."""
    return any(info_from_meta(m).extra["dark_background"] for m in models)


@dataclass
class Scale:
    """The top of one map's colour range, and the words that say so under it."""
    top: float
    text: str


@dataclass
class Scales:
    maps: list[Scale]  # the penultimate maps, per model
    cams: list[dict[str, Scale]] = field(default_factory=list)  # per model, per CAM method


def scales(shown: list[Explained], shared: bool) -> Scales:
    """One colour range for every model's maps (and one per CAM method: CAM is in logit units,
    the others in [0, 1]) when `shared`, else each model its own. On a shared scale, a map far
    below the top says its own maximum, or it reads as empty with no reason given."""
    def per_model(values: list[float]) -> list[Scale]:
        top = max([0.0, *values])  # a scale starts at 0: negative CAM (evidence against the class) shows as 0
        def one(own: float) -> Scale:
            if own <= 0:  # explaining a class the model sees no evidence for: say so, not "0 to -0.04"
                return Scale(top if shared else 0.0, f"nothing above 0; max {own:.3g}")
            if shared and own < top:
                return Scale(top, f"max {own:.3g} on the shared 0 to {top:.3g}")
            return Scale(top if shared else own, f"0 to {top if shared else own:.3g}")
        return [one(own) for own in values]
    maps = per_model([float(e.out["maps"].max()) for e in shown])
    cams = [{} for _ in shown]  # per model, the methods it has (an MLP has none)
    for method in dict.fromkeys(m for e in shown for m in e.out["cams"]):
        having = [i for i, e in enumerate(shown) if method in e.out["cams"]]
        for i, scale in zip(having, per_model([float(shown[i].out["cams"][method].max()) for i in having])):
            cams[i][method] = scale
    return Scales(maps, cams)


# measured by bench/ood_detection.py on the bundled ce, minimax and lsg (bench/RESULTS.md, 2026-12-06)
NOTICE_RATES = ("The notice is the Mahalanobis distance of the picture's features to the nearest class mean, "
                "against the model's own test images. Measured on the bundled models (bench/ood_detection.py): it "
                "flags 0.8-0.9% of held-out test images; of pictures made unlike the training data it flags 53-76% "
                "(noise, textures, gradients, checkerboards mostly 70-100%, except noise for minimax at 1%; drawn "
                "shapes 35-50%; letters and digits 28-75%; garments upside down 25-36%). AUROC 0.92-0.98, against "
                "0.70-0.92 for the maximum softmax probability and 0.70-0.98 for the energy score.")
SILENCE = ("No compared model finds this picture unlike its training data. The check misses a quarter to a half "
           "of pictures unlike it (see its measured rates), so silence is no guarantee that the predictions mean much.")


def unlike_training(shown: list[Explained], label=lambda meta: meta["label"]) -> list[str]:
    """One phrase per model that finds the picture unlike its training data: its feature
    distance, its threshold and what share of its test images are closer."""
    return [f"{label(e.meta)}: {unlike_text(e.ood)}" for e in shown if e.ood and e.ood["unlike_training"]]
