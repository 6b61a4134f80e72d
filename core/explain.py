"""One image through one model: maps, class activation maps (core/cam.py), probabilities, gate
rows, top units; apart, the maps' faithfulness on this image (seconds on a large model)."""
from __future__ import annotations

import time

import numpy as np
import torch

from .analysis.faithfulness import deletion_insertion
from .cam import create_cam
from .lsg import gate_assignment

TEMPERATURES = (1.0, 2.0)
DEFAULT_CAMS = ("cam", "layercam")


def explain(model, x: torch.Tensor, target: int | None = None, gate: np.ndarray | None = None,
            cams=DEFAULT_CAMS, top_units: int = 8, layer: str | None = None) -> dict:
    """What the image page shows for one model at once. x: (1, C, H, W) preprocessed; `cams`
    names methods of core.cam.CAM_METHODS; `layer` (a key of model.cam_layers()) is where the
    gradient methods hook."""
    model.eval()
    with torch.inference_mode():
        maps, features, logits = (part[0] for part in model.forward_parts(x))
    predicted = int(logits.argmax())
    cls = predicted if target is None else int(target)
    weight = model.fc.weight.detach()
    result = {
        "maps": maps.numpy(), "features": features.numpy(), "logits": logits.numpy(),
        "probabilities": {t: torch.softmax(logits / t, 0).numpy() for t in TEMPERATURES},
        "predicted": predicted, "target": cls,
        # a model with no spatial layer (an MLP) has no class activation maps
        "cams": ({name: create_cam(name, model, layer)(x, [cls])[0] for name in cams}
                 if model.cam_layers() else {}),
        "class_units": torch.argsort(weight[cls] * features, descending=True)[:top_units].tolist(),
    }
    order = torch.argsort(features, descending=True)[:top_units].tolist()
    # a unit's class: by the gate as everywhere (None: the gate gives it to none; the others at its
    # top value are said as tied), else its largest head weight
    columns = np.asarray(gate).T.tolist() if gate is not None else None
    result["top_units"] = []
    for k in order:
        assigned, tied = gate_assignment(columns[k]) if columns else (int(weight[:, k].argmax()), [])
        result["top_units"].append({"unit": k, "activation": float(features[k]), "class": assigned, "tied": tied})
    if gate is not None:
        result["gate_row"] = np.asarray(gate[cls])
        result["gate_row_predicted"] = np.asarray(gate[predicted])
    result["forward_seconds"] = warm_forward_seconds(model, x)
    return result


@torch.inference_mode()
def warm_forward_seconds(model, x: torch.Tensor) -> float:
    """One forward pass of `x`, timed once the model has run: what the AUCs on the image cost per
    pass. The first pass of a fresh server's model pays for allocations (timed, it made the bundle's
    milliseconds of AUCs read as 21 s)."""
    started = time.perf_counter()
    model.forward_parts(x)
    return time.perf_counter() - started


AUC_STEPS = 10  # each curve at 0, 10, ..., 100% of the pixels
AUC_PASSES = 2 * (AUC_STEPS + 1)  # forward passes of the image per map: deletion and insertion


def faithfulness_on_image(model, x: torch.Tensor, cams: dict, target: int, background: torch.Tensor) -> dict:
    """Each map's deletion and insertion AUC on this image for class `target`; `background` is the
    value of a removed pixel. AUC_PASSES forward passes a map (2.7 s for a ResNet-50 at 224 px on
    two cores), so the page draws everything else first, and asks first where it is slow."""
    result = {}
    for name, saliency in cams.items():
        deletion, insertion = deletion_insertion(model, x, saliency[None], torch.tensor([target]), background,
                                                 AUC_STEPS)
        result[name] = {"deletion": float(deletion[0]), "insertion": float(insertion[0])}
    return result
