"""Are the explanations faithful? Per CAM method (core/cam.py), over a fixed subset of the
analysed split (the first `per_class` images of every class), explaining the predicted class:

- deletion AUC (Petsiuk et al. 2018): pixels set to black (the background of the training
  images) in the map's order, most relevant first; the area under the class probability over
  the fraction removed. Lower is more faithful.
- insertion AUC: from a black image, pixels put back most relevant first. Higher is better.
- ROAD (Rong et al. 2022; pytorch-grad-cam's implementation): the change of the class
  probability when the most relevant (MoRF: more negative is better) or least relevant (LeRF:
  nearer 0 is better) pixels are imputed from their neighbours, averaged over percentiles.

A random map gives the baseline each method should beat. Perturbed images go through the
network in large batches.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..cam import CAM_METHODS, create_cam
from ..data import black_value, first_per_class, info_from_meta
from .base import register_analysis, tolist

METHODS = tuple(name for name, method in CAM_METHODS.items() if not method.same_as)  # Grad-CAM is ReLU(CAM)
ROAD_PERCENTILES = (20, 50, 80)


def class_probabilities(model, images: torch.Tensor, classes: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """softmax(model(images))[i, classes[i]] for a stack of images (M, C, H, W), classes (M,)."""
    model.eval()
    out = torch.empty(len(images))
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            logits = model(images[start:start + batch])
            out[start:start + batch] = logits.softmax(1).gather(1, classes[start:start + batch, None])[:, 0]
    return out


def deletion_insertion(model, x: torch.Tensor, maps: np.ndarray, classes: torch.Tensor, background: torch.Tensor,
                       steps: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (deletion AUC, insertion AUC), trapezoids over `steps` + 1 equal fractions.
    x (N, C, H, W), maps (N, H, W), background (C,) the value a removed pixel takes."""
    n, channels, h, w = x.shape
    order = torch.argsort(torch.as_tensor(maps).reshape(n, -1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w).expand(n, -1))
    counts = (torch.linspace(0, 1, steps + 1) * h * w).round().long()
    removed = (rank[None] < counts[:, None, None]).view(steps + 1, n, 1, h, w)
    black = background.view(1, 1, channels, 1, 1).to(x.dtype)
    classes_all = classes.repeat(steps + 1)
    curves = []
    for start, kept in ((x[None], black), (black, x[None])):  # deletion, insertion
        images = torch.where(removed, kept, start).reshape(-1, channels, h, w)
        curves.append(class_probabilities(model, images, classes_all).view(steps + 1, n))
    return tuple(torch.trapezoid(curve, dx=1.0 / steps, dim=0) for curve in curves)


def road(model, x: torch.Tensor, maps: np.ndarray, classes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per image: ROAD MoRF and LeRF, averaged over ROAD_PERCENTILES (maps scaled to [0, 1])."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    low = maps.min(axis=(1, 2), keepdims=True)
    span = np.maximum(maps.max(axis=(1, 2), keepdims=True) - low, 1e-12)
    scaled = ((maps - low) / span).astype(np.float32)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    model.eval()
    with torch.inference_mode():
        morf = ROADMostRelevantFirstAverage(list(ROAD_PERCENTILES))(x, scaled, targets, model)
        lerf = ROADLeastRelevantFirstAverage(list(ROAD_PERCENTILES))(x, scaled, targets, model)
    return np.asarray(morf, dtype=np.float64), np.asarray(lerf, dtype=np.float64)


def spread(values) -> dict:
    values = torch.as_tensor(np.asarray(values), dtype=torch.float64)
    return {"mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0}


def measured(model, x: torch.Tensor, predicted: torch.Tensor, background: torch.Tensor, steps: int, generator,
             progress=lambda step, done, total: None) -> dict:
    """Every method's (and a random map's) deletion, insertion and ROAD values on the images x."""
    maps = {}
    for i, name in enumerate(METHODS):
        progress(f"faithfulness: {CAM_METHODS[name].label} maps", i, 2 * len(METHODS) + 2)
        maps[name] = create_cam(name, model)(x, predicted.tolist())
    maps["random"] = torch.rand(x.shape[0], *x.shape[-2:], generator=generator).numpy()
    methods = {}
    for i, (name, saliency) in enumerate(maps.items()):
        progress(f"faithfulness: deleting and imputing pixels ({name})", len(METHODS) + i, 2 * len(METHODS) + 2)
        deletion, insertion = deletion_insertion(model, x, saliency, predicted, background, steps)
        morf, lerf = road(model, x, saliency, predicted)
        methods[name] = {"deletion": deletion, "insertion": insertion, "road_morf": morf, "road_lerf": lerf}
    return methods


def seconds_needed(model, meta: dict, image: torch.Tensor, images: int, steps: int = 10) -> float:
    """What the analysis will take, from three things measured now on one test image (`image`,
    normalised (C, H, W)): a forward pass, a forward and backward pass, and one ROAD infilling (a
    sparse system over every pixel: it grows with the image's area, so no constant would do),
    counted as the analysis uses them. Running the analysis on one image would be exact, but
    Score-CAM's pass per unit makes that minutes for a ResNet-50."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    model.eval()
    batch = image[None].expand(8, *image.shape).contiguous()
    with torch.inference_mode():
        model(batch)  # the first pass allocates
        started = time.perf_counter()
        model(batch)
        forward = (time.perf_counter() - started) / len(batch)
    started = time.perf_counter()
    with torch.enable_grad():
        model(image[None].clone().requires_grad_(True))[0].max().backward()
    model.zero_grad(set_to_none=True)
    backward = time.perf_counter() - started
    started = time.perf_counter()
    NoisyLinearImputer()(image.detach(), (torch.arange(image[0].numel()).view(image.shape[1:]) % 2).float())
    infill = time.perf_counter() - started
    maps = len(METHODS) + 1  # and the random map
    perturbed = maps * (2 * (steps + 1) + 2 * len(ROAD_PERCENTILES))  # deletion, insertion, ROAD's two orders
    score_cam = model.num_features if "scorecam" in METHODS else 0  # one masked pass per unit
    per_image = (forward * (perturbed + score_cam) + backward * len(METHODS)
                 + infill * maps * 2 * len(ROAD_PERCENTILES))
    return per_image * images


def image_count(labels: torch.Tensor, num_classes: int, per_class: int) -> int:
    return len(first_per_class(labels, num_classes, per_class))


@register_analysis("faithfulness", version=1, on_request=True, title="Faithfulness of the explanations",
                   per_class=10, steps=10, seed=0, max_classes=100, needs_cam_layers=True)
def faithfulness(ctx, per_class, steps, seed):
    """Deletion, insertion and ROAD of every CAM method (and a random map) on the first `per_class`
    test images of each class. Cost: forward passes, M = per_class C images times (methods + 1)
    x (2 (steps + 1) + 2 x ROAD's percentiles), plus K masked passes an image for Score-CAM and
    one backward pass an image per gradient method (`seconds_needed` measures it first); memory:
    the M images, and (steps + 1) M perturbed images at a time per method, never the N test
    images. Hence max_classes = 100."""
    chosen = first_per_class(ctx.test.labels, ctx.num_classes, per_class)
    x = ctx.images(chosen)
    predicted = ctx.test.predictions[chosen]  # from the cached forward pass
    background = black_value(info_from_meta(ctx.meta))
    found = measured(ctx.model, x, predicted, background, steps, torch.Generator().manual_seed(seed), ctx.progress)
    methods = {name: {"label": CAM_METHODS[name].label if name in CAM_METHODS else "random map (baseline)",
                      **{measure: spread(values) for measure, values in result.items()}}
               for name, result in found.items()}
    return {"images": len(chosen), "indices": tolist(chosen), "percentiles": list(ROAD_PERCENTILES), "methods": methods}
