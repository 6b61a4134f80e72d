"""Label Sensitive Gate: the C x K gate G, its sparsity term, its constraint, its schedule,
and the post-hoc fit that defines Phi (filter ambiguity) for any model.

Because the head is linear after global average pooling, gating the maps before the pool is
`G_y * a` after it: the gated path and the post-hoc fit only need pooled features `a`.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@torch.no_grad()
def constrain_gate_(gate: torch.Tensor) -> torch.Tensor:
    """In place: divide each unit's column by its max over classes, then clip to [0, 1].
    A column whose max is not positive is left as is (then clipped), never divided by zero."""
    col_max = gate.max(dim=0, keepdim=True).values
    safe = torch.where(col_max > 0, col_max, torch.ones_like(col_max))
    gate.div_(safe).clamp_(0.0, 1.0)
    return gate


def sparsity_term(gate: torch.Tensor, target_l1: float, one_sided: bool) -> torch.Tensor:
    """`| ||G||_1 - s |` (the paper) or `relu(||G||_1 - s)` (the published code)."""
    excess = gate.abs().sum() - target_l1
    return F.relu(excess) if one_sided else excess.abs()


def gated_logits(features: torch.Tensor, labels: torch.Tensor, gate: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`W (G_y * a) + b` for every image."""
    return F.linear(features * gate[labels], weight, bias)


def own_row_logits(features: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    """Each class's logit read through its own gate row, `z_c = W_c (G_c * a) + b_c`: the gated
    path as a classifier that needs no label (the CSG paper's O^CSG, Badola et al. Table 1)."""
    return F.linear(features, gate * weight, bias)


def is_gated_step(epoch: int, step: int, period: int, by_epoch: bool, warmup_epochs: int) -> bool:
    """Alternation of gated and standard steps. By epoch (as published): epoch % period ==
    period - 1 after the warm-up. By step (for short CPU runs): every period-th step."""
    if epoch < warmup_epochs:
        return False
    counter = epoch if by_epoch else step
    return counter % period == period - 1


def block_gate(num_classes: int, num_units: int) -> torch.Tensor:
    """The hand-set gate of the LSG paper's App. C (Fig. 9): each class owns a contiguous block of
    floor(K/C) units (1 there, 0 elsewhere) and the K mod C units left over are open to every class
    (ResNet-20's 64 units, 10 classes: 6 a class, 4 shared by all)."""
    own = num_units // num_classes
    owner = torch.arange(num_units) // max(own, 1)
    gate = (owner[None, :] == torch.arange(num_classes)[:, None]).float()
    gate[:, own * num_classes:] = 1.0
    return gate


def tighten_gate(gate: torch.Tensor, threshold: float) -> torch.Tensor:
    """The LSG paper's Sec. 3.3: a unit with exactly one class's entry >= `threshold` becomes that
    class's alone (one-hot), any other unit is shared by every class (all ones)."""
    above = gate >= threshold
    alone = above.sum(dim=0) == 1
    return torch.where(alone[None, :], above.to(gate.dtype), torch.ones_like(gate))


def gate_density(gate: torch.Tensor) -> torch.Tensor:
    """||G||_1 / (C K), as a tensor (the Phi objective differentiates it)."""
    return gate.abs().sum() / gate.numel()


def least_density(num_classes: int) -> float:
    """The lowest density a gate can have under its constraint: every column is scaled to a
    maximum of 1, so at least one entry in C is 1 (a target below 1/C cannot be reached)."""
    return 1.0 / num_classes


def fit_verdict(converged: bool | None, target: float, num_classes: int, stopped: str = "step cap") -> str:
    """What the Gates page says of a fit: converged, stopped at its step cap or time budget (Phi is
    then an upper bound), or converged on a density target the constraint cannot reach (with 4
    classes 0.2 < 1/4: the density term never vanishes)."""
    if not converged:
        return f"no: stopped at its {stopped} (Phi is an upper bound)"
    if target < least_density(num_classes):
        return f"yes, but the density target {target:g} is below the least possible 1/{num_classes}"
    return "yes"


def single_class_fraction(gate: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of units whose column has exactly one entry >= threshold."""
    return float(((gate >= threshold).sum(dim=0) == 1).float().mean())


def shared_fraction(gate: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of units open to two classes or more (the LSG paper's filters "shared by classes",
    about 10% over its 20 models, Sec. 4.3); with the single-class and the closed units it makes 1."""
    return float(((gate >= threshold).sum(dim=0) >= 2).float().mean())


def monopolised_units(gate: torch.Tensor, threshold: float = 0.5) -> list[int]:
    """Per class, the single-class units that are its own (their one entry >= threshold is the
    class's): the LSG paper's count of the filters a class monopolises (Sec. 4.3)."""
    open_to = gate >= threshold
    return open_to[:, open_to.sum(dim=0) == 1].sum(dim=1).tolist()


@dataclass
class _ClassGroup:
    """Classes of similar size, their features as zero-padded column blocks (g, K, width)."""
    classes: torch.Tensor
    local: torch.Tensor
    blocks: torch.Tensor
    mask: torch.Tensor | None  # (g, 1, width): which columns are images; None when none is padding


class _GatedCE:
    """CE of the gated path on cached features, in float64, with its gradient in G.

    CE is separable by class row: the images of class c see only `G[c]`, so class c is one block
    `Z_c = (W * G[c]) @ A_c^T + b` (C x N_c). Classes of similar size (within 2x) are stacked as
    zero-padded blocks, so a few batched products cover many classes at once: a handful of
    operations per evaluation instead of a dozen per class, which on a GPU is what costs.
    `group_elements` bounds the logits and gated weights one group holds (at 1000 classes of one
    image and 512 units, all in one group took 8 GB). Full batch, fixed order: the same inputs
    give the same bits every time.
    """

    GROUP_ELEMENTS = 1 << 24  # logits held at once (classes x C x width), 128 MB in float64

    def __init__(self, features, labels, weight, bias, device="cpu", group_elements: int = GROUP_ELEMENTS):
        self.device = torch.device(device)
        self.weight = weight.detach().to(self.device, torch.float64)
        num_classes = self.weight.shape[0]
        self.bias = (torch.zeros(num_classes, dtype=torch.float64, device=self.device) if bias is None
                     else bias.detach().to(self.device, torch.float64))[None, :, None]
        features, labels = features.detach().to(self.device), labels.detach().to(self.device)
        counts = torch.bincount(labels, minlength=num_classes).tolist()
        members, current = [], []
        for c in sorted(range(num_classes), key=counts.__getitem__):  # equal sizes keep class order
            width = max(1, counts[c])
            # a group holds its logits (classes x C x width) and its gated weights (classes x C x K)
            if current and (width > 2 * max(1, counts[current[0]])
                            or (len(current) + 1) * num_classes * max(width, features.shape[1]) > group_elements):
                members.append(current)
                current = []
            current.append(c)
        members.append(current)
        self.groups = [self._group(classes, features, labels, counts) for classes in members]
        self.count = len(labels)

    def _group(self, classes: list[int], features, labels, counts) -> _ClassGroup:
        width = max(1, max(counts[c] for c in classes))
        blocks = torch.zeros(len(classes), features.shape[1], width, dtype=torch.float64, device=self.device)
        mask = torch.zeros(len(classes), 1, width, dtype=torch.bool, device=self.device)
        for i, c in enumerate(classes):
            blocks[i, :, :counts[c]] = features[labels == c].double().T
            mask[i, :, :counts[c]] = True
        return _ClassGroup(torch.tensor(classes, device=self.device), torch.arange(len(classes), device=self.device),
                           blocks, None if bool(mask.all()) else mask)

    def __call__(self, gate: torch.Tensor, grad: bool = False):
        """CE at `gate` (a float) and, with `grad`, its gradient, on the gate's device (the CPU)."""
        on_host = gate
        gate = gate.to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        gradient = torch.zeros_like(gate) if grad else None
        for g in self.groups:
            z = torch.bmm(self.weight * gate[g.classes, None, :], g.blocks) + self.bias  # (classes, C, width)
            top = z.amax(dim=1, keepdim=True)
            e = torch.exp(z - top)
            s = e.sum(dim=1, keepdim=True)
            per_image = top + torch.log(s) - z[g.local, g.classes, None]              # (classes, 1, width)
            total += (torch.where(g.mask, per_image, 0.0) if g.mask is not None else per_image).sum()
            if grad:
                e /= s                                                               # softmax
                e[g.local, g.classes] -= 1.0                                         # p - onehot
                # padded columns of the blocks are zero: they add nothing to the product
                gradient[g.classes] = (torch.bmm(g.blocks, e.transpose(1, 2)) * self.weight.T).sum(dim=2)
        total = float(total) / self.count
        return (total, (gradient / self.count).to(on_host.device)) if grad else total


def _prox_feasible(values: torch.Tensor, step: float, rho: float) -> torch.Tensor:
    """argmin over feasible G of ||G - values||^2 / (2 step) + |density(G) - rho|, exactly.

    Feasible: entries in [0, 1] and every column's max equal to 1, which is the set the
    normalise-and-clip constraint maps onto and leaves fixed (but for an all-zero column, which
    it gives a column with no positive entry; the fit keeps every unit open to one class
    at least, as gradient steps from 0.5 or a trained gate do). Per column the largest entry
    becomes 1 (the cheapest entry to raise); the others are `clip(values - step s / (C K))`,
    one shift s in [-1, 1] for all (the subgradient of the absolute value), found exactly on
    the piecewise-linear total it gives.
    """
    num_classes, num_features = values.shape
    size = num_classes * num_features
    top = torch.zeros_like(values, dtype=torch.bool)
    top[values.argmax(dim=0), torch.arange(num_features)] = True  # ties: the first class
    free = values[~top]
    scale = step / size
    needed = rho * size - num_features  # what the free entries must sum to for density rho

    def total(shift: float) -> float:
        return float((free - scale * shift).clamp(0.0, 1.0).sum())

    if total(1.0) >= needed:
        shift = 1.0
    elif total(-1.0) <= needed:
        shift = -1.0
    else:  # total() falls from above `needed` to below it on [-1, 1]; it is linear between kinks
        kinks = torch.cat([(free - 1.0) / scale, free / scale, torch.tensor([-1.0, 1.0], dtype=free.dtype)])
        kinks = kinks[(kinks >= -1.0) & (kinks <= 1.0)].sort().values.tolist()
        lo, hi = 0, len(kinks) - 1  # total(kinks[lo]) > needed >= total(kinks[hi])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if total(kinks[mid]) > needed:
                lo = mid
            else:
                hi = mid
        t_lo, t_hi = total(kinks[lo]), total(kinks[hi])
        shift = kinks[lo] + (t_lo - needed) / (t_lo - t_hi) * (kinks[hi] - kinks[lo])
    gate = (values - scale * shift).clamp_(0.0, 1.0)
    gate[top] = 1.0
    return gate


_THREADS = threading.Lock()


@contextmanager
def single_threaded():
    """Run torch on one intra-op thread, then restore the caller's setting. The Phi fit is
    thousands of small operations: one thread is as fast on an idle machine, far faster on a
    busy one (two threads waited ~30x longer at each barrier under a training job), and makes
    the order of every sum, hence Phi's bits, independent of the caller's thread count."""
    with _THREADS:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def is_feasible(gate: torch.Tensor) -> bool:
    """Entries in [0, 1], every column's max exactly 1: a fixed point of `constrain_gate_`."""
    return bool((gate >= 0).all() and (gate <= 1).all() and (gate.amax(dim=0) == 1).all())


def fit_gate(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None, init: torch.Tensor | None = None, rho: float = 0.2,
             max_steps: int = 5000, tol: float = 1e-9, window: int = 10, device="cpu",
             max_seconds: float | None = None) -> dict:
    """Phi = min over G of CE(gated) + |density(G) - rho| with the network frozen, G under the
    normalise-and-clip constraint (entries in [0, 1], each column's max 1); starts from `init`
    (an LSG model's trained gate) or 0.5. Follows SPEC (Phi), not a fixed step count.

    Full batch on every cached feature, in float64, accelerated proximal gradient (FISTA with
    backtracking and a restart whenever the objective would rise): each step is a gradient step
    on CE, then the exact proximal map of the density term onto the feasible set, so every
    iterate satisfies the constraint and the objective never increases. Stops when the
    objective's relative improvement over the last `window` steps is at most `tol`, or when
    even a plain step cannot lower it; `max_steps` caps gradient evaluations (`converged`
    False then), and so does `max_seconds`: each step costs O(N C K), so at 1000 classes a CPU
    needs hours, and the fit then stops at its time budget with the Phi reached so far (an upper
    bound; `converged` False, `stopped` says why). No randomness and a fixed order of every sum:
    the same inputs give the same bits in any run, whatever the caller's thread count (the fit
    runs on one thread), as long as it converges within its budget.

    `device`: where the cross-entropy over the features is computed (the gate's small steps
    stay on the CPU; on a GPU the fit was most of a bundled model's analysis time, see
    bench/RESULTS.md). Its bits are the same in every run on one device, and equal the CPU's to
    float64 rounding.

    Returns gate (float32), phi, gated CE, density, the fraction of single-class units, steps
    (gradient evaluations) and converged, all measured on the returned gate over all of
    `features`. (Adam on minibatches with normalise-and-clip after each step stopped above this
    minimum: rescaling a column undoes any step along it.)
    """
    if max_steps < 1 or window < 1 or not tol >= 0:
        raise ValueError("fit_gate needs max_steps >= 1, window >= 1 and tol >= 0")
    if len(labels) == 0:
        raise ValueError("fit_gate needs at least one training feature")
    if int(labels.min()) < 0 or int(labels.max()) >= weight.shape[0]:
        raise ValueError("fit_gate: a label is outside the head's classes")
    with single_threaded():
        return _fit_gate(features, labels, weight, bias, init, rho, max_steps, tol, window, device, max_seconds)


def _fit_gate(features, labels, weight, bias, init, rho, max_steps, tol, window, device, max_seconds) -> dict:
    deadline = time.monotonic() + max_seconds if max_seconds else None
    num_classes, num_features = weight.shape
    size = num_classes * num_features
    ce = _GatedCE(features, labels, weight, bias, device)
    gate = (init.detach().cpu().double().clone() if init is not None
            else torch.full((num_classes, num_features), 0.5, dtype=torch.float64))

    def objective(g, ce_value):
        return ce_value + abs(float(g.sum()) / size - rho)

    value = objective(gate, ce(gate))
    must_enter = not is_feasible(gate)  # the first step lands on the feasible set, whatever it costs
    history = [value]
    point, previous, momentum, step = gate, gate, 1.0, 1.0
    steps, converged, stopped = 0, False, "step cap"
    while steps < max_steps:
        if deadline is not None and time.monotonic() > deadline:
            stopped = "time budget"
            break
        steps += 1
        ce_point, grad = ce(point, grad=True)
        while True:  # backtracking: the quadratic model must bound CE at the new point
            new = _prox_feasible(point - step * grad, step, rho)
            delta = new - point
            ce_new = ce(new)
            if ce_new <= ce_point + float((grad * delta).sum()) + float(delta.square().sum()) / (2 * step) \
                    or step < 1e-12:
                break
            step /= 2
        new_value = objective(new, ce_new)
        if new_value >= value and not must_enter:
            if point is gate:  # even a plain step from the current gate cannot lower Phi
                converged = True
                break
            point, momentum = gate, 1.0  # restart the momentum
            continue
        must_enter = False
        previous, gate, value = gate, new, new_value
        history.append(value)
        if len(history) > window and history[-window - 1] - value <= tol * abs(value):
            converged = True
            break
        following = (1 + (1 + 4 * momentum * momentum) ** 0.5) / 2
        point = gate + ((momentum - 1) / following) * (gate - previous)
        momentum = following
        step *= 1.25
    gate = gate.float()
    exact = gate.double()
    ce_value = ce(exact)
    density = float(gate_density(exact))
    return {"gate": gate, "phi": ce_value + abs(density - rho), "gated_ce": ce_value, "density": density,
            "single_class_fraction": single_class_fraction(gate), "steps": steps, "converged": converged,
            **({} if converged else {"stopped": stopped})}


def phi_objective(features, labels, gate, weight, bias, rho: float) -> torch.Tensor:
    """CE(gated) + |density(G) - rho| (differentiable, in the dtype given): the objective of Phi."""
    return F.cross_entropy(gated_logits(features, labels, gate, weight, bias), labels) + (gate_density(gate) - rho).abs()


def gate_assignment(column) -> tuple[int | None, list[int]]:
    """A unit's class by its gate column: the largest entry (the first of equal ones, as the
    gate analysis's argmax), or None where the gate gives the unit to no class (all zero); and
    the other classes tied with it (a constrained gate's column often has several 1s)."""
    values = [float(v) for v in column]
    top = max(values)
    if top <= 0:
        return None, []
    tied = [c for c, v in enumerate(values) if v == top]
    return tied[0], tied[1:]


def gate_classes(gate) -> list[int | None]:
    """Every unit's class by its gate column (C, K), as `gate_assignment` gives it."""
    return [gate_assignment(column)[0] for column in zip(*gate)]
