"""One image through one model: maps, CAM, Grad-CAM, probabilities, gate rows, top units."""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

TEMPERATURES = (1.0, 2.0)


def class_activation_map(maps: torch.Tensor, weight: torch.Tensor, cls: int, size: int) -> torch.Tensor:
    """CAM: sum_k W[c, k] M_k, upsampled bilinearly to the input size. maps: (K, h, w)."""
    cam = torch.einsum("k,khw->hw", weight[cls].float(), maps.float())
    return F.interpolate(cam[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def normalise_map(x: np.ndarray | torch.Tensor) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


class GradCamExplainer:
    """One pytorch-grad-cam object per model, reused under a lock (its hooks are not
    thread-safe); the model returns logits only and targets are given per batch element."""

    def __init__(self, model):
        from pytorch_grad_cam import GradCAM
        self.model = model
        self._lock = threading.Lock()
        self._cam = GradCAM(model=model, target_layers=[model.target_layer])

    def __call__(self, x: torch.Tensor, classes: list[int]) -> np.ndarray:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        with self._lock, torch.enable_grad():
            return self._cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])

    def close(self):
        with self._lock:
            self._cam.__exit__(None, None, None)


def explain(model, x: torch.Tensor, target: int | None = None, gate: np.ndarray | None = None,
            gradcam: GradCamExplainer | None = None, top_units: int = 8) -> dict:
    """Everything the image page shows for one model. x: (1, C, H, W) preprocessed."""
    model.eval()
    with torch.inference_mode():
        maps = model.forward_features(x)
        features = model.pool(maps)[0]
        logits = model.fc(features[None])[0]
    predicted = int(logits.argmax())
    cls = predicted if target is None else int(target)
    size = x.shape[-1]
    weight = model.fc.weight.detach()
    result = {
        "maps": maps[0].numpy(), "features": features.numpy(), "logits": logits.numpy(),
        "probabilities": {t: torch.softmax(logits / t, 0).numpy() for t in TEMPERATURES},
        "predicted": predicted, "target": cls,
        "cam": class_activation_map(maps[0], weight, cls, size).numpy(),
        "gradcam": gradcam(x, [cls])[0] if gradcam is not None else None,
        "class_units": torch.argsort(weight[cls] * features, descending=True)[:top_units].tolist(),
    }
    order = torch.argsort(features, descending=True)[:top_units].tolist()
    assigned = gate.argmax(axis=0) if gate is not None else weight.argmax(dim=0).numpy()
    result["top_units"] = [{"unit": k, "activation": float(features[k]), "class": int(assigned[k])} for k in order]
    if gate is not None:
        result["gate_row"] = np.asarray(gate[cls])
        result["gate_row_predicted"] = np.asarray(gate[predicted])
    return result
