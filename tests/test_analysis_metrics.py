"""Each metric against a hand computation on a tiny case."""
import math

import pytest
import torch

from core.analysis import selectivity_index, spearman
from core.analysis.base import confusion_matrix, per_class_accuracy
from core.analysis.filters import filter_correlation, inter_class_correlation
from core.analysis.influential import decomposed_logits, index_frequencies, influential_sets
from core.analysis.noise import replace_features
from core.analysis.selectivity import class_means, dead_units, unit_for_class
from core.analysis.similarity import similarity_matrix
from core.analysis.unit_ablation import ablated_predictions, drop_matrix
from core.cam import class_activation_map
from core.models import UnitModel, create_model


def test_selectivity_index_by_hand():
    # 3 classes, 2 images each; unit 0 fires for class 0 only, unit 1 evenly, unit 2 dead
    features = torch.tensor([[4.0, 1, 0], [2, 1, 0], [0, 1, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    # unit 0: class means 3, 0, 1 -> mu_max 3, mu_-max 0.5 -> 2.5 / 3.5
    si = selectivity_index(features, labels, 3)
    assert si[0].item() == pytest.approx(2.5 / 3.5, rel=1e-6)
    assert si[1].item() == pytest.approx(0.0, abs=1e-7)
    assert si[2].item() == 0.0
    assert dead_units(features).tolist() == [False, False, True]
    torch.testing.assert_close(class_means(features, labels, 3)[:, 0], torch.tensor([3.0, 0, 1], dtype=torch.float64))


def test_accuracy_and_confusion_by_hand():
    preds, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 2])
    assert per_class_accuracy(preds, labels, 3).tolist() == [1.0, 1.0, pytest.approx(1 / 3)]
    assert confusion_matrix(preds, labels, 3).tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]


def test_spearman_by_hand():
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # d = ranks differ by (0, 1, -1): rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([1.0, 3, 2])) == pytest.approx(0.5)
    assert math.isnan(spearman(torch.tensor([1.0, 2]), torch.tensor([5.0, 5.0])))


def test_influential_sets_and_decomposed_logits_by_hand():
    features = torch.tensor([[5.0, 4, 0, 1], [5, 0, 4, 1], [0, 1, 5, 4], [0, 4, 5, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    # k1 = 2: class 0 top pairs {0,1}, {0,2} -> counts 0:2, 1:1, 2:1 -> k2 = 2 -> [0, 1]
    #         class 1 top pairs {2,3}, {2,1} -> counts 2:2, 1:1, 3:1 -> [2, 1]
    sets = influential_sets(features, labels, 2, k1=2, k2=2)
    assert sets.tolist() == [[0, 1], [2, 1]]
    weight = torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8]])
    bias = torch.tensor([0.5, -0.5])
    logits = decomposed_logits(features[:1], weight, bias, sets)
    assert logits.tolist() == [[1 * 5 + 2 * 4 + 0.5, 6 * 4 + 7 * 0 - 0.5]]
    # the Fig. 2 histogram at k1 = 2, and k1 != k2: k2 = 1 keeps each class's most frequent unit
    assert index_frequencies(features, labels, 2, 2).tolist() == [[2, 1, 1, 0], [0, 1, 2, 1]]
    assert influential_sets(features, labels, 2, k1=2, k2=1).tolist() == [[0], [2]]
    # k1 = 1, k2 = 3: class 0's tops are unit 0 twice -> counts (2, 0, 0, 0) -> [0, then ties by index 1, 2]
    assert influential_sets(features, labels, 2, k1=1, k2=3).tolist() == [[0, 1, 2], [2, 0, 1]]


def test_influential_analysis_takes_k1_and_k2_apart():
    """The analysis with k1 = 2, k2 = 1 on the features above: the sets and the histogram of Alg. 1,
    the decomposed accuracy of those sets, and k out of range refused in one line."""
    from types import SimpleNamespace

    from core.analysis.base import FeatureCache
    from core.analysis.influential import influential
    from core.errors import UserError
    features = torch.tensor([[5.0, 4, 0, 1], [5, 0, 4, 1], [0, 1, 5, 4], [1, 4, 5, 1]])  # the tops as above
    labels = torch.tensor([0, 0, 1, 1])
    weight, bias = torch.eye(2, 4), torch.tensor([0.0, 0.5])  # logits (a0, a1 + 0.5)
    split = FeatureCache(features, features @ weight.T, labels)
    ctx = SimpleNamespace(train=split, test=split, W=weight, b=bias, num_classes=2)
    result = influential(ctx, k1=2, k2=1)
    assert result["sets"] == [[0], [2]] and result["frequencies"] == [[2, 1, 1, 0], [0, 1, 2, 1]]
    # full logits (5, 4.5), (5, 0.5), (0, 1.5), (1, 4.5): all right. Decomposed, class 0 keeps unit 0
    # (W[0, 0] = 1), class 1 unit 2 (W[1, 2] = 0). The paper's, without the bias: (a0, 0): (5, 0), (5, 0)
    # right, (0, 0) a tie (argmax takes class 0) and (1, 0) wrong. With the bias, (a0, 0.5): (0, .5) right
    assert result["A_f"] == 1.0 and result["A_d"] == 0.5 and result["r_A"] == 0.5
    assert result["A_d_with_bias"] == 0.75 and result["r_A_with_bias"] == 0.75
    with pytest.raises(UserError, match="k1 and k2 must lie in 1..4"):
        influential(ctx, k1=5, k2=1)


def test_noise_ablation_zero_by_hand():
    features = torch.tensor([[1.0, 2, 3], [4, 5, 6]])
    labels = torch.tensor([0, 1])
    sets = torch.tensor([[0], [2]])
    zeroed = replace_features(features, labels, sets, True, "zero", None)
    assert zeroed.tolist() == [[0, 2, 3], [4, 5, 0]]
    kept = replace_features(features, labels, sets, False, "zero", None)
    assert kept.tolist() == [[1, 0, 0], [0, 0, 6]]
    matched = replace_features(features, labels, sets, True, "matched", torch.Generator().manual_seed(0),
                               mean=torch.tensor([100.0, 0, 100]), std=torch.zeros(3))
    assert matched.tolist() == [[100, 2, 3], [4, 5, 100]]


def test_ablation_blocks_bounded_by_memory_give_the_same_predictions():
    """Issue 29: the units are taken as many at a time as keep the ablated logits within a block
    (one unit where N x C alone fills it); any block gives what zeroing each unit by hand gives."""
    torch.manual_seed(0)
    a, w = torch.rand(9, 5), torch.randn(3, 5)
    logits = a @ w.T
    by_hand = torch.stack([(a * (torch.arange(5) != k)) @ w.T for k in range(5)]).argmax(dim=2)
    for block in (1, 27, 54, 2 ** 25):  # 1 unit, 1 unit (9 x 3 = 27), 2 units, every unit at once
        assert torch.equal(ablated_predictions(a, logits, w, block=block), by_hand), block


def test_unit_ablation_algebra_equals_zeroing_inside_the_network():
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1).eval()
    x = torch.randn(64, 1, 28, 28)
    labels = torch.randint(0, 10, (64,))
    with torch.no_grad():
        a = model.forward_parts(x).features
        # centre the logits so per-image differences decide and zeroing one unit flips predictions
        model.fc.bias.copy_(-model.fc(a).mean(dim=0))
        logits = model.fc(a)
    drop, overall = drop_matrix(a, logits, labels, model.fc.weight.detach(), 10)
    assert drop.dtype == overall.dtype == torch.float64
    counts = torch.bincount(labels, minlength=10)
    base_correct = torch.bincount(labels[logits.argmax(1) == labels], minlength=10)
    changes = (ablated_predictions(a, logits, model.fc.weight.detach()) != logits.argmax(1)).sum(dim=1)
    changed = 0
    for unit in (0, 7, 33, 63, *changes.topk(2).indices.tolist()):  # and those whose zeroing flips most
        hook = model.target_layer.register_forward_hook(
            lambda m, i, out, unit=unit: out.index_fill(1, torch.tensor([unit]), 0.0))
        with torch.no_grad():
            preds = model(x).argmax(1)
        hook.remove()
        correct = torch.bincount(labels[preds == labels], minlength=10)
        # exact: a difference of image counts divided once
        expected = (base_correct - correct).double() / counts.clamp_min(1).double()
        assert torch.equal(drop[unit], expected)
        assert overall[unit].item() == (int(base_correct.sum()) - int(correct.sum())) / 64
        torch.testing.assert_close(drop[unit].float(), per_class_accuracy(logits.argmax(1), labels, 10)
                                   - per_class_accuracy(preds, labels, 10))
        changed += int((preds != logits.argmax(1)).sum())
    assert changed > 0  # the check is not vacuous


def test_similarity_matrix_by_hand():
    features = torch.tensor([[1.0, 0], [0, 2], [3, 1]])
    labels = torch.tensor([0, 1, 0])
    preds = torch.tensor([0, 1, 1])  # images 0, 1 true positives; image 2 a false negative of class 0
    gate = torch.tensor([[1.0, 0], [0.5, 1]])
    tp = similarity_matrix(features, labels, preds, gate, 2, True)
    assert tp.tolist() == [[1.0, 0.5], [0.0, 2.0]]
    fn = similarity_matrix(features, labels, preds, gate, 2, False)
    assert fn[0].tolist() == [3.0, 2.5] and torch.isnan(fn[1]).all()


def test_filter_correlation_and_c_ic_by_hand():
    weight = torch.zeros(4, 1, 1, 2)
    weight[0, 0, 0] = torch.tensor([1.0, 0])
    weight[1, 0, 0] = torch.tensor([2.0, 0])
    weight[2, 0, 0] = torch.tensor([0.0, 1])
    weight[3, 0, 0] = torch.tensor([1.0, 1])
    corr = filter_correlation(weight)
    assert corr[0, 1].item() == pytest.approx(1.0) and corr[0, 2].item() == pytest.approx(0.0)
    assert corr[0, 3].item() == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    between, within = inter_class_correlation(corr, torch.tensor([[0, 1], [2, 3]]))
    # between: (0,2)=0 (0,3)=.707 (1,2)=0 (1,3)=.707, both directions -> mean .3536
    assert between == pytest.approx(1 / (2 * math.sqrt(2)), rel=1e-6)
    assert within == pytest.approx((1.0 + 1 / math.sqrt(2)) / 2, rel=1e-6)
    # Fig. 7e over the 12 ordered pairs off the diagonal: 1.0 twice (0-1), .707 six times (0-3, 1-3,
    # 2-3), 0 the other four (0-2, 1-2)
    from core.analysis.filters import redundancy
    assert redundancy(corr, (-0.1, 0.0, 0.6, 0.9, 0.99)) == pytest.approx([1.0, 8 / 12, 8 / 12, 2 / 12, 2 / 12])


def test_c_ic_takes_each_classs_most_activated_filters_as_the_paper_or_its_gates():
    """The filters above; class 0's images activate units 0, 1 most, class 1's units 2, 3; the gate
    says the opposite pairing (0, 2 and 1, 3). By activation (the default): C_IC as above, 0.3536;
    by gate: between (0,1)=1 (0,3)=.707 (2,1)=0 (2,3)=.707 -> 0.6036."""
    from types import SimpleNamespace

    from core.analysis.base import FeatureCache
    from core.analysis.filters import filter_correlation_analysis
    weight = torch.zeros(4, 1, 1, 2)
    weight[:, 0, 0] = torch.tensor([[1.0, 0], [2, 0], [0, 1], [1, 1]])
    model = SimpleNamespace(unit_filters=SimpleNamespace(weight=weight))
    features = torch.tensor([[5.0, 4, 0, 1], [0, 1, 5, 4]])
    gate = {"gate": [[1.0, 0, 1, 0], [0, 1, 0, 1]], "order": [0, 1, 2, 3]}
    ctx = SimpleNamespace(model=model, test=FeatureCache(features, features[:, :2], torch.tensor([0, 1])),
                          num_classes=2, W=torch.zeros(2, 4), result=lambda name: gate)
    by_activation = filter_correlation_analysis(ctx, m=2, by="activation")
    assert sorted(map(sorted, by_activation["dominant"])) == [[0, 1], [2, 3]]
    assert by_activation["c_ic"] == pytest.approx(1 / (2 * math.sqrt(2)), rel=1e-6)
    by_gate = filter_correlation_analysis(ctx, m=2, by="gate")
    assert by_gate["c_ic"] == pytest.approx((1 + 2 / math.sqrt(2)) / 4, rel=1e-6)


def test_cam_is_weighted_sum_of_maps():
    maps = torch.arange(2 * 2 * 2, dtype=torch.float32).view(2, 2, 2)
    weight = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    cam = class_activation_map(maps[None], weight[1:2], (2, 2))[0]
    torch.testing.assert_close(cam, 0.5 * maps[0] + 2.0 * maps[1])
    assert class_activation_map(maps[None], weight[0:1], (8, 8)).shape == (1, 8, 8)


def test_altair_chart_renders_to_png():
    import altair as alt
    import pandas as pd

    from core.render import altair_png
    data = altair_png(alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_bar().encode(x="x:O", y="y:Q"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 500


def test_unit_for_class_by_hand():
    """Units 0..3 on 3 classes: 0 and 2 prefer class 1 (SI .4 and .9), 1 is dead, 3 prefers 0."""
    result = {"dead": [False, True, False, False], "per_unit": [0.4, 0.0, 0.9, 0.5],
              "preferred_class": [1, 0, 1, 0],
              "class_means": [[0.1, 0.0, 0.2, 3.0], [0.5, 0.0, 1.0, 0.1], [0.3, 0.0, 0.6, 0.7]]}
    assert unit_for_class(result, 1)[0] == 2          # the more selective of 0 and 2
    assert unit_for_class(result, 0)[0] == 3          # dead unit 1 prefers class 0 but does not count
    unit, why = unit_for_class(result, 2)             # nobody prefers class 2: most active on it
    assert unit == 3 and "no unit prefers" in why
    unit, why = unit_for_class({**result, "dead": [True] * 4}, 1)
    assert unit is None and "dead" in why


def test_representative_substitution_by_hand():
    """Row i: activations on IAM(i). Unit 0's own 1.0 is beaten by unit 2 (2.0); unit 1's own 3.0
    by nobody; unit 2's own 0.5 by units 1 (0.9) and 0 (0.6). RS (Eq. 4) divides by the K = 3
    units: 1/3, 0, 2/3; the earlier variant by the 2 others: 1/2, 0, 1."""
    from core.analysis.iam import more_active, representative_substitution, rs_of_others
    acts = torch.tensor([[1.0, 0.2, 2.0], [0.1, 3.0, 0.3], [0.6, 0.9, 0.5]])
    assert representative_substitution(acts).tolist() == [1 / 3, 0.0, 2 / 3]
    assert rs_of_others(acts).tolist() == [0.5, 0.0, 1.0]
    assert more_active(acts) == [[2], [], [1, 0]]


class ChannelMeans(UnitModel):
    """Unit k is the mean of input channel k: IAM(k) must be channel k at its upper bound and
    every other channel at its lower bound."""

    def __init__(self):
        super().__init__(num_classes=2, in_channels=3, num_features=3)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward_features(self, x):
        return x * self.scale


def test_iam_pushes_its_own_unit_up_and_the_others_down_within_the_bounds():
    from core.analysis.iam import iam_images
    model = ChannelMeans()
    low, high = torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 2.0)
    reported = []
    images, acts = iam_images(model, size=2, channels=3, steps=200, lr=0.1, low=low, high=high,
                              progress=lambda done, total: reported.append((done, total)))
    assert reported == [(step, 200) for step in range(0, 200, 10)]
    expected = torch.full((3, 3), -1.0).fill_diagonal_(2.0)
    torch.testing.assert_close(images.mean(dim=(2, 3)), expected)
    torch.testing.assert_close(acts, expected)
    assert model.scale.requires_grad  # the model's parameters are given back trainable


def test_plain_activation_maximisation_leaves_the_other_units_alone():
    """AM (Eq. 2) maximises a_i only: unit i's channel goes to its bound, the other channels get no
    gradient and keep the start drawn from the seed (IAM pushed them to -1)."""
    from core.analysis.iam import iam_images
    model = ChannelMeans()
    low, high = torch.full((1, 3, 1, 1), -1.0), torch.full((1, 3, 1, 1), 2.0)
    images, acts = iam_images(model, size=2, channels=3, steps=200, lr=0.1, low=low, high=high, method="am")
    start = 0.1 * torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(acts.diagonal(), torch.full((3,), 2.0))
    off = ~torch.eye(3, dtype=torch.bool)
    torch.testing.assert_close(acts[off], start.mean(dim=(2, 3))[off])


def test_the_selectivity_density_is_reflected_at_0_and_1():
    """By hand: one value at 0.5 (its mirrors at -0.5 and 1.5 are 10 bandwidths away) is the normal
    density; one value at 1 meets its own mirror there, so the density at 1 doubles; any sample
    integrates to 1 over [0, 1] (a KDE cut at the edges loses the mass beyond them)."""
    import math
    import numpy as np
    from core.charts import bounded_density
    grid = np.array([0.5, 0.55, 1.0])
    peak = 1 / (0.05 * math.sqrt(2 * math.pi))
    assert bounded_density([0.5], grid, bandwidth=0.05) == pytest.approx([peak, peak * math.exp(-0.5), 0], abs=1e-12)
    assert bounded_density([1.0], np.array([1.0]), bandwidth=0.05)[0] == pytest.approx(2 * peak, rel=1e-12)
    fine = np.linspace(0, 1, 20001)
    piled = np.concatenate([np.full(30, 0.98), np.linspace(0.2, 1.0, 34)])
    assert np.trapezoid(bounded_density(piled, fine), fine) == pytest.approx(1.0, abs=1e-4)


def test_shared_range_spans_every_matrix_and_skips_missing_values():
    from core.charts import shared_range
    assert shared_range([[[0.2, None], [0.5, 0.1]], [[-0.3, 0.4]]]) == [-0.3, 0.5]
    assert shared_range([[[None]], []]) is None


def test_lines_coincide_only_where_two_or_more_models_share_every_value():
    import pandas as pd
    from core.charts import lines_coincide
    same = pd.DataFrame({"model": ["a", "b", "a", "b"], "epoch": [1, 1, 2, 2], "dead": [0, 0, 0, 0]})
    assert lines_coincide(same, "epoch", "dead")
    assert not lines_coincide(same.assign(dead=[0, 0, 0, 1]), "epoch", "dead")
    assert not lines_coincide(same.assign(dead=[0, None, 0, None]), "epoch", "dead")  # one model has no value
    assert not lines_coincide(same[same.model == "a"], "epoch", "dead")  # one model alone


def test_nll_and_ece_by_hand():
    """Four images. Top probabilities 0.9 (right), 0.9 (wrong), 0.6 (right), 0.55 (right):
    bins of width 1/15: 0.9 -> (0.867, 0.933], 0.6 -> (0.533, 0.6], 0.55 -> (0.533, 0.6] as well.
    ECE = 2/4 |1/2 - 0.9| + 2/4 |1 - 0.575| = 0.2 + 0.2125 = 0.4125."""
    from core.analysis.calibration import expected_calibration_error
    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4125, abs=1e-12)
    from core.analysis.calibration import calibration
    from types import SimpleNamespace
    from core.analysis.base import FeatureCache
    logits = probabilities.log().float()
    ctx = SimpleNamespace(test=FeatureCache(torch.zeros(4, 1), logits, labels))
    result = calibration(ctx, bins=15)
    nll = -(math.log(0.9) + math.log(0.1) + math.log(0.6) + math.log(0.55)) / 4
    assert result["nll"] == pytest.approx(nll, rel=1e-6) and result["ece"] == pytest.approx(0.4125, abs=1e-6)
    assert result["mean_confidence"] == pytest.approx((0.9 + 0.9 + 0.6 + 0.55) / 4, rel=1e-6)


def test_models_that_differ_only_in_their_seed_share_a_row_with_mean_and_spread():
    """Two CE seeds (median SI 0.7 and 0.8) and one minimax: two rows; the CE row's mean 0.75, sample
    spread 0.0707; a missing analysis is a dash. The faithfulness margin is CAM's against the random
    map as a share of the random map's area."""
    from core.tradeoffs import cell, summarise, values
    def model(method, seed, si):
        meta = {"label": f"{method}-{seed}", "method": method, "options": {}, "arch": "resnet20",
                "dataset": "fashion-mnist", "epochs": 40, "seed": seed}
        return meta, values({"selectivity": {"median": si}})
    rows = summarise([model("ce", 0, 0.7), model("ce", 1, 0.8), model("minimax", 0, 0.9)])
    assert [r["model"] for r in rows] == ["ce-0 (+1 seeds)", "minimax-0"] and rows[0]["seeds"] == 2
    assert cell(rows[0], "median_si") == "0.750 ± 0.071" and cell(rows[1], "median_si") == "0.900"
    assert cell(rows[0], "phi") == "—"
    faithfulness = {"methods": {"cam": {"deletion": {"mean": 0.2}, "insertion": {"mean": 0.6}},
                                "random": {"deletion": {"mean": 0.4}, "insertion": {"mean": 0.3}}}}
    got = values({"faithfulness": faithfulness})
    assert got["deletion_margin"] == pytest.approx(0.5) and got["insertion_margin"] == pytest.approx(1.0)


def test_the_gates_shares_fold_over_seeds_and_old_records_lack_them_quietly():
    """Gate 1 opens unit 0 to class 0 alone and unit 1 to both (shared 1/2); gate 2 opens unit 1 to
    class 1 alone (shared 0): shared units 0.25 +- 0.354. A record kept before "shared_units"
    existed folds without it; other keys fold the same way."""
    from core.tradeoffs import over_seeds, values
    one = values({"gate": {"gate": [[0.9, 0.6], [0.1, 0.7]], "single_class_fraction": 0.5}})
    two = values({"gate": {"gate": [[0.2, 0.1], [0.3, 0.8]], "single_class_fraction": 0.5}})
    assert one["shared_units"] == 0.5 and two["shared_units"] == 0.0
    old = {k: v for k, v in two.items() if k != "shared_units"}
    folded = over_seeds([one, two, old])
    assert folded["shared_units"] == pytest.approx(0.25) and folded["shared_units_spread"] == pytest.approx(0.3535534)
    assert folded["single_class_units"] == 0.5 and folded["single_class_units_spread"] == 0.0
    assert over_seeds([{"c_ic": 0.1}, {"c_ic": 0.3}, {}], ["c_ic"]) == pytest.approx({"c_ic": 0.2, "c_ic_spread": 0.1414214})


def test_models_our_trainer_did_not_make_or_that_differ_in_more_than_the_seed_are_never_folded():
    from core.tradeoffs import summarise, values
    imported = [({"label": f"r50-{i}", "method": "imported", "arch": "resnet50", "dataset": "x", "path": f"{i}.pt"},
                 values({"accuracy": {"accuracy": 0.5 + i / 10}})) for i in range(2)]
    other_lr = [({"label": f"ce-{lr}", "method": "ce", "seed": 0, "lr": lr, "arch": "resnet20"},
                 values({"accuracy": {"accuracy": 0.9}})) for lr in (0.1, 0.05)]
    assert [r["seeds"] for r in summarise(imported + other_lr)] == [1, 1, 1, 1]


def test_sweeps_group_models_that_differ_in_one_option_alone():
    """minimax at p_t 0.6 (seeds 0, 1: NTE 0.9, 1.0) and 0.8 (seed 0: 0.7), and a minimax at p_t 0.8
    with another lr: one sweep over p_t (values 0.6, 0.8; mean 0.95 +- 0.0707 then 0.7), one over
    lr (0.1 and 0.05 at p_t 0.8); a CE model sweeps nothing."""
    from core.tradeoffs import sweeps, values

    def model(p_t, seed, nte, lr=0.1, method="minimax"):
        meta = {"label": f"m{p_t}-{seed}-{lr}", "method": method, "options": {"p_t": p_t} if p_t else {},
                "arch": "resnet20", "lr": lr, "seed": seed}
        return meta, values({"nontarget_entropy": {"fraction": nte}})
    found = sweeps([model(0.6, 0, 0.9), model(0.6, 1, 1.0), model(0.8, 0, 0.7), model(0.8, 0, 0.5, lr=0.05),
                    model(None, 0, 0.3, method="ce")])
    by = {s.option: s for s in found}
    assert set(by) == {"p_t", "lr"}
    assert [p["value"] for p in by["p_t"].points] == [0.6, 0.8] and [p["seeds"] for p in by["p_t"].points] == [2, 1]
    assert by["p_t"].points[0]["nte_fraction"] == pytest.approx(0.95)
    assert by["p_t"].points[0]["nte_fraction_spread"] == pytest.approx(0.0707107, rel=1e-5)
    assert by["p_t"].points[1]["nte_fraction_spread"] is None
    assert [p["value"] for p in by["lr"].points] == [0.05, 0.1] and by["lr"].label == "minimax: lr (2 values)"


def test_class_masking_of_one_class_and_of_two_at_once_by_hand():
    """Three classes, three units, logit c = unit c. The gate gives unit c to class c. Masking class
    0 zeroes unit 0: its images (1, .5, .2) go to class 1. Masking classes 0 and 1 zeroes units 0
    and 1: both classes' images go to class 2 (logits 0, 0, .2 and 0, 0, .1)."""
    from types import SimpleNamespace

    from core.analysis.base import FeatureCache
    from core.analysis.masking import class_masking
    from core.errors import UserError
    features = torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1], [0.1, 0.2, 1.0]])
    labels = torch.tensor([0, 1, 2])
    W, b = torch.eye(3), torch.zeros(3)
    gate = {"gate": torch.eye(3).tolist()}
    ctx = SimpleNamespace(test=FeatureCache(features, features, labels), num_classes=3, W=W, b=b,
                          result=lambda name: gate)
    one = class_masking(ctx, threshold=0.5, by="gate", k1=1, k2=1, with_class=-1)
    assert one["units"] == [[0], [1], [2]] and one["masked_class_accuracy"] == [0.0, 0.0, 0.0]
    assert one["confusions"][0][0] == [0, 1, 0] and "partner_accuracy" not in one
    two = class_masking(ctx, threshold=0.5, by="gate", k1=1, k2=1, with_class=1)
    assert two["confusions"][0][0] == [0, 0, 1] and two["confusions"][0][1] == [0, 0, 1]
    assert two["masked_class_accuracy"][0] == 0.0 and two["partner_accuracy"][0] == 0.0
    # row 2 masks classes 2 and 1: class 0's image keeps unit 0, class 1's falls to class 0 (0.3 vs 0)
    assert two["confusions"][2][1] == [1, 0, 0] and two["partner_accuracy"][2] == 0.0
    with pytest.raises(UserError, match="with_class must be a class index below 3"):
        class_masking(ctx, threshold=0.5, by="gate", k1=1, k2=1, with_class=3)


def test_k1_for_ninety_percent_coverage_by_hand():
    """[5, 3, 1, 1]: 5 + 3 + 1 = 9 of 10 -> 3 units; [1, 1, 1, 1]: 3.6 needs all 4; [10, 0, 0, 0]: 1;
    an all-zero image: 0. Blocks of one row give the same."""
    from core.analysis.influential import units_for_coverage
    features = torch.tensor([[5.0, 3, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [10, 0, 0, 0]])
    assert units_for_coverage(features).tolist() == [3, 0, 4, 1]
    assert units_for_coverage(features, block=1).tolist() == [3, 0, 4, 1]
    assert units_for_coverage(features, fraction=0.5).tolist() == [1, 0, 2, 1]


def test_a_decomposed_head_retrained_keeps_its_subspaces_and_recovers_by_hand():
    """Two units, two classes; unit 0 is class 0's, unit 1 class 1's. The full head reads both units
    for both classes; masked to the subspaces, class 0's own weight is too small and every image is
    called class 1 (accuracy 1/2). Retraining with the mask held recovers all four images, and the
    masked-out weights stay exactly zero."""
    from core.analysis.retrain import class_subspace_mask, retrain_masked_head
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    weight = torch.tensor([[0.1, -2.0], [-2.0, 1.0]])
    bias = torch.tensor([0.0, 0.5])
    mask = class_subspace_mask(torch.tensor([[0], [1]]), 2)
    assert mask.tolist() == [[True, False], [False, True]]
    masked = features @ (weight * mask).T + bias
    assert masked.argmax(1).tolist() == [1, 1, 1, 1]
    w, b = retrain_masked_head(features, labels, weight, bias, mask, epochs=200, lr=0.5, batch_size=4, seed=0)
    assert w[0, 1].item() == 0.0 and w[1, 0].item() == 0.0
    assert (features @ w.T + b).argmax(1).tolist() == [0, 0, 1, 1]
    again = retrain_masked_head(features, labels, weight, bias, mask, epochs=200, lr=0.5, batch_size=4, seed=0)
    assert torch.equal(again[0], w) and torch.equal(again[1], b)  # seeded: the same every time


def test_decomposed_retrain_runs_on_a_trained_model(tiny_checkpoints, tmp_path):
    from core.analysis.engine import Analyzer
    from core.store import Store
    engine = Analyzer.from_path(tiny_checkpoints["ce"], Store(tmp_path / "c.duckdb"), limit=500, train_limit=600,
                                feature_dir=None)
    from core.analysis.retrain import class_subspace_mask, retrain_masked_head
    result = engine.run("decomposed_retrain", epochs=3)
    influential = engine.run("influential")
    assert result["before"] == pytest.approx(influential["A_d_with_bias"])  # the same sets, the bias kept
    assert result["full"] == influential["A_f"]
    # the same retraining by hand, from the influential analysis's own sets
    train, test = engine.features("train", 600), engine.features("test", 500)
    mask = class_subspace_mask(torch.tensor(influential["sets"]), engine.model.num_features)
    w, b = retrain_masked_head(train.features, train.labels, engine.model.fc.weight.detach(),
                               engine.model.fc.bias.detach(), mask, epochs=3, lr=0.01, batch_size=256, seed=0)
    by_hand = int(((test.features @ w.T + b).argmax(1) == test.labels).sum()) / len(test.labels)
    assert result["after"] == by_hand


def test_other_units_are_live_units_outside_each_class_set_drawn_by_seed():
    """Six units, unit 5 dead: class 0 (set 0, 1) may draw from 2, 3, 4; class 1 (set 2, 3) from
    0, 1, 4; one seed, one draw; a class with fewer candidates than k gives every row that many."""
    from core.analysis.influential_maps import other_units
    sets = torch.tensor([[0, 1], [2, 3]])
    alive = torch.tensor([True, True, True, True, True, False])
    drawn = other_units(sets, alive, 2, seed=0)
    assert set(drawn[0].tolist()) <= {2, 3, 4} and set(drawn[1].tolist()) <= {0, 1, 4}
    assert all(len(set(row.tolist())) == 2 for row in drawn)
    assert torch.equal(drawn, other_units(sets, alive, 2, seed=0))
    assert other_units(sets, alive, 5, seed=0).shape == (2, 3)


def test_maps_scaled_together_keep_a_weak_map_weak():
    """Two constant 1 x 1 maps, 1 and 3, upsampled to 2 x 2: one scale puts them at 0 and 1
    (each on its own scale both would be flat)."""
    from core.cam import scaled_together
    out = scaled_together(torch.tensor([[[1.0]], [[3.0]]]), (2, 2))
    assert out.shape == (2, 2, 2) and out[0].tolist() == [[0, 0], [0, 0]] and out[1].tolist() == [[1, 1], [1, 1]]
