"""The gate: constraint, gated path, sparsity, schedule, post-hoc fit."""
import pytest
import torch
import torch.nn.functional as F

from core import lsg
from core.models import create_model


def test_constraint_makes_every_column_max_one_and_entries_in_unit_interval():
    gate = torch.tensor([[0.2, -0.3, 0.0, 2.0],
                         [0.4, 0.6, 0.0, 1.0],
                         [0.1, 1.5, 0.0, -1.0]])
    lsg.constrain_gate_(gate)
    torch.testing.assert_close(gate[:, 0], torch.tensor([0.5, 1.0, 0.25]))
    torch.testing.assert_close(gate[:, 1], torch.tensor([0.0, 0.4, 1.0]))
    torch.testing.assert_close(gate[:, 2], torch.zeros(3))  # zero max: guarded, no NaN
    torch.testing.assert_close(gate[:, 3], torch.tensor([1.0, 0.5, 0.0]))
    assert (gate >= 0).all() and (gate <= 1).all()


def test_gated_logits_equal_hand_computation_in_a_real_model():
    model = create_model("resnet20", num_classes=10, in_channels=1).eval()
    gate = model.add_gate()
    with torch.no_grad():
        gate.uniform_(0, 1)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([3, 0, 9, 3])
    with torch.no_grad():
        a = model.forward_features(x).mean(dim=(2, 3))
        W, b = model.fc.weight, model.fc.bias
        expected = torch.stack([W @ (gate[y[i]] * a[i]) + b for i in range(4)])
        torch.testing.assert_close(model(x, y), expected, rtol=1e-5, atol=1e-5)
        # a gate multiplying the maps before the pool equals G_y * a after it
        maps = model.forward_features(x) * gate[y][:, :, None, None]
        torch.testing.assert_close(model.forward_head(maps), expected, rtol=1e-5, atol=1e-5)


def test_sparsity_term_one_and_two_sided():
    gate = torch.full((2, 3), 0.5)  # ||G||_1 = 3
    assert lsg.sparsity_term(gate, 2.0, one_sided=True).item() == pytest.approx(1.0)
    assert lsg.sparsity_term(gate, 4.0, one_sided=True).item() == pytest.approx(0.0)
    assert lsg.sparsity_term(gate, 4.0, one_sided=False).item() == pytest.approx(1.0)


def test_schedule_by_step_and_by_epoch():
    by_step = [lsg.is_gated_step(1, s, 3, False, 1) for s in range(6)]
    assert by_step == [False, False, True, False, False, True]
    assert not any(lsg.is_gated_step(0, s, 3, False, 1) for s in range(6))  # warm-up
    assert [lsg.is_gated_step(e, 0, 3, True, 0) for e in range(6)] == [False, False, True, False, False, True]


def test_post_hoc_fit_respects_constraint_and_lowers_phi():
    torch.manual_seed(0)
    n, c, k = 400, 4, 8
    labels = torch.arange(n) % c
    features = torch.rand(n, k)
    features[torch.arange(n), labels * 2] += 3.0  # units 2c and 2c+1 carry class c
    weight = 0.1 * torch.randn(c, k)
    weight[torch.arange(c), torch.arange(c) * 2] = 2.0
    start = lsg.phi_objective(features, labels, torch.full((c, k), 0.5), weight, None, 0.2).item()
    result = lsg.fit_gate(features, labels, weight, None, rho=0.2)
    assert result["converged"] and 1 <= result["steps"] < 5000
    gate = result["gate"]
    assert lsg.is_feasible(gate) and torch.equal(lsg.constrain_gate_(gate.clone()), gate)
    assert gate.min() >= 0 and gate.max() <= 1
    torch.testing.assert_close(gate.max(dim=0).values, torch.ones(k))
    assert result["phi"] < start and result["density"] < 0.5
    assert gate[torch.arange(c), torch.arange(c) * 2].tolist() == [1.0] * c  # class units kept open
    assert result["phi"] == pytest.approx(result["gated_ce"] + abs(result["density"] - 0.2), rel=1e-6)
    assert result["density"] == pytest.approx(float(gate.sum() / gate.numel()), rel=1e-6)
    ce = F.cross_entropy(F.linear(features * gate[labels], weight), labels).item()
    assert result["gated_ce"] == pytest.approx(ce, rel=1e-5)


@pytest.mark.parametrize("group_elements", [1, 300, 10**6])
def test_gated_ce_and_its_gradient_equal_autograd_on_unbalanced_classes(group_elements):
    """The batched, zero-padded class blocks (an empty class, classes of different sizes, one
    class per group up to all in a few) give autograd's CE of the gated logits and its gradient."""
    torch.manual_seed(0)
    classes, units, n = 4, 6, 90
    features, weight, bias = torch.randn(n, units).abs(), torch.randn(classes, units), torch.randn(classes)
    labels = torch.randint(0, classes, (n,))
    labels[labels == 2] = 0  # class 2 has no image
    gate = torch.rand(classes, units, dtype=torch.float64, requires_grad=True)
    logits = torch.einsum("nk,nck->nc", features.double(), weight.double()[None] * gate[labels][:, None, :]) + bias.double()
    expected = torch.nn.functional.cross_entropy(logits, labels)
    expected.backward()
    ce = lsg._GatedCE(features, labels, weight, bias, group_elements=group_elements)
    assert sorted(c for g in ce.groups for c in g.classes.tolist()) == list(range(classes))
    if group_elements == 1:
        assert len(ce.groups) == classes
    value, gradient = ce(gate.detach(), grad=True)
    assert value == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(gradient, gate.grad, rtol=1e-10, atol=1e-14)
    assert gradient[2].abs().sum() == 0  # no image of class 2: its gate row has no gradient


def test_gated_ce_groups_classes_of_similar_size_so_padding_stays_small():
    """One class 40 times the others does not pad them all to its size: it gets a group of its own."""
    counts = [5, 6, 200, 5, 7]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    ce = lsg._GatedCE(torch.rand(len(labels), 3), labels, torch.randn(5, 3), None)
    groups = sorted(sorted(g.classes.tolist()) for g in ce.groups)
    assert groups == [[0, 1, 3, 4], [2]]
    assert max(g.blocks.shape[2] for g in ce.groups if 2 not in g.classes.tolist()) == 7


def test_gate_assignment_by_hand():
    """Largest entry, the first of equal ones (as the gate analysis's argmax), the ties named;
    a column the gate leaves at zero belongs to no class."""
    from core.lsg import gate_assignment
    assert gate_assignment([0.2, 1.0, 0.0, 1.0]) == (1, [3])
    assert gate_assignment([0.0, 0.3, 0.7]) == (2, [])
    assert gate_assignment([0.0, 0.0, 0.0]) == (None, [])
    from core.lsg import gate_classes  # every column of a (C, K) gate: units 0..3
    assert gate_classes([[0.2, 0.0, 0.0, 1.0], [1.0, 0.0, 0.3, 1.0], [0.0, 0.0, 0.7, 0.0]]) == [1, None, 2, 0]


def test_a_fit_converged_on_an_unreachable_density_target_says_so():
    """Every column's maximum is 1, so the density is at least 1/C: with 4 classes the target 0.2
    cannot be reached, and the Gates page said 'converged' as for 10 classes."""
    from core.lsg import fit_verdict, least_density
    assert least_density(4) == 0.25
    assert fit_verdict(True, 0.2, 10) == "yes"
    assert fit_verdict(True, 0.2, 4) == "yes, but the density target 0.2 is below the least possible 1/4"
    assert fit_verdict(False, 0.2, 10) == "no: stopped at its step cap (Phi is an upper bound)"
    assert fit_verdict(False, 0.2, 10, "time budget") == "no: stopped at its time budget (Phi is an upper bound)"


def test_a_fixed_hand_set_gate_trains_the_network_through_it_and_stays(tmp_path, data_root):
    """App. C's gate: 7 units over 3 classes go 0,0,1,1,2,2 (two a class, k // 2) and the one left
    is open to all. With fixed_gate the run trains the network on the gated path while the gate
    stays the block gate, bit for bit."""
    from core.checkpoints import load
    from core.lsg import block_gate
    from core.trainer import TrainConfig, train
    assert block_gate(3, 7).tolist() == [[1, 1, 0, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0, 1], [0, 0, 0, 0, 1, 1, 1]]
    out = tmp_path / "fixed.pt"
    train(TrainConfig(method="lsg", options={"warmup_epochs": 0, "fixed_gate": True, "period": 1}, epochs=1,
                      limit=200, batch_size=100, out=str(out), data_root=str(data_root), snapshot_per_class=0))
    loaded = load(out)
    assert torch.equal(loaded.model.gate.detach(), block_gate(10, 64))
    assert loaded.meta["options"]["fixed_gate"] is True


def test_monopolised_units_count_each_class_its_single_class_units():
    """Unit 0 is open to class 0 alone, unit 1 to classes 0 and 1 (nobody's), unit 2 to class 1
    alone, unit 3 to none (0.4 < 0.5): class 0 monopolises one unit, class 1 one, class 2 none."""
    gate = torch.tensor([[1.0, 0.6, 0.2, 0.0], [0.0, 0.7, 0.9, 0.0], [0.0, 0.0, 0.0, 0.4]])
    assert lsg.monopolised_units(gate) == [1, 1, 0]
    assert sum(lsg.monopolised_units(gate)) == lsg.single_class_fraction(gate) * gate.shape[1]
    assert lsg.shared_fraction(gate) == 0.25  # unit 1 alone is open to two classes


def test_a_fixed_gates_units_are_monopolised_or_shared_by_all():
    """The paper's Fig. 9 gate (10 classes, 64 units): 6 units a class, the last 4 open to every class."""
    gate = lsg.block_gate(10, 64)
    assert lsg.monopolised_units(gate) == [6] * 10
    assert lsg.shared_fraction(gate) == 4 / 64
    assert lsg.single_class_fraction(gate) + lsg.shared_fraction(gate) == 1


def test_own_row_logits_by_hand():
    """z_c = W_c (G_c * a) + b_c: a = (1, 2); class 0 reads unit 0 only: 1 * 1 = 1; class 1 reads
    half of unit 0 and all of unit 1: 2 * 0.5 * 1 - 1 * 2 + 1 = 0."""
    from core.lsg import own_row_logits
    a = torch.tensor([[1.0, 2.0]])
    gate = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    weight, bias = torch.tensor([[1.0, 1.0], [2.0, -1.0]]), torch.tensor([0.0, 1.0])
    assert own_row_logits(a, gate, weight, bias).tolist() == [[1.0, 0.0]]
    # an all-ones gate is the plain head
    assert torch.equal(own_row_logits(a, torch.ones(2, 2), weight, bias), a @ weight.T + bias)


def test_tightening_by_hand():
    """h = 0.5: unit 0 has one entry above (class 1): one-hot; unit 1 two (shared): all ones;
    unit 2 none: all ones; unit 3 exactly h for class 2: one-hot."""
    gate = torch.tensor([[0.2, 0.9, 0.1, 0.0], [1.0, 0.6, 0.3, 0.1], [0.0, 0.1, 0.4, 0.5]])
    assert lsg.tighten_gate(gate, 0.5).tolist() == [[0, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 1]]


def test_the_objective_tightens_its_gate_at_its_epoch_and_holds_it():
    """A gate set by hand on a real model: before tighten_epoch the gated step updates it; at the
    epoch's start it becomes tighten_gate of itself, gated steps are then of their own kind (a GPU
    graph of their own) and leave it as it is while the network trains."""
    from core.losses import create_objective
    from core.models import create_model
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_channels=1)
    objective = create_objective("lsg", warmup_epochs=0, period=1, tighten_epoch=1, tighten_threshold=0.9)
    objective.validate_run(2)
    objective.attach(model)
    start = torch.rand(3, 64)
    lsg.constrain_gate_(start)
    objective.gate.data.copy_(start)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])

    def gated_step(epoch):
        kind = objective.step_kind(epoch, 0)
        loss = objective.training_loss(objective.forward(model, x, y, kind), y)
        loss.backward()
        objective.after_step()
        return kind

    objective.start_epoch(0)
    assert gated_step(0) is True and not torch.equal(objective.gate.detach(), start)
    trained = objective.gate.detach().clone()
    objective.start_epoch(1)
    tight = lsg.tighten_gate(trained, 0.9)
    assert torch.equal(objective.gate.detach(), tight)
    assert gated_step(1) == "tightened" and torch.equal(objective.gate.detach(), tight)
    objective.start_epoch(2)  # a resumed run tightens again: a binary gate is its own tightening
    assert torch.equal(objective.gate.detach(), tight)


def test_a_gate_tightened_during_training_is_binary_and_mixed(tmp_path, data_root):
    """tighten_epoch 1 of 2, h = 0.999: the saved gate is binary, some units one class's alone and
    some everyone's. A tighten_epoch with no gated step before it is refused in one line."""
    from core.checkpoints import load
    from core.trainer import TrainConfig, train
    out = tmp_path / "tight.pt"
    options = {"warmup_epochs": 0, "period": 1, "tighten_epoch": 1, "tighten_threshold": 0.999}
    train(TrainConfig(method="lsg", options=options, epochs=2, limit=200, batch_size=100, out=str(out),
                      data_root=str(data_root), snapshot_per_class=0))
    gate = load(out).model.gate.detach()
    assert set(gate.unique().tolist()) <= {0.0, 1.0}
    per_unit = gate.sum(dim=0)
    assert bool(((per_unit == 1) | (per_unit == 10)).all()) and {1.0, 10.0} <= set(per_unit.tolist())
    late = {**options, "warmup_epochs": 1, "by_epoch": True, "period": 3, "tighten_epoch": 2}
    with pytest.raises(Exception, match="tighten_epoch 2 must leave an epoch with gated steps before it"):
        train(TrainConfig(method="lsg", options=late, epochs=4, limit=200, batch_size=100,
                          out=str(tmp_path / "never.pt"), data_root=str(data_root)))
