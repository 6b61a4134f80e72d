"""The metrics exactly as SPEC defines them, on tiny hand-built inputs with the expected numbers
worked out by hand: standard median and quartiles of selectivity, exact ablation drops whose
ties get average ranks, Phi fitted to convergence and deterministic, noise over seeds."""
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import lsg
from core.analysis.base import FeatureCache, rank, spearman
from core.analysis.noise import noise_ablation, replace_features
from core.analysis.selectivity import selectivity
from core.analysis.unit_ablation import drop_matrix, unit_ablation

ROOT = Path(__file__).resolve().parent.parent


def cache(features, labels, weight=None):
    features = torch.as_tensor(features, dtype=torch.float32)
    logits = features @ weight.T if weight is not None else torch.zeros(len(labels), 2)
    return FeatureCache(features, logits, torch.as_tensor(labels))


# ---------------------------------------------------------------- selectivity: median, quartiles
def test_selectivity_median_and_quartiles_are_standard_over_live_units():
    # two classes, one image each; columns are units: (class-0 activation, class-1 activation)
    #   u0 (1, 1): SI 0          u1 (3, 2): SI 1/5       u2 (4, 1): SI 3/5     u3 (1, 0): SI 1
    #   u4, u5 (0, 0): dead, excluded (with them the median would be 0.1)
    features = [[1.0, 3, 4, 1, 0, 0],
                [1.0, 2, 1, 0, 0, 0]]
    ctx = SimpleNamespace(test=cache(features, [0, 1]), num_classes=2)
    result = selectivity(ctx)
    eps = 1e-7  # SPEC's guard in the denominator
    s0, s1, s2, s3 = 0.0, 1 / (5 + eps), 3 / (5 + eps), 1 / (1 + eps)
    assert result["per_unit"][:4] == pytest.approx([s0, s1, s2, s3], rel=1e-12, abs=1e-15)
    assert result["dead"] == [False, False, False, False, True, True] and result["dead_count"] == 2
    # sorted live values s0 < s1 < s2 < s3: an even count, so the median is the mean of the two
    # middle values (0.4), not the lower one (torch.median's 0.2)
    assert result["median"] == pytest.approx((s1 + s2) / 2, rel=1e-12)
    assert result["median"] != pytest.approx(s1, rel=1e-3)
    # quartiles by linear interpolation at positions 0.25 * 3 = 0.75 and 0.75 * 3 = 2.25
    assert result["q1"] == pytest.approx(s0 + 0.75 * (s1 - s0), rel=1e-12)
    assert result["q3"] == pytest.approx(s2 + 0.25 * (s3 - s2), rel=1e-12)
    live = np.array([s0, s1, s2, s3])
    assert [result["q1"], result["median"], result["q3"]] == pytest.approx(
        list(np.percentile(live, [25, 50, 75])), rel=1e-12)
    assert result["mean"] == pytest.approx(live.mean(), rel=1e-12)
    assert sum(result["histogram"]) == 4  # dead units are not in the histogram


def test_selectivity_summaries_of_an_odd_count_and_of_no_live_unit():
    features = [[2.0, 1, 1], [0.0, 0, 1]]  # SI 1, 1, 0 -> median 1, q1 0.5, q3 1
    result = selectivity(SimpleNamespace(test=cache(features, [0, 1]), num_classes=2))
    assert result["median"] == pytest.approx(1.0, abs=1e-6)
    assert result["q1"] == pytest.approx(0.5, abs=1e-6) and result["q3"] == pytest.approx(1.0, abs=1e-6)
    dead = selectivity(SimpleNamespace(test=cache([[0.0, 0], [0.0, 0]], [0, 1]), num_classes=2))
    assert dead["dead_count"] == 2
    assert all(math.isnan(dead[k]) for k in ("median", "q1", "q3", "mean"))


# ---------------------------------------------------------------- ablation: exact drops, ties
# Two classes of three images, three units; logits z0 = a0 + a2, z1 = a1 + 2 a2.
TIE_W = torch.tensor([[1.0, 0.0, 1.0],
                      [0.0, 1.0, 2.0]])
TIE_FEATURES = torch.tensor([
    [2.0, 1, 0],   # class 0: z (2, 1) right;  zero u0 -> (0, 1) wrong
    [0.0, 2, 1],   # class 0: z (1, 4) wrong whatever is zeroed
    [0.0, 2, 1],   # class 0: the same
    [1.0, 2, 0],   # class 1: z (1, 2) right;  zero u1 -> (1, 0) wrong
    [0.0, 1, 1],   # class 1: z (1, 3) right whatever is zeroed
    [0.0, 1, 1],   # class 1: the same
])
TIE_LABELS = torch.tensor([0, 0, 0, 1, 1, 1])


def test_equal_ablation_drops_are_exactly_equal():
    logits = TIE_FEATURES @ TIE_W.T
    drop, overall = drop_matrix(TIE_FEATURES, logits, TIE_LABELS, TIE_W, 2)
    # u0: class 0 goes from 1/3 right to 0/3; u1: class 1 from 3/3 to 2/3; u2 changes nothing
    assert drop.tolist() == [[1 / 3, 0.0], [0.0, 1 / 3], [0.0, 0.0]]
    assert drop[0, 0].item() == drop[1, 1].item()  # 1/3 - 0 and 1 - 2/3: one exact value
    assert overall.tolist() == [1 / 6, 1 / 6, 0.0]
    # what accuracies subtracted in float32 would have given: not a tie
    assert (torch.tensor(1 / 3) - torch.tensor(0.0)).item() != (torch.tensor(1.0) - torch.tensor(2 / 3)).item()


def test_spearman_of_tied_drops_uses_average_ranks():
    conv = torch.nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():  # incoming filters with L1 norms 3, 1, 0.5
        conv.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [0.0, -0.5]]).view(3, 2, 1, 1))
    ctx = SimpleNamespace(test=cache(TIE_FEATURES, TIE_LABELS, TIE_W), W=TIE_W, num_classes=2,
                          model=SimpleNamespace(unit_filters=conv, nonnegative_units=True),
                          result=lambda name: {"per_unit": [0.3, 0.2, 0.1]})
    result = unit_ablation(ctx)
    assert result["max_class_drop"] == [1 / 3, 1 / 3, 0.0]
    # ranks of the max drops (1/3, 1/3, 0): (2.5, 2.5, 1), centred (0.5, 0.5, -1), squares sum 1.5
    # selectivity (0.3, 0.2, 0.1): ranks (3, 2, 1), centred (1, 0, -1), squares sum 2
    #   rho = (0.5 + 0 + 1) / sqrt(1.5 * 2) = sqrt(3) / 2
    assert result["spearman_selectivity"] == pytest.approx(math.sqrt(3) / 2, rel=1e-12)
    # the overall drops (1/6, 1/6, 0) rank as the max class drops: the same rho
    assert result["spearman_selectivity_overall"] == pytest.approx(math.sqrt(3) / 2, rel=1e-12)
    # outgoing |W[:, k]| L1 (1, 1, 3): ranks (1.5, 1.5, 3), centred (-0.5, -0.5, 1): rho = -1
    assert result["l1_norm"] == [1.0, 1.0, 3.0]
    assert result["spearman_l1"] == pytest.approx(-1.0, rel=1e-12)
    # incoming filter L1 (3, 1, 0.5): ranks (3, 2, 1): rho = sqrt(3) / 2
    assert result["filter_l1_norm"] == [3.0, 1.0, 0.5]
    assert result["spearman_filter_l1"] == pytest.approx(math.sqrt(3) / 2, rel=1e-12)
    # a convolution that does not output the K units: no filter norm, no rho
    ctx.model = SimpleNamespace(unit_filters=torch.nn.Conv2d(2, 4, 1), nonnegative_units=True)
    other = unit_ablation(ctx)
    assert other["filter_l1_norm"] is None and other["spearman_filter_l1"] is None
    # units of either sign (a class-token ViT): no selectivity, so no rho with it; the drops stand
    ctx.model = SimpleNamespace(unit_filters=None, nonnegative_units=False)
    signed = unit_ablation(ctx)
    assert signed["spearman_selectivity"] is None and signed["spearman_selectivity_overall"] is None
    assert signed["max_class_drop"] == [1 / 3, 1 / 3, 0.0]


def test_rank_gives_exactly_equal_float64_values_their_average_rank():
    assert rank(torch.tensor([10.0, 20, 20, 30])).tolist() == [1.0, 2.5, 2.5, 4.0]
    # 0.1 + 0.2 is not 0.3 in float64: distinct; the two 1/3 tie
    values = torch.tensor([1 / 3, 0.1 + 0.2, 0.3, 1 / 3], dtype=torch.float64)
    assert rank(values).tolist() == [3.5, 2.0, 1.0, 3.5]
    assert rank(torch.tensor([5.0, 5, 5])).tolist() == [2.0, 2.0, 2.0]
    assert rank(torch.tensor([0.0, -0.0, 1.0])).tolist() == [1.5, 1.5, 3.0]
    assert math.isnan(spearman(torch.tensor([1.0, float("nan"), 3]), torch.tensor([1.0, 2, 3])))


def test_spearman_with_many_ties_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (50,), generator=g).double() / 3   # heavy ties
    y = torch.randint(0, 6, (50,), generator=g).double()
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x.numpy(), y.numpy()).statistic, rel=1e-12)


# ---------------------------------------------------------------- Phi: converged, exact, deterministic
def test_phi_reaches_an_interior_optimum_worked_out_by_hand():
    # one unit, two classes, a = 1 on both images; W = (1.5, 0): class 0 wants G[0] = 1 (its
    # logit 1.5 G[0] against 0), class 1 wants G[1] = 0. rho = 0.9 > density, so the penalty
    # pulls G[1] up with slope 1/2; CE/2 pushes it down with 0.75 sigmoid(1.5 G[1]). Balance:
    # sigmoid(1.5 G[1]) = 2/3  ->  G[1] = ln(2) / 1.5, density (1 + G[1]) / 2 ~ 0.73 < 0.9.
    features, labels = torch.ones(2, 1), torch.tensor([0, 1])
    weight = torch.tensor([[1.5], [0.0]])
    g1 = math.log(2) / 1.5
    expected = 0.5 * math.log1p(math.exp(-1.5)) + 0.5 * math.log(3) + 0.9 - (1 + g1) / 2
    result = lsg.fit_gate(features, labels, weight, None, rho=0.9)
    assert result["converged"] and result["steps"] < 5000
    assert result["gate"][0, 0].item() == 1.0
    assert result["gate"][1, 0].item() == pytest.approx(g1, abs=1e-4)
    assert result["phi"] == pytest.approx(expected, abs=1e-9)
    # the other branch of the constraint (G[1] = 1 the column max) costs more: >= 0.5 ln(1 + e^1.5)
    assert expected < 0.5 * math.log1p(math.exp(1.5))


def test_phi_reaches_the_kink_of_the_density_term():
    # as above with W = (1, 0): CE/2's slope 0.5 sigmoid(G[1]) never reaches the penalty's 1/2,
    # so G[1] rises until density = rho exactly: G[1] = 2 rho - 1 = 0.75 (exact in float32)
    features, labels = torch.ones(2, 1), torch.tensor([0, 1])
    result = lsg.fit_gate(features, labels, torch.tensor([[1.0], [0.0]]), None, rho=0.875)
    expected = 0.5 * math.log1p(math.exp(-1.0)) + 0.5 * math.log1p(math.exp(0.75))
    assert result["converged"]
    assert result["gate"].tolist() == [[1.0], [0.75]]
    assert result["density"] == 0.875
    assert result["phi"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("init", [None, torch.ones(2, 2)])
def test_phi_on_a_two_by_two_problem_opens_exactly_the_diagonal(init):
    # class c's image activates only unit c, W = 2 I: the off-diagonal gates do nothing for CE and
    # every column must keep a 1, so density >= 0.5 > rho = 0.25: G = I, Phi = ln(1 + e^-2) + 0.25
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    result = lsg.fit_gate(features, torch.tensor([0, 1]), 2 * torch.eye(2), torch.zeros(2), init=init, rho=0.25)
    assert result["converged"] and result["steps"] < 100
    assert result["gate"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert result["phi"] == pytest.approx(math.log1p(math.exp(-2.0)) + 0.25, abs=1e-12)
    assert result["single_class_fraction"] == 1.0


def synthetic_problem(n=400, c=4, k=8, seed=0, planted=3.0, scale=0.1, strength=2.0):
    """The shape of test_lsg's problem: unit c * (k // c) (and noise) carries class c."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c
    features = torch.rand(n, k, generator=g)
    features[torch.arange(n), labels * (k // c)] += planted
    weight = scale * torch.randn(c, k, generator=g)
    weight[torch.arange(c), torch.arange(c) * (k // c)] = strength
    bias = 0.1 * torch.randn(c, generator=g)
    return features, labels, weight, bias


def adam_fit(features, labels, weight, bias, steps, lr, batch_size=None, seed=0):
    """The earlier fit: Adam, normalise-and-clip after each step, random minibatches when
    batch_size is given; returns Phi at the end and the best Phi seen on all features."""
    gate = torch.full(weight.shape, 0.5, requires_grad=True)
    optimizer = torch.optim.Adam([gate], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best = float("inf")
    with lsg.single_threaded():  # thousands of tiny steps: one thread is fastest on a busy machine
        for _ in range(steps):
            adam_step(features, labels, weight, bias, gate, optimizer, generator, batch_size)
            if batch_size is None:
                with torch.no_grad():
                    best = min(best, lsg.phi_objective(features, labels, gate, weight, bias, 0.2).item())
    with torch.no_grad():
        return lsg.phi_objective(features, labels, gate, weight, bias, 0.2).item(), best


def adam_step(features, labels, weight, bias, gate, optimizer, generator, batch_size):
    idx = (torch.randint(0, len(labels), (min(batch_size, len(labels)),), generator=generator)
           if batch_size else slice(None))
    loss = lsg.phi_objective(features[idx], labels[idx], gate, weight, bias, 0.2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    lsg.constrain_gate_(gate.data)


@pytest.mark.parametrize("shape", [{}, {"planted": 0.5, "scale": 1.0, "strength": 1.0}],
                         ids=["clear-classes", "interior-optimum"])
def test_converged_phi_is_below_the_old_fit_and_a_long_reference_run(shape):
    features, labels, weight, bias = synthetic_problem(**shape)
    result = lsg.fit_gate(features, labels, weight, bias)
    assert result["converged"] and result["steps"] < 5000
    old, _ = adam_fit(features, labels, weight, bias, steps=300, lr=0.05, batch_size=4096)
    _, reference = adam_fit(features, labels, weight, bias, steps=2000, lr=0.01)
    assert result["phi"] <= old + 1e-9
    assert result["phi"] <= reference + 1e-9
    # the reported figures are those of the returned gate, which the constraint leaves unchanged
    gate = result["gate"]
    assert lsg.is_feasible(gate) and torch.equal(lsg.constrain_gate_(gate.clone()), gate)
    ce = F.cross_entropy(F.linear(features.double() * gate.double()[labels], weight.double(), bias.double()), labels)
    assert result["gated_ce"] == pytest.approx(ce.item(), rel=1e-12)
    assert result["phi"] == pytest.approx(ce.item() + abs(gate.double().mean().item() - 0.2), rel=1e-12)


def test_phi_stops_at_the_cap_and_says_so():
    features, labels, weight, bias = synthetic_problem()
    result = lsg.fit_gate(features, labels, weight, bias, max_steps=3)
    assert result["steps"] == 3 and result["converged"] is False
    assert lsg.is_feasible(result["gate"])
    with pytest.raises(ValueError):
        lsg.fit_gate(features, labels, weight, bias, max_steps=0)


PHI_CHILD = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.test_metric_definitions import synthetic_problem
from core import lsg
torch.set_num_threads({threads})
print(lsg.fit_gate(*synthetic_problem(n=1000, c=10, k=16, seed=1))["phi"].hex())
"""


def test_phi_is_bitwise_deterministic_in_one_process_and_across_processes():
    problem = synthetic_problem(n=1000, c=10, k=16, seed=1)
    first, second = lsg.fit_gate(*problem), lsg.fit_gate(*problem)
    assert first["phi"].hex() == second["phi"].hex()
    assert torch.equal(first["gate"], second["gate"]) and first["steps"] == second["steps"]
    before = torch.get_num_threads()
    try:  # the caller's thread count does not matter (the fit runs on one thread)
        torch.set_num_threads(2 if before == 1 else 1)
        assert lsg.fit_gate(*problem)["phi"].hex() == first["phi"].hex()
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    child = subprocess.run([sys.executable, "-c", PHI_CHILD.format(root=str(ROOT), threads=before)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == first["phi"].hex()


# ---------------------------------------------------------------- noise ablation over seeds
def test_noise_ablation_reports_mean_and_spread_over_seeds():
    g = torch.Generator().manual_seed(5)
    c, k, n = 3, 6, 60
    train = FeatureCache(torch.rand(n, k, generator=g) * 3, torch.zeros(n, c), torch.arange(n) % c)
    test_labels = torch.arange(n) % c
    test_features = torch.rand(n, k, generator=g) * 3
    test_features[torch.arange(n), test_labels] += 1.0
    weight, bias = torch.randn(c, k, generator=g), torch.zeros(c)
    test = FeatureCache(test_features, F.linear(test_features, weight, bias), test_labels)
    ctx = SimpleNamespace(train=train, test=test, W=weight, b=bias, num_classes=c)
    result = noise_ablation(ctx, k1=2, k2=2, seed=7, seeds=4)

    from core.analysis.influential import influential_sets
    sets = influential_sets(train.features, train.labels, c, 2, 2)

    def accuracy(features):
        return int((F.linear(features, weight, bias).argmax(1) == test_labels).sum()) / n

    # zero: one deterministic run, spread 0
    zero = result["zero"]
    assert zero["seeds"] == 1 and zero["influential_std"] == 0.0 and zero["non_influential_std"] == 0.0
    assert zero["influential"] == accuracy(replace_features(test_features, test_labels, sets, True, "zero", None))
    assert zero["non_influential"] == accuracy(replace_features(test_features, test_labels, sets, False, "zero", None))
    # gaussian: single runs seeded 7, 8, 9, 10 (one generator per run: influential, then the rest)
    runs = []
    for seed in range(7, 11):
        generator = torch.Generator().manual_seed(seed)
        runs.append([accuracy(replace_features(test_features, test_labels, sets, influential, "gaussian", generator))
                     for influential in (True, False)])
    gaussian = result["gaussian"]
    assert gaussian["seeds"] == 4
    for i, name in enumerate(("influential", "non_influential")):
        values = [run[i] for run in runs]
        mean = sum(values) / 4
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # sample std over seeds
        assert gaussian[f"{name}_per_seed"] == values
        assert gaussian[name] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert gaussian[f"{name}_std"] == pytest.approx(std, rel=1e-12, abs=1e-15)
    assert gaussian["influential_std"] > 0  # the seeds differ: the spread is not vacuous
    assert result["matched"]["seeds"] == 4
    # one seed: the old single-run figures, spread unknown
    single = noise_ablation(ctx, k1=2, k2=2, seed=7, seeds=1)["gaussian"]
    assert single["influential"] == runs[0][0] and math.isnan(single["influential_std"])


def test_rotation_control_by_hand():
    """A rotation that swaps units 0 and 1 (with a sign) leaves the logits as they were and gives
    unit ablation's drops in the swapped order; a Haar draw is orthogonal and seeded."""
    from core.analysis.rotation import random_rotation, rotated_drops
    from core.analysis.unit_ablation import drop_matrix
    logits = TIE_FEATURES @ TIE_W.T
    swap = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)  # a Q: column j is direction j
    torch.testing.assert_close((TIE_FEATURES.double() @ swap) @ (TIE_W.double() @ swap).T, logits.double())
    drop, overall = rotated_drops(TIE_FEATURES, logits, TIE_LABELS, TIE_W, 2, swap)
    units, unit_overall = drop_matrix(TIE_FEATURES, logits, TIE_LABELS, TIE_W, 2)
    assert drop.tolist() == [units[1].tolist(), units[0].tolist(), units[2].tolist()]
    assert overall.tolist() == [unit_overall[1], unit_overall[0], unit_overall[2]]
    q = random_rotation(5, seed=3)
    torch.testing.assert_close(q.T @ q, torch.eye(5, dtype=torch.float64))
    assert torch.equal(q, random_rotation(5, seed=3)) and not torch.equal(q, random_rotation(5, seed=4))
