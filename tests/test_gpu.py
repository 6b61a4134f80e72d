"""On a CUDA GPU only (skipped elsewhere; run by bench/gpu_session.sh on a lent machine):
the CUDA-graph training step computes what the eager step computes."""
import pytest
import torch

from core.checkpoints import load
from core.progress import read_events
from core.trainer import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("method", ["ce", "minimax", "lsg", "maxnte"])
def test_graphed_training_gives_the_eager_weights(method, tmp_path, data_root):
    """Two epochs of 20 steps (LSG: standard steps, then gated ones from epoch 2), once eager
    and once replayed from graphs, with deterministic cuDNN: the same weights."""
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    weights, used_graphs, reported = {}, {}, {}
    for graphs in (False, True):
        out = tmp_path / f"{method}-{graphs}.pt"
        train(TrainConfig(method=method, epochs=2, limit=5120, device="cuda", cuda_graphs=graphs, out=str(out)))
        weights[graphs] = load(out).model.state_dict()
        events = read_events(out.with_suffix(".progress.jsonl"))
        used_graphs[graphs] = next(e["cuda_graphs"] for e in events if e.get("phase") == "training")
        reported[graphs] = [(e["train_loss"], e["train_accuracy"]) for e in events if e["event"] == "epoch"]
    assert used_graphs == {False: False, True: True}
    # the epoch's loss and accuracy are summed inside the graph: the same figures as eager
    assert reported[True] == pytest.approx(reported[False], rel=1e-5)
    for name, eager in weights[False].items():
        if eager.is_floating_point():
            assert torch.allclose(weights[True][name], eager, rtol=1e-4, atol=1e-5), name


def test_the_analysis_engine_on_the_gpu_gives_the_cpu_figures():
    """The forward pass and IAM on the GPU (float32, TF32 off) against the CPU: same features to
    float tolerance, the same headline figures; the app's own model stays on the CPU."""
    from core.analysis.engine import Analyzer
    from core.store import MemoryStore  # the GPU image has no DuckDB
    engines = {device: Analyzer.from_path("checkpoints/ce.pt", MemoryStore(), device=device, limit=2000,
                                          train_limit=2000, use_cache=False) for device in ("cpu", "cuda")}
    cpu, gpu = (engines[d].features("test", 2000) for d in ("cpu", "cuda"))
    torch.testing.assert_close(gpu.features, cpu.features, rtol=1e-4, atol=1e-4)
    assert torch.equal(gpu.labels, cpu.labels) and gpu.features.device.type == "cpu"
    assert next(engines["cuda"].model.parameters()).device.type == "cpu"
    for name, key in (("accuracy", "accuracy"), ("selectivity", "median"), ("nontarget_entropy", "mean"),
                      ("gate", "phi"), ("filter_correlation", "c_ic")):  # the gate's CE on the GPU
        assert engines["cuda"].run(name)[key] == pytest.approx(engines["cpu"].run(name)[key], abs=1e-3), name
    # IAM is ten steps of gradient ascent on the input: the devices' float32 convolutions differ
    # in the last bits, and the ascent carries that along (on an H100, 2 of 64 units differed by
    # 1.1%, the rest under 1%)
    iam = {d: engines[d].run("iam", steps=10)["own_activation"] for d in ("cpu", "cuda")}
    assert iam["cuda"] == pytest.approx(iam["cpu"], rel=3e-2, abs=1e-3)
    assert sum(iam["cuda"]) == pytest.approx(sum(iam["cpu"]), rel=5e-3)
