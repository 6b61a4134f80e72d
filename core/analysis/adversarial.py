"""Adversarial samples detected from pooled features (LSG paper, Sec. 4.5 and Table 4).

Targeted PGD (Madry et al.) turns each image into one the model reads as another class; a random
forest then learns to tell clean from adversarial images by the global-average-pooled output of
every depth layer. The paper's claim: class-specific units make the two easier to tell apart
(AUC 77.4 / 85.0 / 86.9 for LSG against 72.9 / 80.8 / 83.6 for CE at 100 / 500 / 1000 training
images a class, ResNet-20 on CIFAR-10).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import balanced_sample, first_per_class
from ..errors import UserError
from ..models.base import pooled_outputs
from .base import register_analysis, tolist
from .features import batch_size_for, exact_float32


def pixel_box(images: torch.Tensor, mean, std) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-channel scale of one pixel unit, lowest, highest normalised value): the images are
    normalised, while epsilon and the step are in pixel units of [0, 1] as in the papers."""
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return 1 / std_t, -mean_t / std_t, (1 - mean_t) / std_t


def targeted_pgd(model, images: torch.Tensor, targets: torch.Tensor, epsilon: float, step: float, steps: int,
                 mean, std, generator: torch.Generator) -> torch.Tensor:
    """Targeted L-infinity PGD: from a uniform random start in the epsilon ball, `steps` signed
    gradient steps down the cross-entropy of `targets`, each projected back into the ball and the
    valid pixel range. Gradients flow to the images only; the model stays in eval mode."""
    unit, low, high = pixel_box(images, mean, std)
    radius, stride = epsilon * unit, step * unit
    start = (torch.rand(images.shape, generator=generator) * 2 - 1).to(images.device) * radius
    x = torch.maximum(torch.minimum(images + start, high), low)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(model(x), targets, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() - stride * grad.sign()
        x = torch.maximum(torch.minimum(x, images + radius), images - radius)
        x = torch.maximum(torch.minimum(x, high), low)
    return x.detach()


def other_classes(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A target for each image drawn uniformly from the classes other than its own."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels + shift) % num_classes


@torch.no_grad()
def layer_features(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, sum of the depth layers' widths) every depth layer's pooled output, concatenated, and
    the logits (N, C) of the same pass, on the CPU."""
    layers = model.depth_layers()
    with pooled_outputs(layers) as seen:
        logits = model(images)
    return torch.cat([seen[name] for name in layers], dim=1).cpu(), logits.cpu()


def detector_auc(train_x, train_y, test_x, test_y, seed: int, trees: int) -> float:
    """AUC of a random forest (the paper's binary classifier) trained on one set, scored on another."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
    forest.fit(train_x.numpy(), train_y.numpy())
    return float(roc_auc_score(test_y.numpy(), forest.predict_proba(test_x.numpy())[:, 1]))


def per_class_draw(labels: torch.Tensor, num_classes: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rows of each class (all it has, if fewer), drawn at random."""
    picks = []
    for c in range(num_classes):
        rows = torch.nonzero(labels == c).flatten()
        picks.append(rows[torch.randperm(len(rows), generator=generator)[:count]])
    return torch.cat(picks)


def attack_and_read(ctx, model, parts: dict, epsilon, step, steps, generator) -> tuple[dict, dict]:
    """For each part's (image reader, rows, labels): the pooled features of the clean and the
    attacked images, and the share of attacked images the model reads as their target. The
    images are read a batch at a time, never held whole."""
    device = next(model.parameters()).device
    mean, std = ctx.meta["mean"], ctx.meta["std"]
    side = ctx.meta.get("input_size", 32)
    batch = batch_size_for(model, side * side)
    model.eval()
    features, success = {}, {}
    total, done = sum(len(labels) for _, _, labels in parts.values()), 0
    with exact_float32(device):
        for part, (read, rows, labels) in parts.items():
            targets = other_classes(labels, ctx.num_classes, generator)
            clean, attacked, hits = [], [], 0
            for s in range(0, len(labels), batch):
                x, t = read(rows[s:s + batch]).to(device), targets[s:s + batch].to(device)
                with torch.enable_grad():
                    adversarial = targeted_pgd(model, x, t, epsilon, step, steps, mean, std, generator)
                clean.append(layer_features(model, x)[0])
                read_attacked, logits = layer_features(model, adversarial)
                attacked.append(read_attacked)
                hits += int((logits.argmax(dim=1) == t.cpu()).sum())
                done += len(t)
                ctx.progress("attacking (PGD)", done, total)
            features[part] = (torch.cat(clean), torch.cat(attacked))
            success[part] = hits / len(labels)
    return features, success


@register_analysis("adversarial_detection", version=1, on_request=True, reads_training=True, title="Adversarial detection",
                   max_classes=100, sizes=(100, 500, 1000), test_per_class=100, epsilon=0.3, step=0.01, steps=40,
                   repeats=5, trees=100, seed=0)
def adversarial_detection(ctx, sizes, test_per_class, epsilon, step, steps, repeats, trees, seed):
    """Table 4: targeted PGD (epsilon and step in pixel units, Madry et al.'s MNIST settings
    0.3 / 0.01 / 40 steps, targets drawn among the other classes) on a seeded class-balanced sample
    of max(sizes) training images a class (of the analysed training images) and on the first
    `test_per_class` test images a class; the features are every depth layer's pooled output. For
    each size (`images_a_class`: capped at what the sample holds), `repeats` random forests, each
    on that many clean and attacked training images a class (a new draw and forest seed each),
    scored by AUC, clean against attacked, on the test images: held out from the model and from the
    detector. Cost: `steps` forward and backward passes and 2 forward passes over C (max(sizes) +
    test_per_class) images, then len(sizes) x repeats forests; memory one batch of images and the
    pooled features of all of them, clean and attacked."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1 or test_per_class < 1 or steps < 0 or repeats < 1 or trees < 1 \
            or not epsilon >= 0 or not step >= 0:
        raise UserError("adversarial detection needs sizes >= 1, test_per_class >= 1, steps >= 0, repeats >= 1, "
                        "trees >= 1 and epsilon, step >= 0")
    if ctx.split != "test":
        raise UserError("adversarial detection scores its detector on held-out images: run it on the test split")
    model = ctx.device_model
    generator = torch.Generator().manual_seed(seed)
    train = ctx.train
    pool = balanced_sample(train.labels, sizes[-1] * ctx.num_classes, seed)
    pool_labels = train.labels[pool]
    test_rows = first_per_class(ctx.test.labels, ctx.num_classes, test_per_class)
    test_labels = ctx.test.labels[test_rows]
    if len(torch.unique(pool_labels)) < ctx.num_classes or len(torch.unique(test_labels)) < ctx.num_classes:
        raise UserError("adversarial detection needs training and test images of every class")
    parts = {"train": (ctx.training_images, pool, pool_labels), "test": (ctx.images, test_rows, test_labels)}
    features, success = attack_and_read(ctx, model, parts, epsilon, step, steps, generator)
    test_x = torch.cat(features["test"])
    test_y = torch.cat([torch.zeros(len(test_labels)), torch.ones(len(test_labels))]).long()
    available = int(torch.bincount(pool_labels, minlength=ctx.num_classes).min())
    counts = sorted({min(n, available) for n in sizes})  # a size the sample cannot give is run once, capped
    clean, attacked = features["train"]
    aucs = []
    for i, count in enumerate(counts):
        row = []
        for r in range(repeats):
            draw = per_class_draw(pool_labels, ctx.num_classes, count, torch.Generator().manual_seed(seed + 1 + r))
            train_x = torch.cat([clean[draw], attacked[draw]])
            train_y = torch.cat([torch.zeros(len(draw)), torch.ones(len(draw))]).long()
            row.append(detector_auc(train_x, train_y, test_x, test_y, seed + r, trees))
            ctx.progress("random forests", i * repeats + r + 1, len(counts) * repeats)
        aucs.append(row)
    auc = torch.tensor(aucs, dtype=torch.float64)
    return {"sizes": sizes, "images_a_class": counts, "test_per_class": test_per_class,
            "test_images": len(test_labels), "epsilon": epsilon, "step": step, "steps": steps, "repeats": repeats,
            "auc": tolist(auc), "auc_mean": tolist(auc.mean(dim=1)),
            "auc_std": tolist(auc.std(dim=1) if repeats > 1 else torch.zeros(len(counts))),
            "attack_success_train": success["train"], "attack_success_test": success["test"],
            "layers": list(model.depth_layers()), "feature_width": int(test_x.shape[1])}
