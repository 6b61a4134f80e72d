"""Objectives against the papers' formulas, computed by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from core.losses import OBJECTIVES, create_objective, minimax_loss, nontarget_entropy


def softmax_list(row):
    exps = [math.exp(v) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def test_registry_has_every_method():
    assert set(OBJECTIVES) == {"ce", "minimax", "maxnte", "label_smoothing", "confidence_penalty", "lsg", "selectivity"}
    with pytest.raises(ValueError, match="unknown method"):
        create_objective("nope")


def test_minimax_value_matches_eq6_by_hand():
    torch.manual_seed(1)
    logits = torch.randn(7, 5)
    targets = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    p_t = 0.8
    expected = 0.0
    for row, t in zip(logits.tolist(), targets.tolist()):
        q = softmax_list(row)
        k = min((i for i in range(5) if i != t), key=lambda i: q[i])
        expected += -p_t * math.log(q[t]) - (1 - p_t) * math.log(q[k])
    assert minimax_loss(logits, targets, p_t).item() == pytest.approx(expected / 7, rel=1e-6)


def test_minimax_gradient_is_eq7():
    torch.manual_seed(2)
    logits = torch.randn(6, 10, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 10, (6,))
    p_t = 0.9
    minimax_loss(logits, targets, p_t).backward()
    q = F.softmax(logits.detach(), 1)
    expected = q.clone()
    for n, t in enumerate(targets.tolist()):
        masked = q[n].clone()
        masked[t] = float("inf")
        k = int(masked.argmin())
        expected[n, t] = q[n, t] - p_t
        expected[n, k] = q[n, k] - (1 - p_t)
    torch.testing.assert_close(logits.grad, expected / 6)


def test_minimax_with_pt_one_is_cross_entropy():
    logits, targets = torch.randn(8, 10), torch.randint(0, 10, (8,))
    torch.testing.assert_close(minimax_loss(logits, targets, 1.0), F.cross_entropy(logits, targets))
    torch.testing.assert_close(create_objective("minimax", p_t=1.0)(logits, targets),
                               create_objective("ce")(logits, targets))


def test_nontarget_entropy_by_hand_and_bound():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    q = softmax_list([1.0, 0.0, -1.0])
    expected = -sum(p * math.log(p) for p in q)
    assert nontarget_entropy(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    uniform = torch.tensor([[5.0, 2.0, 2.0, 2.0]])
    assert nontarget_entropy(uniform, torch.tensor([0])).item() == pytest.approx(math.log(3), rel=1e-6)


def test_maxnte_is_ce_minus_lambda_nontarget_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    targets = torch.tensor([0, 2])
    ce = F.cross_entropy(logits, targets).item()
    h = []
    for row, t in zip(logits.tolist(), targets.tolist()):
        q = softmax_list([v for i, v in enumerate(row) if i != t])
        h.append(-sum(p * math.log(p) for p in q))
    value = create_objective("maxnte", lam=0.5)(logits, targets).item()
    assert value == pytest.approx(ce - 0.5 * sum(h) / 2, rel=1e-6)


def test_label_smoothing_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    eps = 0.3
    q = softmax_list([1.0, 2.0, 3.0])
    target = [(1 - eps) * (i == 1) + eps / 3 for i in range(3)]
    expected = -sum(p * math.log(qi) for p, qi in zip(target, q))
    assert create_objective("label_smoothing", eps=eps)(logits, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)


def test_confidence_penalty_by_hand():
    logits = torch.tensor([[0.5, -0.5, 1.5, 0.0]])
    q = softmax_list(logits[0].tolist())
    h = -sum(p * math.log(p) for p in q)
    expected = -math.log(q[2]) - 0.25 * h
    assert create_objective("confidence_penalty", beta=0.25)(logits, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("method,options", [("minimax", {"p_t": 0.0}), ("minimax", {"p_t": 1.01}),
                                            ("label_smoothing", {"eps": 1.0}), ("maxnte", {"lam": -1}),
                                            ("lsg", {"period": 0}), ("ce", {"p_t": 0.5}),
                                            ("selectivity", {"alpha": 1000.0})])
def test_bad_options_are_refused(method, options):
    with pytest.raises(ValueError):
        create_objective(method, **options)


def test_drop_target_keeps_the_other_columns_in_order():
    from core.losses.base import drop_target
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]])
    kept = drop_target(logits, torch.tensor([0, 2, 3]))
    assert kept.tolist() == [[2.0, 3.0, 4.0], [5.0, 6.0, 8.0], [9.0, 10.0, 11.0]]


def test_portable_state_turns_lr_tensors_into_floats():
    from core.graphed_step import portable_state
    from core.sgd import SGD
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = SGD([weight], lr=torch.tensor(0.25), momentum=0.9)
    weight.grad = torch.ones(2)
    optimizer.step()
    state = portable_state(optimizer.state_dict())
    assert state["param_groups"][0]["lr"] == 0.25 and isinstance(state["param_groups"][0]["lr"], float)
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # the live optimiser is untouched


def test_batch_selectivity_and_its_gradient_by_hand():
    """One unit, classes 0 and 1 present (2 absent): class 0 sees 2 and 4 (mean 3), class 1
    sees 1. SI = (3 - 1) / (3 + 1) = 0.5; dSI/dmu_0 = 2 mu_1 / (mu_0 + mu_1)^2 = 1/8, shared by
    class 0's two images (1/16 each); dSI/dmu_1 = -2 mu_0 / 16 = -3/8."""
    from core.losses.selectivity import batch_selectivity
    features = torch.tensor([[2.0], [4.0], [1.0]], dtype=torch.float64, requires_grad=True)
    si = batch_selectivity(features, torch.tensor([0, 0, 1]), num_classes=3)
    assert si.item() == pytest.approx(0.5, abs=1e-6)
    si.sum().backward()
    assert features.grad[:, 0].tolist() == pytest.approx([1 / 16, 1 / 16, -3 / 8], abs=1e-6)


def test_batch_selectivity_three_classes_two_units():
    """Unit 0: class means 6, 2, 1 -> (6 - 1.5) / (6 + 1.5) = 0.6; unit 1 is equal everywhere -> 0."""
    from core.losses.selectivity import batch_selectivity
    features = torch.tensor([[6.0, 3.0], [2.0, 3.0], [1.0, 3.0]], dtype=torch.float64)
    si = batch_selectivity(features, torch.tensor([0, 1, 2]), num_classes=3)
    assert si.tolist() == pytest.approx([0.6, 0.0], abs=1e-6)


def test_selectivity_objective_is_ce_minus_alpha_selectivity():
    from core.losses.selectivity import batch_selectivity
    from core.models import create_model
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1)
    objective = create_objective("selectivity", alpha=-0.5, every_layer=False)  # the penultimate units alone
    objective.attach(model)
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    logits = objective.forward(model, x, y, objective.step_kind(0, 0))
    features = model.forward_parts(x).features
    expected = F.cross_entropy(logits, y) + 0.5 * batch_selectivity(features, y, 10).mean()
    assert objective.training_loss(logits, y).item() == pytest.approx(expected.item(), abs=1e-5)
    # gradient check of the regulariser in float64
    f = torch.rand(6, 3, dtype=torch.float64, requires_grad=True) + 0.1
    assert torch.autograd.gradcheck(lambda t: batch_selectivity(t, torch.tensor([0, 1, 1, 2, 2, 2]), 4), (f,))


def test_lsg_refuses_a_run_too_short_for_any_gated_step():
    """By step: gated steps begin at epoch warmup_epochs, so epochs must exceed it. By epoch:
    epoch e is gated when e >= warmup_epochs and e % period == period - 1 (epoch 2 for period 3)."""
    by_step = create_objective("lsg", warmup_epochs=1)
    with pytest.raises(ValueError, match="no gated step runs in 1 epoch"):
        by_step.validate_run(1)
    by_step.validate_run(2)
    create_objective("lsg", warmup_epochs=0).validate_run(1)
    by_epoch = create_objective("lsg", warmup_epochs=1, by_epoch=True, period=3)
    with pytest.raises(ValueError, match="by_epoch with period 3"):
        by_epoch.validate_run(2)
    by_epoch.validate_run(3)
    create_objective("ce").validate_run(1)  # nothing to check for the others


def test_minimax_ties_first_or_drawn_at_random():
    """Target 0, the three others tied at 1: the first (class 1) always, or each of 1, 2, 3 about
    a third of the time; an untied minimum is taken either way. The loss value is the same
    whichever tied class is chosen (their q are equal)."""
    from core.losses.minimax import least_likely
    logits = torch.tensor([[0.0, 1, 1, 1]]).repeat(3000, 1)
    targets = torch.zeros(3000, dtype=torch.long)
    assert least_likely(logits, targets).unique().tolist() == [1]
    torch.manual_seed(0)
    drawn = least_likely(logits, targets, random_ties=True)
    counts = torch.bincount(drawn, minlength=4).tolist()
    assert counts[0] == 0 and all(900 < c < 1100 for c in counts[1:]), counts
    untied = torch.tensor([[0.0, 2, 1, 3]])
    assert least_likely(untied, torch.tensor([0]), random_ties=True).tolist() == [2]
    torch.testing.assert_close(minimax_loss(logits[:1], targets[:1], 0.7, random_ties=True),
                               minimax_loss(logits[:1], targets[:1], 0.7))
    assert create_objective("minimax", random_ties="true").random_ties is True


def test_the_selectivity_regulariser_on_every_layer_averages_each_layers_mean_by_hand():
    """A hand-made two-layer net: layer 1 gives channels [x, 0], layer 2 [x, 2x] for a 1 x 1 input
    x. Images 1 (class 0) and 3 (class 1): layer 1's channel 0 has class means 1 and 3, SI
    (3 - 1) / (3 + 1 + eps) = 0.5, its dead channel 0; layer 2's two channels 0.5 each. Every
    layer: mean(0.25, 0.5) = 0.375; the penultimate units alone (layer 2's): 0.5."""
    import torch.nn as nn

    from core.losses import create_objective

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.one, self.two = nn.Identity(), nn.Identity()
            self.fc = nn.Linear(2, 2)
            self.num_classes = 2

        def depth_layers(self):
            return {"one": self.one, "two": self.two}

        def forward(self, x):
            first = self.one(torch.cat([x, torch.zeros_like(x)], dim=1))
            second = self.two(torch.cat([x, 2 * x], dim=1))
            return self.fc(second.mean(dim=(2, 3)) + 0 * first.sum())

    x, y = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1), torch.tensor([0, 1])
    for every, expected in ((True, 0.375), (False, 0.5)):
        net = Two()
        objective = create_objective("selectivity", alpha=1.0, every_layer=every)
        objective.attach(net)
        logits = net(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
        assert (ce - objective.training_loss(logits, y)).item() == pytest.approx(expected, abs=1e-6)
    assert create_objective("selectivity").every_layer is True  # the paper's definition is the default
