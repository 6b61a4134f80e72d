"""Every page through Streamlit's AppTest, on tiny real checkpoints."""
import io
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
import json

import pytest
from PIL import Image

from . import ui_env
from .conftest import ROOT

PAGES = ["pages/compare.py", "pages/tradeoffs.py", "pages/selectivity.py", "pages/gates.py", "pages/ablations.py",
         "pages/unit.py"]


@pytest.fixture(scope="module")
def app_env(tiny_checkpoints, tmp_path_factory):
    models = tmp_path_factory.mktemp("app_models")
    for path in tiny_checkpoints.values():
        shutil.copy(path, models / path.name)
    (models / "broken.pt").write_bytes(b"PK\x03\x04 truncated")
    marker = models.parent / "pwned"
    (models / "evil.pt").write_bytes(b"\x80\x04cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    (models / "notes.pt").write_text("root:x:0:0 random notes")
    previous = ui_env.apply(ui_env.app_environment(models, tmp_path_factory.mktemp("app_work")))
    sys.path.insert(0, str(ROOT))
    yield models
    ui_env.restore(previous)


def shown(markdown: str) -> str:
    """What a reader sees of a markdown source we escaped (core text is escaped, never rendered)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def markdown_sources(at) -> list[str]:
    return [e.value for kind in ("markdown", "caption", "title", "subheader", "header", "error", "warning", "info",
                                 "success", "toast") for e in getattr(at, kind)] + [e.value for e in at.sidebar.caption] + [
        str(m.value) for m in at.metric]


def new_app():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    return at


def draw_every_page(chosen: list[str]):
    """A new session comparing `chosen`, every page drawn without an error; the AppTest after."""
    at = new_app()
    at.sidebar.multiselect[0].set_value(chosen).run()
    no_errors(at)
    for page in PAGES:
        at.switch_page(page).run()
        no_errors(at)
    return at


def elements(node):
    """Every element drawn under `node` (an AppTest's `_tree`), depth first."""
    for child in getattr(node, "children", {}).values():
        yield child
        yield from elements(child)


def kinds(at) -> Counter:
    return Counter(getattr(child, "type", type(child).__name__) for child in elements(at._tree))


def no_errors(at):
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == []


def overview_table(at):
    """The Overview's tabs (its first dataframes) joined back into one frame, every headline figure once."""
    from core.headline import GROUPS, HEADLINE
    frames = [element.value for element in at.dataframe[:len(GROUPS)]]
    joined = frames[0]
    for frame in frames[1:]:
        joined = joined.merge(frame, on=["model", "method"], validate="one_to_one")
    assert sorted(joined.columns) == sorted(["model", "method", "arch", "dataset", "epochs", *(f.label for f in HEADLINE)])
    return joined


def test_overview_lists_models_and_skips_the_broken_file(app_env):
    at = new_app()
    no_errors(at)
    assert at.sidebar.multiselect[0].value == ["ce", "minimax", "lsg"]
    frame = overview_table(at)
    assert sorted(frame["method"]) == ["ce", "lsg", "minimax"]
    assert any("broken.pt" in shown(c.value) for c in at.sidebar.caption)
    assert any("evil.pt" in shown(c.value) for c in at.sidebar.caption)
    assert any("notes.pt" in shown(c.value) for c in at.sidebar.caption)
    assert any("read 600 test images and 600 training images only, a seeded class-balanced sample" in c.value
               for c in at.sidebar.caption)  # the environment's limits, said
    assert not (app_env.parent / "pwned").exists()
    at.button(key="overview_compute").click().run()
    no_errors(at)
    frame = overview_table(at)
    assert frame["median SI"].notna().all() and frame["Phi"].notna().all()
    assert not any("stopped" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "overview_compute"]  # every model computed: no button
    at.session_state["overview_computing"] = True  # as a run the Stop button ended leaves it
    at.run()
    assert any("was stopped before it finished" in c.value for c in at.caption)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(app_env, page):
    at = new_app()
    at.switch_page(page).run()
    no_errors(at)
    found = kinds(at)
    if page != "pages/compare.py":
        assert found["vega_lite_chart"] >= (1 if page == "pages/tradeoffs.py" else 2), found
    else:
        assert found["image"] >= 3 * 5, found  # per model: input, maps, CAM, LayerCAM, gate row
        aucs = [d.value for d in at.dataframe if list(d.value.columns) == ["map", "deletion", "insertion"]]
        assert len(aucs) == 3 and all(a["map"].tolist() == ["CAM", "LayerCAM"] for a in aucs)  # filled in last
        assert all(a[["deletion", "insertion"]].stack().between(0, 1).all() for a in aucs)
        assert not [c for c in at.caption if "computing…" in c.value]


def test_compare_upload_and_bad_upload(app_env):
    at = new_app()
    at.switch_page("pages/compare.py").run()
    at.radio(key="compare_source").set_value("Upload").run()
    buffer = io.BytesIO()
    Image.new("RGBA", (90, 60), (200, 100, 50, 128)).save(buffer, "PNG")
    at.file_uploader(key="compare_upload").set_value(("shirt.png", buffer.getvalue(), "image/png")).run()
    no_errors(at)
    assert kinds(at)["image"] >= 15
    assert not [w for w in at.warning if "pixels" in w.value]  # 90x60 for 28x28 models: no warning
    assert [w for w in at.warning if "one flat colour" in w.value]  # one colour: predictions mean nothing
    tiny = io.BytesIO()
    Image.new("L", (1, 1), 255).save(tiny, "PNG")
    at.file_uploader(key="compare_upload").set_value(("dot.png", tiny.getvalue(), "image/png")).run()
    no_errors(at)
    assert [w.value for w in at.warning if "only 1x1 pixels" in w.value]  # said before any prediction
    at.file_uploader(key="compare_upload").set_value(("fake.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and "not an image" in at.error[0].value and "\n" not in at.error[0].value
    from ui.basics import plain
    assert at.error[0].value.startswith(plain("fake.png: "))  # names the file


def test_unit_page_follows_the_url(app_env):
    at = new_app()
    at.switch_page("pages/unit.py")
    at.query_params["model"] = "minimax"
    at.query_params["unit"] = "7"
    at.run()
    no_errors(at)
    assert at.selectbox(key="unit_model").value == "minimax"
    assert at.number_input(key="unit_index").value == 7
    assert len(at.metric) == 4
    at.number_input(key="unit_index").set_value(20).run()
    at.button_group(key="unit_view").set_value("One class across the compared models").run()
    at.button_group(key="unit_view").set_value("One unit").run()  # back: the model and unit as left
    assert (at.selectbox(key="unit_model").value, at.number_input(key="unit_index").value) == ("minimax", 20)
    assert (at.query_params["model"], at.query_params["unit"]) == ("minimax", "20")


def test_unit_page_lines_up_one_class_across_the_compared_models(app_env):
    from core.analysis.selectivity import unit_for_class
    from ui import common
    at = new_app()
    at.switch_page("pages/unit.py").run()
    at.button_group(key="unit_view").set_value("One class across the compared models").run()
    at.selectbox(key="unit_class").set_value("Sneaker").run()
    no_errors(at)
    expected = []
    for label in ("ce", "minimax", "lsg"):  # the page's models, in the sidebar's order
        selectivity = common.record(at.session_state["app_found"][label]["path"]).analyzer.cached("selectivity")
        expected.append(f"unit {unit_for_class(selectivity, 7)[0]}")
    assert [m.label for m in at.metric] == expected
    assert [s.value for s in at.subheader] == ["ce", "minimax", "lsg"]
    assert kinds(at)["image"] >= 3 and "unit" not in at.query_params
    assert at.query_params["class"] == "Sneaker"  # the view can be shared by its URL
    views = at.button_group(key="unit_view").options
    at.button_group(key="unit_view").set_value(views[0]).run()  # to one unit and back: the class is kept
    at.button_group(key="unit_view").set_value("One class across the compared models").run()
    assert at.selectbox(key="unit_class").value == "Sneaker"


@pytest.mark.parametrize("asked, shown, warned", [("Bag", "Bag", False), ("Nothing", "T-shirt/top", True)])
def test_a_link_opens_one_class_across_the_models(app_env, asked, shown, warned):
    at = new_app()
    at.query_params["class"] = asked
    at.switch_page("pages/unit.py").run()
    no_errors(at)
    assert at.button_group(key="unit_view").value == "One class across the compared models"
    assert at.selectbox(key="unit_class").value == shown
    assert bool([w for w in at.warning if "Nothing" in w.value]) == warned


def test_a_click_on_a_unit_is_read_from_streamlits_chart_event():
    """The Ablations charts open the unit page from this: Streamlit's own deserialiser builds the event."""
    from streamlit.elements.vega_charts import VegaLiteStateSerde

    from ui.common import picked_unit
    serde = VegaLiteStateSerde(selection_parameters=["unit_pick"])
    assert picked_unit(serde.deserialize(None)) is None
    assert picked_unit(None) is None
    assert picked_unit(serde.deserialize('{"selection": {"unit_pick": []}}')) is None
    clicked = serde.deserialize('{"selection": {"unit_pick": [{"unit": 7, "class": "Bag"}]}}')
    assert picked_unit(clicked) == 7


def test_text_from_a_checkpoint_is_shown_as_text(app_env, tmp_path):
    """Class names, method and file name carrying markdown: shown as typed, never a link or image."""
    import torch

    from core.checkpoints import FORMAT
    payload = torch.load(app_env / "ce.pt", weights_only=True)
    meta = json.loads(payload["meta_json"])
    meta["class_names"] = ["![t](http://127.0.0.1:8799/track.png)", "[link](http://127.0.0.1:8799/x)",
                           ":red[red]", *meta["class_names"][3:]]
    meta["method"] = "**bold** [m](http://127.0.0.1:8799/m)"
    payload["meta_json"] = json.dumps(meta)
    assert payload["format"] == FORMAT
    hostile = app_env / "[x](http:⁄⁄127.0.0.1:8799).pt"
    torch.save(payload, hostile)
    try:
        at = new_app()
        at.sidebar.multiselect[0].set_value([hostile.stem, "ce"]).run()
        no_errors(at)
        at.switch_page("pages/compare.py").run()
        no_errors(at)
        sources = markdown_sources(at)
        assert any("**bold** [m](http://127.0.0.1:8799/m)" in shown(v) for v in sources)      # the method
        assert any("[x](http:⁄⁄127.0.0.1:8799)" == shown(v) for v in sources)                # the file name
        at.selectbox(key="compare_class").set_value(meta["class_names"][0]).run()
        no_errors(at)
        sources = markdown_sources(at)
        assert any("![t](http://127.0.0.1:8799/track.png)" in shown(v) for v in sources)    # a class name
        for source in sources:  # every link or image syntax is escaped
            assert not re.search(r"(?<!\\)\]\(", source), source
            assert not re.search(r"(?<!\\):red\[", source), source
        at.switch_page("pages/unit.py").run()
        for unit in range(64):  # until a unit's metrics name a hostile class (the first of 64 that does)
            at.number_input(key="unit_index").set_value(unit).run()
            no_errors(at)
            values = [str(m.value) for m in at.metric]
            if any(shown(v) in meta["class_names"][:3] for v in values):
                break
        assert any(shown(v) in meta["class_names"][:3] for v in values), values
        for value in values:
            assert not re.search(r"(?<!\\)\]\(", value) and not re.search(r"(?<!\\):red\[", value), value
    finally:
        hostile.unlink()


@pytest.mark.parametrize("model, unit, expected", [("nope", "3", "model “nope”"), ("ce", "999", "unit 999"),
                                                   ("ce", "abc", "unit “abc”"), ("ce", "²", "unit “²”")])
def test_a_bad_deep_link_says_what_was_asked_and_what_is_shown(app_env, model, unit, expected):
    at = new_app()
    at.switch_page("pages/unit.py")
    at.query_params["model"] = model
    at.query_params["unit"] = unit
    at.run()
    no_errors(at)
    warnings = [shown(w.value) for w in at.warning]
    assert len(warnings) == 1 and expected in warnings[0] and "showing" in warnings[0], warnings


def test_parse_unit():
    from ui.common import parse_unit
    assert parse_unit("7", 64) == (7, None)
    assert parse_unit(" 0 ", 64) == (0, None)
    assert parse_unit("0063", 64) == (63, None)
    for bad in ("64", "-1", "abc", "²", "1e3", "", "000100"):
        unit, problem = parse_unit(bad, 64)
        assert unit is None and problem
    unit, problem = parse_unit("1" * 5000, 64)  # int() refuses over 4300 digits (ValueError): an internal error
    assert unit is None and problem == f"unit {'1' * 20}…, but this model has units 0 to 63"
    assert parse_unit("x" * 300, 64)[1] == f"unit “{'x' * 20}…”, which is not a unit number"


def test_the_first_overview_is_drawn_from_the_shipped_index_without_the_engine(monkeypatch, tmp_path):
    """While a fresh server still imports PyTorch, the Overview shows every bundled checkpoint's
    figures from checkpoints/results/index.json (the run is stopped where it would wait for the
    engine), with the default trio compared first and the sidebar saying what is loading."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    from core import shipped
    from core.catalog import ROOT_CHECKPOINTS, bundle, file_hash
    from core.headline import HEADLINE
    from ui import warm
    for key, value in ui_env.app_environment(ROOT_CHECKPOINTS, tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(warm, "loading", lambda: True)
    monkeypatch.setattr(warm, "wait", lambda tick: (tick(), st.stop()))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    no_errors(at)
    assert any("Loading PyTorch" in c.value for c in at.sidebar.caption) and not at.sidebar.multiselect
    frame = overview_table(at)
    index = shipped.index()
    paths = {p.stem: p for p in bundle()}  # a study's models, once trained here, have no shipped figures
    names = [model.removesuffix(" ✓") for model in frame["model"]]
    assert names[:3] == ["ce", "minimax", "lsg"] and sorted(names) == sorted(paths)
    assert [model.endswith(" ✓") for model in frame["model"]] == [True] * 3 + [False] * (len(paths) - 3)
    for name, row in zip(names, frame.to_dict("records")):
        figures = index[file_hash(paths[name])]["headline"]
        for figure in HEADLINE:
            expected = figures[figure.key]  # None (a figure that does not apply, e.g. a ViT's C_IC): an empty cell
            assert row[figure.label] == pytest.approx(float("nan") if expected is None else expected, nan_ok=True), \
                (name, figure.key)
    assert [s.value for s in at.subheader] == ["Compared models"]


def test_the_server_imports_app_and_the_first_overview_without_torch():
    """What `streamlit run app.py` imports before the engine is there (app.py as the server's
    module, and what the first Overview uses) needs no PyTorch, pandas aside."""
    import subprocess
    code = ("import sys; sys.path.insert(0, '.'); import app; "
            "assert isinstance(app.app, __import__('streamlit').App); "
            "bad = [m for m in ('torch', 'torchvision', 'duckdb') if m in sys.modules]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.slow
def test_the_rs_papers_networks_on_every_page(tiny_checkpoints, tmp_path_factory, data_root):
    """A shallow CNN and an MLP our trainer made, beside a CNN: every page draws all three; on
    Compare the MLP says it has no class activation map, the others show theirs."""
    from core.trainer import TrainConfig, train
    models = tmp_path_factory.mktemp("rs_models")
    shutil.copy(tiny_checkpoints["ce"], models / "cnn.pt")
    for arch in ("shallow_cnn", "mlp"):
        train(TrainConfig(method="lsg", arch=arch, options={"warmup_epochs": 0}, epochs=1, limit=200, lr=0.02,
                          batch_size=100, out=str(models / f"{arch}.pt"), data_root=str(data_root)))
    previous = ui_env.apply(ui_env.app_environment(models, tmp_path_factory.mktemp("rs_work")))
    try:
        at = draw_every_page(["cnn", "shallow_cnn", "mlp"])
        at.switch_page("pages/compare.py").run()
        no_errors(at)
        captions = [shown(c.value) for c in at.caption]
        assert "mlp has no spatial layer, so no class activation map explains it" in captions
        assert sum(c.startswith("CAM: ") for c in
                   (shown(i.caption) for e in elements(at._tree) if getattr(e, "type", "") == "image"
                    for i in e.proto.imgs)) == 2
    finally:
        ui_env.restore(previous)


def test_a_sweep_starts_from_the_sidebar_and_its_models_form_one_sweep(app_env):
    """minimax's p_t over two values, one seed, from the sidebar: one run each with that value and
    the seed, queued on the CPU; once trained, the two checkpoints form one sweep of p_t (the
    Specificity and cost page's chart); a value that is no number is one warning, nothing started."""
    import time
    from pathlib import Path
    from core import runs
    from core.checkpoints import load
    from core.tradeoffs import sweeps, values
    folder = Path(ui_env.os.environ["UNITLENS_RUNS"])
    before = {r.run_id for r in runs.list_runs(folder)}
    at = new_app()
    at.multiselect(key="train_methods").set_value(["minimax"])
    at.number_input(key="train_limit").set_value(100)
    at.number_input(key="train_epochs").set_value(1)
    at.run()
    at.toggle(key="train_sweep").set_value(True).run()
    at.text_input(key="train_sweep_values").set_value("0.6, tall").run()
    at.button(key="train_start").click().run()
    assert [shown(w.value) for w in at.sidebar.warning][-1].startswith("give p_t's values and the seeds as numbers")
    assert {r.run_id for r in runs.list_runs(folder)} == before
    at.text_input(key="train_sweep_values").set_value("0.6, 0.9").run()
    at.text_input(key="train_sweep_seeds").set_value("3").run()
    at.button(key="train_start").click().run()
    started = sorted((r for r in runs.list_runs(folder) if r.run_id not in before), key=lambda r: r.started)
    assert [(r.args[r.args.index("--p-t") + 1], r.args[r.args.index("--seed") + 1]) for r in started] == \
        [("0.6", "3"), ("0.9", "3")]
    deadline = time.time() + 240
    while any(runs.load_run(folder / f"{r.run_id}.run.json").status == "running" for r in started):
        assert time.time() < deadline
        time.sleep(0.5)
    metas = [load(r.out).meta for r in started]
    found = sweeps([(meta, values({})) for meta in metas])
    assert [(s.option, [p["value"] for p in s.points]) for s in found] == [("p_t", [0.6, 0.9])]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a GPU the runs start at once")
def test_several_methods_start_from_the_sidebar_one_after_another_on_the_cpu(app_env):
    """Two methods chosen and one Start: one run each on the same data; on the CPU the second
    waits for the first (`--after`), and both finish."""
    import time
    from pathlib import Path
    from core import runs
    at = new_app()
    at.multiselect(key="train_methods").set_value(["ce", "lsg"])
    at.number_input(key="train_limit").set_value(200)
    at.run()
    assert "lsg options" in [shown(c.value) for c in at.sidebar.caption]  # each method's own options, named
    at.button(key="train_start").click()
    at.run()
    assert at.toast and shown(at.toast[0].value).startswith("started ce-")
    folder = Path(ui_env.os.environ["UNITLENS_RUNS"])
    started = sorted(runs.list_runs(folder), key=lambda r: r.started)[-2:]
    assert [r.method for r in started] == ["ce", "lsg"]
    assert started[1].args[-2:] == ["--after", str(started[0].pid)]
    assert all(["--limit", "200"] == r.args[r.args.index("--limit"):][:2] for r in started)
    deadline = time.time() + 240
    while any(runs.load_run(folder / f"{r.run_id}.run.json").status == "running" for r in started):
        assert time.time() < deadline
        time.sleep(0.5)
    assert [runs.load_run(folder / f"{r.run_id}.run.json").status for r in started] == ["done", "done"]
    at.run()  # Delete asks first (a popover); its button removes that run's files and no other
    first = started[0]
    at.button(key=f"train_delete_{first.run_id}").click().run()
    no_errors(at)
    assert not any(path.exists() for path in first.files()) and Path(started[1].out).exists()
    assert [r.run_id for r in runs.list_runs(folder)].count(first.run_id) == 0


def test_a_runs_progress_line_from_its_first_second():
    """Before the trainer writes a word, the bar says it is starting (it read 'epoch 1/?'); then
    its phase; then where it is, by hand."""
    from core.progress import Summary
    from ui.common import progress_text
    assert progress_text(Summary()) == "starting: loading PyTorch"
    assert progress_text(Summary(phase="loading data", elapsed_s=3)) == "loading data · elapsed 0m03s"
    running = Summary(epoch=2, epochs=5, step=4, steps_per_epoch=11, global_step=15, loss=0.5,
                      images_per_s=1234.0, elapsed_s=65, eta_s=30)
    assert progress_text(running) == ("epoch 2/5 · step 4/11 · loss 0.500 · 1,234 img/s · elapsed 1m05s · "
                                      "remaining 0m30s")
    from core.losses import OBJECTIVES  # LSG's loss holds its gate terms on gated steps: named so
    assert "· loss incl. gate terms 0.500 ·" in progress_text(running, OBJECTIVES["lsg"].loss_label)


def test_a_model_whose_figures_are_undefined_is_drawn_on_every_page(app_env):
    """Its fc weights all zero: every image gets the same class and zeroing a unit changes nothing,
    so the rank correlations of the drops are undefined (None). The Ablations page put them in a
    title with :.2f and drew nothing at all (TypeError)."""
    import torch

    from core.analysis.engine import Analyzer
    from core.checkpoints import load
    payload = torch.load(app_env / "ce.pt", weights_only=True)
    payload["state_dict"]["fc.weight"].zero_()
    flat = app_env / "flat.pt"
    torch.save(payload, flat)
    try:
        drops = Analyzer(load(flat), limit=600, train_limit=600).run("unit_ablation")
        assert drops["spearman_selectivity"] is None and max(map(abs, drops["max_class_drop"])) == 0
        at = new_app()
        at.sidebar.multiselect[0].set_value(["flat", "ce"]).run()
        for page in PAGES:
            at.switch_page(page).run()
            no_errors(at)
    finally:
        flat.unlink()


def test_each_pages_choices_outlive_a_visit_to_another_page(app_env):
    """A widget not drawn in a run loses its state; back on its page it showed its default (the
    histogram became a density again, the colour scale shared again)."""
    chosen = {"pages/selectivity.py": [("radio", "sel_kind", "Histogram")],
              "pages/gates.py": [("toggle", "gates_shared", False), ("selectbox", "gates_mask_class", "Bag"),
                                 ("slider", "gates_mask_threshold", 0.3)],
              "pages/compare.py": [("selectbox", "compare_target", "Coat"), ("toggle", "compare_gate", False),
                                   ("multiselect", "compare_cams", ["cam"]), ("selectbox", "compare_layer", "stage 2")]}
    at = new_app()
    for page, widgets in chosen.items():
        at.switch_page(page).run()
        for kind, key, value in widgets:
            getattr(at, kind)(key=key).set_value(value).run()
        no_errors(at)
    at.switch_page("pages/unit.py").run()  # none of them on it
    for page, widgets in chosen.items():
        at.switch_page(page).run()
        assert [getattr(at, kind)(key=key).value for kind, key, _ in widgets] == [v for _, _, v in widgets], page


def test_a_gate_tie_is_said_under_the_assigned_class(app_env):
    """A constrained gate's column often has several equal largest entries: the first class is
    shown, the others under it (they were only in the tooltip)."""
    from core.lsg import gate_assignment
    from ui import common
    at = new_app()
    at.switch_page("pages/unit.py").run()
    meta = at.session_state["app_found"][at.selectbox(key="unit_model").value]
    gate = common.record(meta["path"]).analyzer.cached("gate")["gate"]
    columns = [gate_assignment([row[k] for row in gate]) for k in range(len(gate[0]))]
    unit, (first, tied) = next((k, c) for k, c in enumerate(columns) if c[1])
    untied = next(k for k, c in enumerate(columns) if c[0] is not None and not c[1])
    at.number_input(key="unit_index").set_value(unit).run()
    shown_metric = next(m for m in at.metric if m.label == "assigned by gate")
    names = meta["class_names"]
    assert shown(shown_metric.value) == names[first]
    assert shown(shown_metric.delta) == "tied with " + ", ".join(names[c] for c in tied)
    at.number_input(key="unit_index").set_value(untied).run()
    assert not next(m for m in at.metric if m.label == "assigned by gate").delta


@pytest.mark.slow
def test_every_page_draws_an_imported_torchvision_resnet50_beside_our_own(app_env, tmp_path):
    """A random-weight torchvision ResNet-50 imported on a folder of colour photos at 224 px (2048
    units, ImageNet's crop): compared with a bundled-style CE model, every page draws without an
    error, and Compare shows the photo as the ResNet sees it (224 x 224, cropped)."""
    import torch
    import torchvision

    from core.import_weights import import_weights
    from .test_import_weights import photo_folder
    torch.save(torchvision.models.resnet50(num_classes=3).state_dict(), tmp_path / "r50.pth")
    folder = photo_folder(tmp_path / "photos")
    out = app_env / "r50.pt"
    import_weights(tmp_path / "r50.pth", "resnet50", out, dataset=f"imagefolder:{folder}")
    try:
        at = draw_every_page(["r50", "ce"])
        at.switch_page("pages/compare.py").run()
        steps = [t.value for t in at.text]
        assert any("then the centre 224x224 (ImageNet's evaluation)" in step for step in steps), steps
        # a test image of the photos is not fed to the Fashion-MNIST model, and the page says so
        assert [shown(i.value) for i in at.info if "Not shown" in i.value] == [
            "Not shown: ce, trained on another dataset than imagefolder:" + str(folder) +
            ", whose test image this is; upload a picture to compare them all."]
        assert [s.value for s in at.subheader][:1] == ["r50"] and "ce" not in [s.value for s in at.subheader]
        assert not [t for t in at.toggle if "Invert" in t.label]  # colour photos: nothing to invert
        # its maps' AUC on the image is seconds of forward passes: asked for, with the cost measured now
        asked = at.toggle(key="compare_image_auc")
        assert asked.label.startswith("Deletion and insertion AUC of the maps on this image (about ") and not asked.value
        assert not [d for d in at.dataframe if "deletion" in d.value.columns]
        asked.set_value(True).run()
        no_errors(at)
        aucs = [d.value for d in at.dataframe if "deletion" in d.value.columns]
        assert len(aucs) == 1 and aucs[0]["map"].tolist() == ["CAM", "LayerCAM"]
    finally:
        out.unlink()


def test_a_weights_file_is_added_from_the_sidebar(app_env, tmp_path):
    """'Add a model from a weights file': a torchvision ResNet-18 state dict becomes a model in the
    runs folder and is offered in the model choice; a relative path and a pickled whole model are
    one line each, and write nothing."""
    import os
    import torch
    import torchvision

    from .test_import_weights import photo_folder
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "mine.pth")
    torch.save(torchvision.models.resnet18(num_classes=3), tmp_path / "whole.pth")
    folder = photo_folder(tmp_path / "photos")
    runs_folder = __import__("pathlib").Path(os.environ["UNITLENS_RUNS"])
    at = new_app()
    for weights, words in (("mine.pth", "give full paths"), (str(tmp_path / "whole.pth"), "pickled whole model")):
        at.text_input(key="import_weights").set_value(weights)
        at.selectbox(key="import_arch").set_value("resnet18")
        at.text_input(key="import_dataset").set_value(str(folder)).run()
        at.button(key="import_add").click().run()
        assert any(words in w.value for w in at.warning), [w.value for w in at.warning]
        assert not list(runs_folder.glob("*resnet18*.pt"))
    at.text_input(key="import_weights").set_value(str(tmp_path / "mine.pth")).run()
    at.button(key="import_add").click().run()
    no_errors(at)
    added = runs_folder / "mine-resnet18.pt"
    try:
        assert added.exists()
        at = new_app()
        assert "mine-resnet18" in at.sidebar.multiselect[0].options
    finally:
        added.unlink()


def test_the_specificity_and_cost_view_shows_each_models_own_figures(app_env):
    """Its cells are the analyses' own numbers (median SI, Phi, accuracy, NLL, ECE), three decimals,
    one row per compared model (one seed each: no spread)."""
    from core.analysis.engine import Analyzer
    from core.catalog import analysis_limits
    from core.checkpoints import load
    at = new_app()
    at.switch_page("pages/tradeoffs.py").run()
    no_errors(at)
    specificity, cost = at.dataframe[0].value, at.dataframe[1].value
    assert list(specificity["model"]) == ["ce", "minimax", "lsg"]
    test_limit, train_limit = analysis_limits()
    engine = Analyzer(load(app_env / "minimax.pt"), limit=test_limit, train_limit=train_limit)
    row = specificity.set_index("model").loc["minimax"]
    assert row["median SI ↑ better"] == f"{engine.run('selectivity')['median']:.3f}"
    assert row["Phi ↓ better"] == f"{engine.run('gate')['phi']:.3f}"
    costs = cost.set_index("model").loc["minimax"]
    calibration = engine.run("calibration")
    assert costs["NLL ↓ better"] == f"{calibration['nll']:.3f}" and costs["ECE ↓ better"] == f"{calibration['ece']:.3f}"
    assert costs["accuracy ↑ better"] == f"{engine.run('accuracy')['accuracy']:.3f}"
    assert any("Selectivity and Phi can disagree" in m.value for m in at.markdown)
    # the LSG row's shares of its trained gate's units: one class's alone, and two classes' or more
    from core import lsg
    gate = load(app_env / "lsg.pt").model.gate.detach()
    row = specificity.set_index("model").loc["lsg"]
    assert row["single-class units ↑ better"] == f"{lsg.single_class_fraction(gate):.3f}"
    assert row["shared units"] == f"{lsg.shared_fraction(gate):.3f}"


def test_the_faithfulness_button_says_its_measured_cost(app_env):
    """It promised 'about 30 s each on a 2-core CPU' whatever the model (402 s on a 64 px colour one)."""
    at = new_app()
    at.switch_page("pages/compare.py").run()
    no_errors(at)
    label = next(b.label for b in at.button if b.key == "compare_faithfulness")
    assert re.fullmatch(r"Compute for 3 model\(s\) \(about \d+m\d\ds here, measured on one image\)", label), label


def test_an_overview_of_more_checkpoints_than_the_model_cache_holds_reads_each_file_once(
        tiny_checkpoints, tmp_path_factory, monkeypatch):
    """70 checkpoints (the model records' cache holds 64): the first Overview reads each file once,
    the next visit none. Before, every visit past 64 rebuilt every model (issue 32: 50-83 s)."""
    import ui.common
    models = tmp_path_factory.mktemp("many_models")
    for i in range(70):
        shutil.copy(tiny_checkpoints["ce"], models / f"m{i:02d}.pt")
    reads = []
    real_load = ui.common.load
    monkeypatch.setattr(ui.common, "load", lambda path: reads.append(path) or real_load(path))
    previous = ui_env.apply(ui_env.app_environment(models, tmp_path_factory.mktemp("many_work")))
    try:
        at = new_app()
        no_errors(at)
        assert len(overview_table(at)) == 70
        assert sorted(Path(p).name for p in reads) == [f"m{i:02d}.pt" for i in range(70)]
        reads.clear()
        at.run()
        no_errors(at)
        assert reads == [] and len(overview_table(at)) == 70
    finally:
        ui_env.restore(previous)


def test_influential_features_take_k1_and_k2_apart_on_the_ablations_page(app_env):
    """k1 = 3, k2 = 7 on the page: each class's set has 7 units, and the Fig. 2 histogram counts
    each class's images with a unit among their top 3 (3 per image)."""
    at = new_app()
    at.switch_page("pages/ablations.py").run()
    at.number_input(key="abl_k1").set_value(3).run()
    at.number_input(key="abl_k2").set_value(7).run()
    no_errors(at)
    sets = [frame for frame in at.dataframe if list(frame.value.columns) == ["class", "units"]]
    assert sets and all(len(units.split(", ")) == 7 for units in sets[0].value["units"])
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    assert any("images with the unit among their top 3" in spec for spec in specs)


def test_layer_selectivity_and_the_retrained_head_are_computed_on_request(app_env):
    """Selectivity by layer (a chart of the nine blocks), RS of a shallow layer's channels, the
    decomposed head retrained (a table with the three accuracies) and the ablation of a chosen
    layer's channels, each behind its button, which is gone once computed."""
    at = new_app()
    at.sidebar.multiselect[0].set_value(["ce"]).run()
    at.switch_page("pages/selectivity.py").run()
    at.button(key="sel_layers").click().run()
    no_errors(at)
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    layer_charts = [spec for spec in specs if "Selectivity of each layer" in spec]
    assert layer_charts and "stage 3 block 3" in layer_charts[0]
    assert not [b for b in at.button if b.key == "sel_layers"]
    at.selectbox(key="sel_rs_layer").set_value("stage 1 block 1").run()
    at.button(key="sel_iam").click().run()
    no_errors(at)
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    assert any("RS against selectivity, stage 1 block 1" in spec for spec in specs)
    assert any(shown(c.value).startswith("ce rho(RS, SI) ") for c in at.caption)
    at.switch_page("pages/ablations.py").run()
    at.button(key="abl_retrain").click().run()
    no_errors(at)
    tables = [f.value for f in at.dataframe if "retrained (1 epoch)" in f.value.columns]
    assert tables and tables[0]["model"].tolist() == ["ce"]
    assert 0 <= tables[0]["retrained (1 epoch)"][0] <= 1
    assert not [b for b in at.button if b.key == "abl_retrain"]
    at.selectbox(key="abl_layer").set_value("stage 2 block 1").run()
    at.button(key="abl_layer_run").click().run()
    no_errors(at)
    tables = [f.value for f in at.dataframe if "rho(largest class drop, SI)" in f.value.columns]
    # every one of the 600 analysed test images: 60 a class, fewer than the 100 asked for
    assert tables and tables[0]["channels"].tolist() == [32] and tables[0]["images"].tolist() == [600]
    assert not [b for b in at.button if b.key == "abl_layer_run"]


def test_maps_of_influential_units_are_drawn_on_request(app_env):
    """Table 7 behind a button: per model three pictures (all units, influential, non-influential)
    of the chosen class, the button gone once computed."""
    at = new_app()
    at.sidebar.multiselect[0].set_value(["ce", "lsg"]).run()
    at.switch_page("pages/ablations.py").run()
    at.button(key="abl_maps").click().run()
    no_errors(at)
    at.selectbox(key="abl_maps_class").set_value("Sneaker").run()
    no_errors(at)
    captions = [shown(i.caption) for e in elements(at._tree) if getattr(e, "type", "") == "image" for i in e.proto.imgs]
    for label in ("ce", "lsg"):
        for group in ("all units", "influential", "non-influential"):
            assert any(c.startswith(f"{label}: {group} (mean activation ") for c in captions), (label, group, captions)
    assert not [b for b in at.button if b.key == "abl_maps"]


def test_adversarial_detection_is_computed_on_request_on_the_gates_page(app_env):
    """The LSG paper's Table 4 behind a button, PGD's steps a choice: a table of AUC mean +- std at
    each training size (capped at the 60 a class the app's training sample holds), the button gone
    once computed."""
    at = new_app()
    at.sidebar.multiselect[0].set_value(["lsg"]).run()
    at.switch_page("pages/gates.py").run()
    at.number_input(key="gates_adv_steps").set_value(2).run()  # the paper's 40 take minutes
    at.button(key="gates_adversarial").click().run()
    no_errors(at)
    tables = [f.value for f in at.dataframe if "attack success (test)" in f.value.columns]
    assert tables and tables[0]["model"].tolist() == ["lsg"]
    assert list(tables[0].columns[1:-1]) == ["AUC at 60 a class"]
    from core.analysis.engine import Analyzer
    from ui import common  # the store the app wrote to (a resource kept across this process's sessions)
    stored = Analyzer.from_path(app_env / "lsg.pt", common.store(), limit=600,
                                train_limit=600).cached("adversarial_detection", epsilon=0.3, steps=2)
    assert tables[0]["AUC at 60 a class"][0] == f"{stored['auc_mean'][0]:.3f} ± {stored['auc_std'][0]:.3f}"
    assert tables[0]["attack success (test)"][0] == stored["attack_success_test"]
    assert not [b for b in at.button if b.key == "gates_adversarial"]


@pytest.mark.slow
def test_rs_against_selectivity_is_computed_on_request_and_drawn(app_env):
    """The Selectivity page offers IAM for the models without it; once computed, RS against
    selectivity is drawn with each model's rhos, and the Unit page lists the units above a unit."""
    at = new_app()
    at.sidebar.multiselect[0].set_value(["ce"]).run()
    at.switch_page("pages/selectivity.py").run()
    assert [b for b in at.button if b.key == "sel_iam"]
    at.button(key="sel_iam").click().run()
    no_errors(at)
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    assert any("RS against selectivity" in spec for spec in specs)
    assert any(shown(c.value).startswith("ce rho(RS, SI) ") for c in at.caption)
    assert not [b for b in at.button if b.key == "sel_iam"]
    at.radio(key="sel_rs_method").set_value("am").run()  # the paper's baseline: its own images, asked for apart
    assert at.button(key="sel_iam").label.startswith("Compute AM and RS of the penultimate units for 1 model(s)")
    at.radio(key="sel_rs_method").set_value("iam").run()
    at.switch_page("pages/unit.py").run()
    no_errors(at)
    assert any(shown(c.value).startswith("More active than unit ") for c in at.caption)


def test_pca_shows_the_third_component_for_the_classes_asked(app_env):
    at = new_app()
    at.switch_page("pages/selectivity.py").run()
    at.radio(key="sel_pca_pair").set_value("PC2 and PC3").run()
    names = [o for o in at.multiselect(key="sel_pca_classes").options][:2]
    at.multiselect(key="sel_pca_classes").set_value(names).run()
    no_errors(at)
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    pca = [spec for spec in specs if '"PC3"' in spec and "PC2 " in spec]
    assert pca and all(name in pca[0] for name in names)


def test_two_classes_masked_at_once_on_the_gates_page(app_env):
    at = new_app()
    at.switch_page("pages/gates.py").run()
    names = at.selectbox(key="gates_mask_class").options
    at.selectbox(key="gates_mask_partner").set_value(names[1]).run()
    no_errors(at)
    captions = [shown(c.value) for c in at.caption]
    assert any(c.startswith(f"on {names[1]}: ") for c in captions), captions
    # under the gate's post-hoc fit and the masking (gate-assigned units): how many training images fed them
    said = "Fitted or counted on a seeded class-balanced sample of up to 600 training images a model (UNITLENS_TRAIN_LIMIT)"
    assert sum(c.startswith(said) for c in captions) == 2, captions


def test_the_filter_correlation_matrix_is_drawn_by_assigned_class(app_env):
    at = new_app()
    at.switch_page("pages/gates.py").run()
    no_errors(at)
    specs = [e.proto.spec for e in elements(at._tree) if getattr(e, "type", "") == "vega_lite_chart"]
    assert sum("C_IC" in spec and "within a class" in spec for spec in specs) == 3  # the compared trio


def test_the_gates_summary_shows_each_models_gated_path_accuracy(app_env):
    """The gated path's accuracy beside the plain head's, as the analysis computed them."""
    from core.analysis.engine import Analyzer
    from ui import common  # the store the app wrote to (a resource kept across this process's sessions)
    at = new_app()
    at.switch_page("pages/gates.py").run()
    no_errors(at)
    table = next(f.value for f in at.dataframe if "gated-path accuracy" in f.value.columns)
    row = table[table["model"] == "lsg"].iloc[0]
    stored = Analyzer.from_path(app_env / "lsg.pt", common.store(), limit=600, train_limit=600).cached("gated_path")
    assert row["gated-path accuracy"] == stored["accuracy"] and row["accuracy"] == stored["plain_accuracy"]
