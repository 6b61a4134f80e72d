"""The engine on real tiny checkpoints: cache hits, recomputation, the CLIs."""
import json
import re
from pathlib import Path

import pytest
import torch

from core.analysis.engine import REPORT, Analyzer, StepClock
from core.store import Store

from .conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return tmp_path_factory.mktemp("store") / "cache.duckdb"


def analyzer(path, store_path, **kw):
    return Analyzer.from_path(path, Store(store_path), limit=500, train_limit=600, feature_dir=None, **kw)


def test_report_then_cache_hit_without_running_the_model(tiny_checkpoints, store_path):
    first = analyzer(tiny_checkpoints["lsg"], store_path)
    results = first.report(REPORT)
    assert set(first.computed) == set(REPORT)
    assert results["gate"]["source"] == "trained" and len(results["gate"]["gate"]) == 10
    assert len(results["unit_ablation"]["drop"]) == 64 and len(results["unit_ablation"]["drop"][0]) == 10

    second = analyzer(tiny_checkpoints["lsg"], store_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran on a cache hit")
    second.model.forward_features = refuse
    assert second.report(REPORT) == results
    assert second.computed == []
    rows = Store(store_path).query("SELECT count(*), count(selectivity) FROM units WHERE model_hash = ?",
                                   [first.hash])
    assert rows == [(64, 64)]


class CountingStore(Store):
    """A real store that counts the connections it opens."""
    opened = 0

    def _open(self):
        CountingStore.opened += 1
        return super()._open()


def test_cached_lookups_read_the_store_once(tiny_checkpoints, store_path):
    analyzer(tiny_checkpoints["lsg"], store_path).report(REPORT)  # stored (a cache hit after the first test)
    fresh = Analyzer.from_path(tiny_checkpoints["lsg"], CountingStore(store_path), limit=500, train_limit=600, feature_dir=None)
    CountingStore.opened = 0
    hits = [fresh.cached(name) for name in REPORT]
    assert all(hit is not None for hit in hits) and CountingStore.opened == 1
    assert fresh.cached("influential", k1=3, k2=3) is None  # a miss asks the store itself
    assert CountingStore.opened == 2
    assert fresh.report(REPORT)["gate"] == hits[REPORT.index("gate")] and CountingStore.opened == 2


def test_changed_parameter_recomputes(tiny_checkpoints, store_path):
    a = analyzer(tiny_checkpoints["ce"], store_path)
    five = a.run("influential")
    three = a.run("influential", k1=3, k2=3)
    assert a.computed.count("influential") == 2
    assert len(five["sets"][0]) == 5 and len(three["sets"][0]) == 3
    with pytest.raises(ValueError, match="no parameter"):
        a.run("influential", bogus=1)


def test_results_agree_with_features(tiny_checkpoints, store_path):
    a = analyzer(tiny_checkpoints["minimax"], store_path, use_cache=False)
    test = a.features("test", 500)
    acc = a.run("accuracy")
    assert acc["accuracy"] == pytest.approx(float((test.logits.argmax(1) == test.labels).float().mean()))
    assert sum(map(sum, acc["confusion"])) == 500
    with torch.no_grad():  # the cached logits are the head applied to the cached features
        torch.testing.assert_close(a.model.fc(test.features), test.logits, rtol=1e-4, atol=1e-4)
    gate = a.run("gate")
    assert gate["source"] == "post-hoc"
    g = torch.tensor(gate["fitted_gate"])
    assert g.min() >= 0 and g.max() <= 1


def test_gate_assigns_units_by_hand(tiny_checkpoints, store_path):
    """A unit's class is its gate column's largest entry (the first of ties), none for an all-zero
    column (core.lsg.gate_assignment, as the Unit page); the order is by class, strongest first,
    the unassigned last."""
    a = analyzer(tiny_checkpoints["lsg"], store_path, use_cache=False)
    gate = torch.zeros_like(a.model.gate)
    gate[3, 0], gate[3, 1], gate[5, 1], gate[0, 3] = 0.9, 1.0, 1.0, 0.2  # unit 1: a tie of 3 and 5
    with torch.no_grad():
        a.model.gate.copy_(gate)
    result = a.run("gate")
    assert result["assigned_class"][:5] == [3, 3, None, 0, None]
    assert result["assigned_class"][5:] == [None] * (gate.shape[1] - 5)
    assert result["order"] == [3, 1, 0, 2] + list(range(4, gate.shape[1]))


def test_analyze_cli_json_and_errors(tiny_checkpoints, tmp_path):
    cache = tmp_path / "c.duckdb"
    result = run_cli("core.analyze", str(tiny_checkpoints["ce"]), str(tiny_checkpoints["lsg"]), "--limit", "300",
                     "--train-limit", "300", "--json", "--cache", str(cache))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["method"] for r in rows] == ["ce", "lsg"]
    from core.headline import HEADLINE
    assert set(rows[0]["headline"]) == {f.key for f in HEADLINE}
    assert all(rows[0]["headline"][f.key] is not None for f in HEADLINE)
    for key in ("accuracy", "nontarget_entropy", "selectivity", "gate", "influential", "noise_ablation",
                "unit_ablation", "filter_correlation"):
        assert rows[0][key], key
    assert rows[0]["nontarget_entropy"]["bound"] == pytest.approx(2.1972245773)
    assert rows[0]["headline"]["phi"] == rows[0]["gate"]["phi"]
    assert rows[1]["read"] == {"split": "test", "limit": 300, "train_limit": 300}
    table = run_cli("core.analyze", str(tiny_checkpoints["ce"]), "--limit", "300", "--train-limit", "300",
                    "--cache", str(cache))
    assert table.returncode == 0 and "median SI" in table.stdout and "Phi" in table.stdout
    assert table.stderr.splitlines()[-1] == ("note: The analyses read 300 test images and 300 training images only, "
                                             "a seeded class-balanced sample (--limit, --train-limit), so their "
                                             "figures are not the whole splits'.")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    assert "bad.pt" in assert_one_line_error(run_cli("core.analyze", str(bad), "--cache", str(cache)))


def test_analyze_cli_runs_on_request_analyses_with_also(tiny_checkpoints, tmp_path):
    """--also adds on-request analyses: their results under on_request in --json, equal to the
    engine's; their scalars one line each in the table; an unknown name is one line naming them."""
    cache = tmp_path / "c.duckdb"
    args = (str(tiny_checkpoints["ce"]), "--limit", "300", "--train-limit", "300", "--cache", str(cache))
    result = run_cli("core.analyze", *args, "--also", "decomposed_retrain", "--json")
    assert result.returncode == 0, result.stderr
    retrain = json.loads(result.stdout)["on_request"]["decomposed_retrain"]
    engine = Analyzer.from_path(tiny_checkpoints["ce"], Store(cache), limit=300, train_limit=300, feature_dir=None)
    assert retrain == engine.cached("decomposed_retrain")
    assert retrain["full"] == pytest.approx(engine.cached("accuracy")["accuracy"])
    table = run_cli("core.analyze", *args, "--also", "decomposed_retrain")
    assert f"ce: decomposed_retrain: k1=5 k2=5 epochs=1 full={retrain['full']:.4f}" in table.stdout
    error = assert_one_line_error(run_cli("core.analyze", *args, "--also", "decomposed_retrain,nope"))
    assert "no on-request analysis 'nope'" in error and "adversarial_detection" in error
    assert "--iam and --faithfulness" in assert_one_line_error(run_cli("core.analyze", *args, "--also", "iam"))


def test_gated_path_accuracy_reads_each_class_through_its_own_gate_row(tiny_checkpoints, tmp_path):
    """The trained gate of a tiny LSG model: accuracy of a @ (G * W).T + b over the analysed test
    images, counted here by hand; the plain head's is the accuracy analysis's."""
    engine = analyzer(tiny_checkpoints["lsg"], tmp_path / "c.duckdb")
    result = engine.run("gated_path")
    test, model = engine.features("test", engine.limit), engine.model
    logits = test.features @ (model.gate.detach() * model.fc.weight.detach()).T + model.fc.bias.detach()
    assert result["accuracy"] == int((logits.argmax(dim=1) == test.labels).sum()) / len(test.labels)
    assert result["plain_accuracy"] == engine.run("accuracy")["accuracy"]
    assert result["source"] == "trained" and 0 <= result["fitted_accuracy"] <= 1


def test_predict_cli(tiny_checkpoints, tmp_path, data_root):
    from PIL import Image
    Image.new("L", (28, 28), 200).save(tmp_path / "grey.png")
    (tmp_path / "fake.png").write_text("text, not an image")
    # --no-ood: the reference pass over the training split is the browser test's (slow) part
    good = run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(tmp_path / "grey.png"), "--json",
                   "--no-ood")
    assert good.returncode == 0, good.stderr
    top = json.loads(good.stdout)[0]["models"][0]["top"]
    assert len(top) == 5 and sum(t["probability"] for t in top) <= 1.0 + 1e-6
    assert top == sorted(top, key=lambda t: -t["probability"])
    said = run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(tmp_path / "grey.png"), "--no-ood")
    from core.images import FLAT_NOTE  # one colour: said under the prediction, before the steps
    assert said.stdout.splitlines()[1] == f"  note: the picture is {FLAT_NOTE}", said.stdout
    bad = run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(tmp_path / "fake.png"))
    assert "fake.png" in assert_one_line_error(bad)


@pytest.mark.slow
def test_predict_cli_judges_how_unlike_the_training_data_an_image_is(tiny_checkpoints, tmp_path, data_root):
    """The reference is a forward pass over the whole training split (cached afterwards)."""
    from PIL import Image
    Image.new("L", (28, 28), 200).save(tmp_path / "grey.png")
    result = run_cli("core.predict", "--checkpoint", str(tiny_checkpoints["ce"]), str(tmp_path / "grey.png"), "--json",
                     "--cache", str(tmp_path / "c.duckdb"))
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)[0]["models"][0]
    assert {"distance", "threshold", "unlike_training"} <= set(model["ood"])


def test_gate_figures_are_the_shown_gates(tiny_checkpoints, tmp_path):
    """An LSG model's density and single-class units are its trained gate's, counted here by hand;
    the post-hoc fit's own density is kept apart (issue 31: the table said the fit's). Its own store:
    another test here stores a hand-set gate under this model's hash."""
    engine = analyzer(tiny_checkpoints["lsg"], tmp_path / "cache.duckdb", split="test")
    result = engine.run("gate")
    trained = engine.model.gate.detach()
    assert result["source"] == "trained" and result["gate"] == trained.tolist()
    assert result["density"] == pytest.approx(float(trained.abs().sum()) / trained.numel(), abs=1e-6)
    one_class = sum(1 for k in range(trained.shape[1]) if int((trained[:, k] >= 0.5).sum()) == 1)
    assert result["single_class_fraction"] == pytest.approx(one_class / trained.shape[1])
    fitted = torch.tensor(result["fitted_gate"])
    assert result["fitted_density"] == pytest.approx(float(fitted.abs().sum()) / fitted.numel(), abs=1e-6)


def test_trajectory_ends_where_the_final_model_is(tiny_checkpoints, store_path):
    """The last snapshot's figures equal the full analysis of the saved model (same images)."""
    engine = analyzer(tiny_checkpoints["lsg"], store_path, split="test")
    engine.limit = 600  # the run kept snapshots of its 600-image test split
    history = engine.run("trajectory")
    assert history["available"] and [e["epoch"] for e in history["epochs"]] == [1, 2]
    last = history["epochs"][-1]
    assert last["accuracy"] == pytest.approx(engine.run("accuracy")["accuracy"], abs=1e-9)
    assert last["median_selectivity"] == pytest.approx(engine.run("selectivity")["median"], abs=1e-5)
    assert last["dead_units"] == engine.run("selectivity")["dead_count"]
    assert last["gate_density"] == pytest.approx(engine.run("gate")["density"], abs=1e-6)
    assert len(history["unit_selectivity"]) == 2 and len(history["unit_selectivity"][0]) == 64


def test_shipped_results_are_read_without_computing(tiny_checkpoints, store_path, tmp_path, monkeypatch):
    """A checkpoint's results written by make_results are served from the file: a fresh store,
    nothing computed; a result of another version is not used."""
    from core import shipped
    first = analyzer(tiny_checkpoints["ce"], store_path)
    first.report(["selectivity", "accuracy"])
    rows = first.store.rows_for(first.hash)
    monkeypatch.setattr(shipped, "FOLDER", tmp_path / "results")
    shipped.write(first.hash, "ce", rows)
    fresh = analyzer(tiny_checkpoints["ce"], tmp_path / "empty.duckdb")
    assert fresh.run("selectivity") == first.run("selectivity") and fresh.computed == []
    stale = [(a, p, s, v + 100, payload) for a, p, s, v, payload in rows]
    shipped.write(first.hash, "ce", stale)
    again = analyzer(tiny_checkpoints["ce"], tmp_path / "empty2.duckdb")
    again.run("accuracy")
    assert again.computed == ["accuracy"]


def test_make_results_keeps_the_current_shipped_rows_and_replaces_what_it_computed():
    """checkpoints/make_results.py: a shipped row of a stale version is dropped, a current one
    kept, one computed again replaces it (keyed by analysis, parameters and split)."""
    import importlib.util

    from core.analysis.base import ANALYSES
    spec = importlib.util.spec_from_file_location("make_results", Path(__file__).parent.parent / "checkpoints" / "make_results.py")
    make_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_results)
    v = {name: ANALYSES[name].version for name in ("gate", "accuracy", "selectivity")}
    old = [("gate", "{}", "test", v["gate"] - 1, {"old": 1}), ("accuracy", "{}", "test", v["accuracy"], {"kept": 1}),
           ("selectivity", "{}", "test", v["selectivity"], {"old": 2}), ("gone", "{}", "test", 1, {})]
    new = [("gate", "{}", "test", v["gate"], {"new": 1}), ("selectivity", "{}", "test", v["selectivity"], {"new": 2})]
    assert sorted(make_results.merged(old, new)) == sorted([
        ("gate", "{}", "test", v["gate"], {"new": 1}), ("accuracy", "{}", "test", v["accuracy"], {"kept": 1}),
        ("selectivity", "{}", "test", v["selectivity"], {"new": 2})])
    # a fit stopped by its time budget depends on the machine: never shipped
    stopped = [("gate", "{}", "test", v["gate"], {"new": 1, "_transient": True})]
    assert make_results.merged([], stopped) == []


def test_a_fit_stopped_by_its_time_budget_is_stored_marked_and_served_to_the_next_process(
        tiny_checkpoints, tmp_path, monkeypatch):
    """At 1000 classes a CPU stops the Phi fit at its budget every time: stored (marked as depending
    on the machine) it is read back by a fresh analyzer instead of fitted again at each start."""
    monkeypatch.setenv("UNITLENS_PHI_SECONDS", "1e-9")
    first = analyzer(tiny_checkpoints["ce"], tmp_path / "c.duckdb", split="test")
    fit = first.run("gate")
    assert fit["stopped"] == "time budget" and fit["_transient"] is True
    fresh = analyzer(tiny_checkpoints["ce"], tmp_path / "c.duckdb", split="test")
    assert fresh.cached("gate") == fit and not fresh.computed


def test_the_shipped_index_holds_what_the_engine_reads_for_every_bundled_checkpoint(monkeypatch):
    """checkpoints/results/index.json (the Overview drawn while the engine loads) has, for every
    bundled checkpoint, its metadata and the headline figures the engine reads from the shipped
    results; a retrained checkpoint or a new analysis version without make_results fails here."""
    from core import shipped
    from core.catalog import bundle
    from core.checkpoints import load
    from core.headline import ANALYSES_NEEDED, headline
    from core.store import MemoryStore
    monkeypatch.delenv("UNITLENS_CHECKPOINTS", raising=False)  # the repository's own bundle
    index = shipped.index()
    loaded_all = [load(path) for path in bundle()]
    assert loaded_all and set(index) == {loaded.meta["content_hash"] for loaded in loaded_all}
    for loaded in loaded_all:
        path = Path(loaded.meta["path"])
        engine = Analyzer(loaded, MemoryStore(), feature_dir=None)
        results = {name: engine.cached(name) for name in ANALYSES_NEEDED if not engine.skipped_reason(name)}
        assert all(result is not None for result in results.values()), path.name  # all shipped, current version
        unshipped = [name for name in (*REPORT, "faithfulness")  # the pages' too, not only the headline's
                     if not engine.skipped_reason(name) and engine.cached(name) is None]
        assert unshipped == [], path.name
        entry = index[loaded.meta["content_hash"]]
        assert entry["headline"] == headline(results) == engine.headline_figures()[0]
        assert entry["meta"] == {k: v for k, v in loaded.meta.items() if k not in ("path", "content_hash")}
        assert entry["name"] == path.stem


def test_a_damaged_index_is_no_head_start_rather_than_an_error(tmp_path):
    """index.json is only a head start: unreadable, not JSON, or entries of the wrong shape are
    left out (the Overview then waits for the engine), never an exception."""
    from core import shipped
    assert shipped.index(tmp_path) == {}
    (tmp_path / shipped.INDEX).write_text("{not json")
    assert shipped.index(tmp_path) == {}
    good = {"name": "ce", "meta": {"method": "ce"}, "headline": {"accuracy": 0.9}}
    shipped.write_index({"a": good, "b": {"meta": [], "headline": {}}, "c": {"meta": {}, "headline": {}},
                         "d": "text", "e": {"meta": {"method": "ce"}, "headline": None}}, tmp_path)
    assert shipped.index(tmp_path) == {"a": good}
    (tmp_path / shipped.INDEX).write_text("[1, 2]")
    assert shipped.index(tmp_path) == {}


@pytest.mark.parametrize("name", ["ce", "minimax", "lsg"])
def test_the_report_matches_what_core_analyze_prints(name, tmp_path, capsys):
    """REPRODUCTION.md's figures (docs/reproduction/figures.json) are what `core.analyze --json`
    gives for the same bundled checkpoint: a retrained bundle without a new report fails here."""
    from pathlib import Path

    from core.analyze import main
    root = Path(__file__).resolve().parent.parent
    report = next(m for m in json.loads((root / "docs/reproduction/figures.json").read_text())["bundled"]
                  if m["name"] == name)
    assert main([str(root / "checkpoints" / f"{name}.pt"), "--json", "--cache", str(tmp_path / "c.duckdb")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["headline"]["accuracy"] == report["headline"]["accuracy"]
    assert printed["headline"]["phi"] == report["headline"]["phi"]
    assert printed["selectivity"]["median"] == report["selectivity"]["median"]
    # the report's quartiles are the JSON's, one definition (they were statistics.quantiles' once)
    selectivity = printed["selectivity"]
    assert (selectivity["q1"], selectivity["q3"]) == (report["selectivity"]["q1"], report["selectivity"]["q3"])
    quartiles = f"| {name} | {selectivity['q1']:.3f} / {selectivity['median']:.3f} / {selectivity['q3']:.3f} |"
    assert quartiles in (root / "REPRODUCTION.md").read_text()
    assert printed["nontarget_entropy"]["mean"] == report["nontarget_entropy"]["mean"]
    assert printed["noise_ablation"] == report["noise_ablation"]


def test_the_engine_runs_where_it_is_told_and_leaves_the_callers_model_alone(monkeypatch):
    from core.analysis.features import analysis_device, on_device
    from core.models import create_model
    monkeypatch.setenv("UNITLENS_DEVICE", "cpu")
    assert analysis_device() == torch.device("cpu")
    model = create_model("resnet20", 10, 1)
    assert on_device(model, torch.device("cpu")) is model and on_device(model, None) is model
    monkeypatch.setenv("UNITLENS_DEVICE", "auto")
    assert analysis_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    handle = model.fc.register_forward_hook(lambda *args: None)
    copied = on_device(model, "meta")  # a device the model is not on: a copy goes there, the model stays
    assert next(copied.parameters()).device.type == "meta" and next(model.parameters()).device.type == "cpu"
    assert not copied.fc._forward_hooks and model.fc._forward_hooks  # the copy takes no hook along
    handle.remove()
    from core.analysis.features import describe_analysis_device
    from core.errors import UserError
    cases = [("gpu", "auto, cpu or cuda")] + ([] if torch.cuda.is_available() else [("cuda", "no CUDA GPU")])
    for bad, words in cases:
        monkeypatch.setenv("UNITLENS_DEVICE", bad)
        with pytest.raises(UserError, match=words):
            analysis_device()
        assert describe_analysis_device().startswith("nowhere")


def test_every_headline_figure_is_in_exactly_one_overview_tab():
    """A new figure whose analysis no tab lists would silently vanish from the Overview."""
    from core.headline import GROUPS, HEADLINE, grouped
    tabs = grouped()
    assert list(tabs) == list(GROUPS) and all(tabs.values())
    shown = [f.key for figures in tabs.values() for f in figures]
    assert sorted(shown) == sorted(f.key for f in HEADLINE)


def test_time_left_in_a_step_comes_from_that_step_s_own_pace():
    """By hand: 20 of 100 done 3 s into a step leaves 80 at 0.15 s each, 12 s; a new step, or the
    same one started again, knows nothing yet; nor does a step in its first 2 s. The faithfulness
    maps, one method after another under one name before the colon, count on as one step."""
    times = iter([0.0, 1.0, 3.0, 4.0, 7.0, 8.0, 9.0, 12.0, 20.0, 50.0, 80.0])
    clock = StepClock(clock=lambda: next(times))
    assert clock.left("forward pass (test)", 0, 100) is None     # t=0: the step starts
    assert clock.left("forward pass (test)", 10, 100) is None    # t=1: too early to say
    assert clock.left("forward pass (test)", 20, 100) == pytest.approx(12.0)  # t=3
    assert clock.left("IAM", 5, 50) is None                       # t=4: another step, from 5 done
    assert clock.left("IAM", 35, 50) == pytest.approx(1.5)        # t=7: 30 in 3 s, 15 left
    assert clock.left("IAM", 0, 50) is None                       # t=8: the same step again
    assert clock.left("IAM", 0, 50) is None                       # t=9: nothing done yet
    assert clock.left("IAM", 10, 50) == pytest.approx(16.0)       # t=12: 10 in 4 s since t=8, 40 left
    assert clock.left("faithfulness: CAM maps", 0, 14) is None    # t=20
    assert clock.left("faithfulness: Grad-CAM maps", 1, 14) == pytest.approx(390.0)   # t=50: 30 s a method
    assert clock.left("faithfulness: deleting and imputing pixels (cam)", 2, 14) == pytest.approx(360.0)  # t=80


def test_the_overview_names_what_each_model_still_misses():
    """By hand: one analysis behind C_IC is named; the gate's two figures are named; all of them is the name alone."""
    from core.headline import ANALYSES_NEEDED, describe_missing
    assert describe_missing({"ce": ["filter_correlation"]}) == "ce (C_IC)"
    assert describe_missing({"ce": ["filter_correlation"], "lsg": ["gate"]}) == "ce (C_IC), lsg (Phi, gate density)"
    assert describe_missing({"run-3": list(ANALYSES_NEEDED)}) == "run-3"


def test_time_left_reads_as_a_progress_line_s_ending():
    times = iter([0.0, 3.0, 3.5])
    clock = StepClock(clock=lambda: next(times))
    assert clock.text("IAM", 0, 100) == ""                        # no guess yet: nothing said
    assert clock.text("IAM", 20, 100) == " · about 0m12s left"    # 20 in 3 s, 80 left
    assert clock.text("forward pass (test)", 0, 10) == ""


def test_faithfulness_from_the_command_line_says_its_cost_first_and_prints_its_table(tiny_checkpoints, tmp_path):
    """`--faithfulness` printed nothing without --json, after a wait it had not announced."""
    result = run_cli("core.analyze", str(tiny_checkpoints["ce"]), "--faithfulness", "--limit", "100",
                     "--train-limit", "100", "--cache", str(tmp_path / "c.duckdb"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"the faithfulness of the maps takes about \d+m\d\ds here \(\d+ images; measured on one now\)",
                     result.stderr), result.stderr
    assert "faithfulness: deletion (lower better)" in result.stdout and "random map (baseline)" in result.stdout


def test_selectivity_by_layer_ends_at_the_penultimate_units(tiny_checkpoints, tmp_path):
    """ResNet-20's nine blocks, shallowest first; the last block's pooled channels are the
    penultimate units, so its SI is the selectivity analysis's, unit for unit."""
    engine = analyzer(tiny_checkpoints["ce"], tmp_path / "c.duckdb", split="test")
    layers = engine.run("layer_selectivity")["layers"]
    assert [row["layer"] for row in layers] == [f"stage {s} block {b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    assert [row["units"] for row in layers] == [16] * 3 + [32] * 3 + [64] * 3
    penultimate = engine.run("selectivity")
    assert layers[-1]["per_unit"] == pytest.approx(penultimate["per_unit"], abs=1e-5)
    assert layers[-1]["median"] == pytest.approx(penultimate["median"], abs=1e-5)
    assert layers[-1]["dead"] == penultimate["dead_count"]


def test_ablating_the_last_blocks_channels_is_the_exact_unit_ablation(tiny_checkpoints, tmp_path):
    """Zeroing channel k of ResNet-20's last block re-runs the head on a_k = 0: the exact ablation
    (logits - a_k W[:, k]) of `unit_ablation`, unit for unit, on the same images (all 500); a
    shallower layer has its own channels and the same image count."""
    engine = analyzer(tiny_checkpoints["ce"], tmp_path / "c.duckdb", split="test")
    last = engine.run("layer_ablation", layer="stage 3 block 3", per_class=500)
    exact = engine.run("unit_ablation")
    assert last["images"] == 500 and last["channels"] == 64
    assert torch.allclose(torch.tensor(last["drop"]), torch.tensor(exact["drop"]), atol=1e-9)
    assert last["overall_drop"] == pytest.approx(exact["overall_drop"], abs=1e-12)
    first = engine.run("layer_ablation", per_class=10)
    assert first["layer"] == "stage 1 block 1" and first["channels"] == 16 and first["images"] == 100
    assert first["spearman_selectivity"] is not None
    with pytest.raises(Exception, match="no layer 'nowhere'"):
        engine.run("layer_ablation", layer="nowhere")


def test_iam_and_rs_in_a_shallower_layer(tiny_checkpoints, tmp_path):
    """IAM of stage 1's first block: its 16 channels are the units (16 images, a 16 x 16 RS), RS
    against that layer's selectivity; the penultimate IAM is unchanged (64 units)."""
    from core.analysis.iam import unit_activations
    engine = analyzer(tiny_checkpoints["ce"], tmp_path / "c.duckdb", split="test")
    shallow = engine.run("iam", steps=3, layer="stage 1 block 1")
    assert shallow["layer"] == "stage 1 block 1" and len(shallow["rs"]) == 16 and len(shallow["images"]) == 16
    assert all(0 <= rs <= 15 / 16 for rs in shallow["rs"]) and shallow["spearman_rs_selectivity"] is not None
    assert shallow["spearman_rs_drop"] is None
    assert len(engine.run("iam", steps=3)["rs"]) == 64
    # a layer's units are its output averaged over space, read by a hook
    model, x = engine.model.eval(), torch.rand(2, 1, 28, 28)
    block = model.depth_layers()["stage 1 block 1"]
    expected = block(model.stem(x)).mean(dim=(2, 3))
    with torch.no_grad():
        assert torch.allclose(unit_activations(model, block)(x), expected, atol=1e-6)


def test_maps_of_influential_units_are_class_means_of_their_maps(tiny_checkpoints, tmp_path):
    """Recomputed here from the model's own maps: for class 3, the mean over its analysed test
    images of the mean map of all units, of its influential units and of the others drawn;
    the example is the class's first analysed image, as an index into the whole split."""
    from core.analysis.influential import index_frequencies, sets_from_frequencies
    from core.analysis.influential_maps import other_units
    engine = analyzer(tiny_checkpoints["lsg"], tmp_path / "c.duckdb")
    result = engine.run("influential_maps", k1=3, k2=4)
    train = engine.features("train", engine.train_limit)
    counts = index_frequencies(train.features, train.labels, 10, 3)
    assert result["influential"] == sets_from_frequencies(counts, 4).tolist()
    alive = train.features.max(dim=0).values > 0
    assert result["non_influential"] == other_units(sets_from_frequencies(counts, 4), alive, 4, seed=0).tolist()
    dataset = engine.dataset("test").subset(engine.limit)
    rows = torch.nonzero(dataset.labels == 3).flatten()
    with torch.no_grad():
        maps = engine.model.eval().forward_features(dataset.images[rows]).double()
    expected = torch.stack([maps.mean(dim=1), maps[:, result["influential"][3]].mean(dim=1),
                            maps[:, result["non_influential"][3]].mean(dim=1)], dim=1).mean(dim=0)
    assert torch.allclose(torch.tensor(result["maps"][3], dtype=torch.float64), expected, atol=1e-5)
    assert result["images"][3] == len(rows)
    from core.data import balanced_sample
    whole = engine.dataset("test")
    assert result["example"][3] == int(balanced_sample(whole.labels, engine.limit)[rows[0]])
    assert int(whole.labels[result["example"][3]]) == 3


def test_every_analysis_says_its_cost_and_memory():
    """Issue 29: at K = 2048, C = 1000, N = 50,000 a reader must know what each analysis costs
    before running it; every registered analysis says so in its docstring."""
    import inspect
    from core.analysis import ANALYSES
    def says(doc: str) -> bool:
        return bool(re.search(r"\bcost\b|\bO\(", doc, re.I) and re.search(r"\bmemory\b", doc, re.I))
    assert [name for name, analysis in ANALYSES.items() if not says(inspect.getdoc(analysis.compute) or "")] == []


def test_the_analyses_that_read_the_training_split_say_so():
    """Issue 29: a figure fed by the training split states how many training images it read; the
    flag behind that note is held to the code: an analysis reads `ctx.train` (or training images)
    exactly when it is flagged, and one built on such an analysis is fed by it too."""
    import inspect
    from core.analysis import ANALYSES
    from core.analysis.base import fed_by_training
    for name, analysis in ANALYSES.items():
        reads = re.search(r"ctx\.train\b|ctx\.training_images", inspect.getsource(analysis.compute)) is not None
        assert analysis.reads_training == reads, name
    assert fed_by_training("class_masking") and fed_by_training("influential")
    assert not fed_by_training("selectivity") and not fed_by_training("unit_ablation")
