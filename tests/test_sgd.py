"""core.sgd: the trainer's own SGD and schedule, against numbers by hand and against torch.optim
(which it replaces only to keep torch._dynamo out of a run's start-up)."""
import subprocess
import sys

import pytest
import torch

from core.sgd import SGD, Schedule, warmup_cosine


def test_nesterov_steps_by_hand():
    """p = 1, gradient 0.5 each step, weight decay 0.1, momentum 0.9, lr 0.1.
    Step 1: d = 0.5 + 0.1 = 0.6; buf = 0.6; look-ahead 0.6 + 0.9 * 0.6 = 1.14; p = 1 - 0.114 = 0.886.
    Step 2: d = 0.5 + 0.0886 = 0.5886; buf = 0.54 + 0.5886 = 1.1286; look-ahead 0.5886 + 1.01574
    = 1.60434; p = 0.886 - 0.160434 = 0.725566."""
    for multi_tensor in (False, True):
        p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        optimizer = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
        seen = []
        for _ in range(2):
            p.grad = torch.tensor([0.5], dtype=torch.float64)
            if multi_tensor:  # the GPU's update, run on CPU tensors
                with torch.no_grad():
                    optimizer._multi_tensor_step(optimizer.param_groups[0], [p])
            else:
                optimizer.step()
            seen.append(p.item())
        assert seen == pytest.approx([0.886, 0.725566], abs=1e-12), multi_tensor
        assert optimizer.state[p]["momentum_buffer"].item() == pytest.approx(1.1286, abs=1e-12)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3))


def tiny_batches(steps=12):
    data = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 6, 6, generator=data), torch.randint(0, 3, (8,), generator=data)) for _ in range(steps)]


def train_steps(model, optimizer, schedule, batches):
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        schedule.step()


OPTIONS = dict(lr=0.2, momentum=0.9, weight_decay=5e-4, nesterov=True)
OURS = (lambda ps: SGD(ps, **OPTIONS), lambda o: Schedule(o, warmup_cosine(12)))
TORCH_OPTIM = (lambda ps: torch.optim.SGD(ps, **OPTIONS),
               lambda o: torch.optim.lr_scheduler.LambdaLR(o, warmup_cosine(12)))


def trained(make_optimizer, make_schedule, batches=None):
    model = tiny_model()
    optimizer = make_optimizer(model.parameters())
    schedule = make_schedule(optimizer)
    train_steps(model, optimizer, schedule, tiny_batches() if batches is None else batches)
    return model, optimizer, schedule


def test_the_cpu_update_and_schedule_are_torch_optims_bit_for_bit():
    ours, theirs = trained(*OURS), trained(*TORCH_OPTIM)
    for (name, a), b in zip(ours[0].state_dict().items(), theirs[0].state_dict().values()):
        assert torch.equal(a, b), name
    assert ours[2].get_last_lr() == theirs[2].get_last_lr()
    assert ours[1].param_groups[0]["lr"] == theirs[1].param_groups[0]["lr"]


class TensorLrSchedule(Schedule):
    """The schedule as a graphed GPU step sees it: the lr kept in one tensor, filled in place
    (as core.graphed_step.StepRunner.sync_lr does)."""

    def step(self):
        super().step()
        group = self.optimizer.param_groups[0]
        if not hasattr(self, "lr"):
            self.lr = torch.tensor(0.0)  # float32, as StepRunner makes it
        self.lr.fill_(group["lr"])
        group["lr"] = self.lr


class MultiTensorSGD(SGD):
    """The GPU's update (multi-tensor kernels), run on CPU tensors."""

    @torch.no_grad()
    def step(self):
        group = self.param_groups[0]
        self._multi_tensor_step(group, [p for p in group["params"] if p.grad is not None])


def test_the_gpus_update_with_a_tensor_lr_matches_torch_optim():
    ours = trained(lambda ps: MultiTensorSGD(ps, **OPTIONS), lambda o: TensorLrSchedule(o, warmup_cosine(12)))
    assert isinstance(ours[1].param_groups[0]["lr"], torch.Tensor)
    theirs = trained(*TORCH_OPTIM)
    for (name, a), b in zip(ours[0].state_dict().items(), theirs[0].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("saved_by, resumed_by", [(TORCH_OPTIM, OURS), (OURS, OURS)],
                         ids=["torch.optim, then ours", "ours, then ours"])
def test_a_saved_state_resumes_to_the_uninterrupted_weights(saved_by, resumed_by):
    """Six steps, save, the last six after loading the state into fresh objects == twelve
    straight (torch.optim wrote the checkpoints of runs before core.sgd; they still resume)."""
    batches = tiny_batches()
    straight = trained(*OURS, batches)[0].state_dict()
    model, optimizer, schedule = trained(*saved_by, batches[:6])

    resumed = tiny_model()
    resumed.load_state_dict(model.state_dict())
    resumed_optimizer = resumed_by[0](resumed.parameters())
    resumed_schedule = resumed_by[1](resumed_optimizer)  # both made fresh, then loaded, in core.trainer.restore's order
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed_schedule.load_state_dict(schedule.state_dict())
    train_steps(resumed, resumed_optimizer, resumed_schedule, batches[6:])
    for (name, a), b in zip(resumed.state_dict().items(), straight.values()):
        assert torch.equal(a, b), name


def test_a_parameter_without_a_gradient_at_first_keeps_the_others_momentum():
    """b gets its first gradient on step 3: its buffer starts then, while a's goes on (torch.optim's
    rule, on both of our paths; the GPU's once restarted every buffer)."""
    def run(make, multi_tensor):
        a, b = torch.nn.Parameter(torch.tensor([1.0])), torch.nn.Parameter(torch.tensor([2.0]))
        optimizer = make([a, b])
        for step in range(4):
            a.grad = torch.tensor([0.5 + step])
            b.grad = torch.tensor([0.25 * step]) if step >= 2 else None
            if multi_tensor:
                MultiTensorSGD.step(optimizer)
            else:
                optimizer.step()
        return a.item(), b.item()
    options = dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    expected = run(lambda ps: torch.optim.SGD(ps, **options), multi_tensor=False)
    assert run(lambda ps: SGD(ps, **options), multi_tensor=False) == expected
    assert run(lambda ps: SGD(ps, **options), multi_tensor=True) == pytest.approx(expected, rel=1e-6)


def test_a_state_for_other_parameters_is_refused():
    optimizer = SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="other parameter groups"):
        optimizer.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]})


def test_training_does_not_import_torch_dynamo(tmp_path, data_root):
    """The point of core.sgd: a whole eager run (LSG: both optimisers, both kinds of step)
    without torch._dynamo, which torch.optim imports on first use (seconds of start-up)."""
    probe = ("import sys; from core.train import main; "
             f"main(['--method', 'lsg', '--epochs', '2', '--limit', '256', '--out', r'{tmp_path / 'lsg.pt'}', "
             f"'--data-root', r'{data_root}']); "
             "print('dynamo imported' if 'torch._dynamo' in sys.modules else 'no dynamo')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "no dynamo"
