"""Class activation maps: one small class per method on a shared base, listed in CAM_METHODS
(the pytorch-grad-cam way). Every method maps a batch and one class per image to maps at the
input size, (N, H, W) float32, and holds no hooks between calls.

For this network (global average pooling, then one linear layer) Grad-CAM is exactly
ReLU(CAM) up to a positive constant per image before both are upsampled, so it adds nothing
beside CAM; the methods listed after it weigh the maps differently and do differ.
"""
from __future__ import annotations

import contextlib
import copy
import io
import threading

import numpy as np
import torch
import torch.nn.functional as F

def class_activation_map(maps: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """CAM: sum_k W[c_n, k] M_nk, upsampled bilinearly. maps (N, K, h, w), weight (N, K) (the
    head's row for each image's class) -> (N, H, W)."""
    cams = torch.einsum("nk,nkhw->nhw", weight.float(), maps.float())
    return F.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class CamMethod:
    name = ""
    label = ""
    about = ""
    class_specific = True  # False: the same map whatever class is asked for
    any_layer = True       # False: defined on the last block only
    same_as = ""           # a method whose maps this one repeats on these networks (nothing new to measure)

    def __init__(self, model, layer: str | None = None):
        layers = model.cam_layers()
        if layer is not None and layer not in layers:
            raise ValueError(f"no layer {layer!r} in this model; choose one of {', '.join(layers)}")
        self.model = model
        self.layer = layers[layer] if layer is not None and self.any_layer else model.target_layer

    def __call__(self, x: torch.Tensor, classes: list[int]) -> np.ndarray:
        raise NotImplementedError


class ClassActivationMap(CamMethod):
    name, label = "cam", "CAM"
    any_layer = False
    about = "sum over units of the head's weight for the class times the unit's map (Zhou et al. 2016); exact, signed"

    def __call__(self, x, classes):
        self.model.eval()
        with torch.inference_mode():
            maps = self.model.forward_features(x)
            cams = class_activation_map(maps, self.model.fc.weight[torch.as_tensor(classes)], tuple(x.shape[-2:]))
        return cams.numpy()


def activations_and_gradients(model, layer, x: torch.Tensor, classes) -> tuple[torch.Tensor, torch.Tensor]:
    """The output of `layer` for x and the gradient of each image's class logit with respect to
    it, (N, K, h, w) each. The hook lives for this call only, and no parameter gets a .grad."""
    kept, caller = [], threading.get_ident()

    def keep(module, inputs, output):  # another thread's forward through the same model is not ours
        if threading.get_ident() == caller and not kept:
            kept.append(output)
    model.eval()
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            (gradients,) = torch.autograd.grad(logits[torch.arange(len(x)), torch.as_tensor(classes)].sum(), kept[0])
    finally:
        handle.remove()
    return kept[0].detach(), gradients


def scaled_per_image(cams: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's scaling: each map to [0, 1], upsampled bilinearly, to [0, 1] again."""
    def unit_range(m):
        m = m - m.amin(dim=(-2, -1), keepdim=True)
        return m / (1e-7 + m.amax(dim=(-2, -1), keepdim=True))
    upsampled = F.interpolate(unit_range(cams.float())[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return unit_range(upsampled).numpy()


def scaled_together(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Maps (G, h, w) upsampled bilinearly and put on one [0, 1] scale, their lowest value 0 and
    highest 1: a weak map stays weak beside a strong one (per-map scaling would hide that)."""
    upsampled = F.interpolate(maps.double()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    low, high = upsampled.min(), upsampled.max()
    return ((upsampled - low) / (high - low if high > low else 1)).numpy()


class LayerCam(CamMethod):
    """Our own (a few lines with the gradients at hand), so the default view needs no library
    import; tests/test_cam.py checks it against pytorch-grad-cam's LayerCAM."""
    name, label = "layercam", "LayerCAM"
    about = "each map position weighted by its own positive gradient (Jiang et al. 2021)"

    def __call__(self, x, classes):
        activations, gradients = activations_and_gradients(self.model, self.layer, x, classes)
        return scaled_per_image(F.relu((F.relu(gradients) * activations).sum(1)), tuple(x.shape[-2:]))


_STDERR = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr():
    with _STDERR, contextlib.redirect_stderr(io.StringIO()):
        yield


class LibraryCam(CamMethod):
    """A method of pytorch-grad-cam on the model's last convolutional block; its maps come
    scaled to [0, 1] per image. The library keeps every output of the hooked layer, so it hooks a
    private copy of the model: another thread's prediction through the shared one (Streamlit lets an
    abandoned run go on while the next starts) would otherwise land among its activations."""
    library_name = ""
    draws_progress_bars = False  # Score-CAM draws a tqdm bar per image on stderr: kept off our terminals

    def __call__(self, x, classes):
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        method = getattr(pytorch_grad_cam, self.library_name)
        layer_name = next(name for name, module in self.model.named_modules() if module is self.layer)
        model = copy.deepcopy(self.model).eval()
        for parameter in model.parameters():  # IAM may hold the shared model's frozen meanwhile
            parameter.requires_grad_(True)
        # redirect_stderr swaps the process's sys.stderr: two at once could leave one swapped for good
        quiet = _quiet_stderr() if self.draws_progress_bars else contextlib.nullcontext()
        with quiet, torch.enable_grad(), method(model=model, target_layers=[model.get_submodule(layer_name)]) as cam:
            return np.asarray(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes]),
                              dtype=np.float32)


class GradCam(LibraryCam):
    name, label, library_name = "gradcam", "Grad-CAM", "GradCAM"
    about = "maps weighted by their mean gradient (Selvaraju et al. 2017); here ReLU(CAM) up to a constant"
    same_as = "cam"


class GradCamPlusPlus(LibraryCam):
    name, label, library_name = "gradcam++", "Grad-CAM++", "GradCAMPlusPlus"
    about = "maps weighted by positive gradients with higher-order terms (Chattopadhyay et al. 2018)"


class ScoreCam(LibraryCam):
    name, label, library_name = "scorecam", "Score-CAM", "ScoreCAM"
    draws_progress_bars = True
    about = "maps weighted by the class score of the image masked by each map; no gradients (Wang et al. 2020)"


class EigenCam(LibraryCam):
    name, label, library_name = "eigencam", "EigenCAM", "EigenCAM"
    about = "first principal component of the maps (Muhammad & Yeasin 2020); the same for every class"
    class_specific = False


CAM_METHODS: dict[str, type[CamMethod]] = {cls.name: cls for cls in (
    ClassActivationMap, GradCam, GradCamPlusPlus, LayerCam, ScoreCam, EigenCam)}


def shared_layers(models) -> list[str]:
    """The CAM layers every one of `models` has, in the first model's order."""
    first, *rest = [model.cam_layers() for model in models]
    return [name for name in first if all(name in layers for layers in rest)]


def create_cam(name: str, model, layer: str | None = None) -> CamMethod:
    """`layer`: a key of model.cam_layers() (default: the last block)."""
    if name not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose one of {', '.join(CAM_METHODS)}")
    return CAM_METHODS[name](model, layer)
