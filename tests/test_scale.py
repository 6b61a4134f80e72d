"""ImageNet's class count on this CPU: 1000 classes x 2 images, a random ResNet-18 with 512 units,
the whole default report in a real process under 4 GB, and every page drawn on it (issue 29)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from .conftest import PYTHON, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def thousand_classes(tmp_path_factory):
    import torch
    import torchvision

    from bench.imagenet_scale import make_folder
    from core.import_weights import import_weights
    work = tmp_path_factory.mktemp("scale")
    folder = make_folder(work / "images", 1000, 2, size=(40, 30))
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), work / "r18.pth")
    models = work / "models"
    models.mkdir()
    import_weights(work / "r18.pth", "resnet18", models / "r18.pt", dataset=f"imagefolder:{folder}", input_size=32)
    return models / "r18.pt"


def test_the_default_report_at_1000_classes_stays_under_4_gb(thousand_classes, tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([PYTHON, "-m", "core.analyze", str(thousand_classes), "--json", "--cache",
                           str(tmp_path / "c.duckdb")], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "UNITLENS_PHI_SECONDS": "10", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    assert max(peak_gb, before / 2**20) < 4.0
    row = json.loads(done.stdout)
    assert row["accuracy"]["accuracy"] is not None and len(row["accuracy"]["per_class"]) == 1000
    assert len(row["selectivity"]["per_unit"]) == 512 and row["headline"]["phi"] is not None
    assert "Class masking is skipped above 100 classes" in row["skipped"].get("class_masking", "")


def test_every_page_opens_on_a_1000_class_model(thousand_classes, tmp_path, monkeypatch):
    """The gate heatmap is drawn 50 classes and 256 units at a time, with a pager."""
    from streamlit.testing.v1 import AppTest

    from core.analysis.engine import Analyzer
    from ui import common

    from . import ui_env
    from .test_app import PAGES, elements, no_errors
    previous = ui_env.apply(ui_env.app_environment(thousand_classes.parent, tmp_path,
                                                   {"UNITLENS_PHI_SECONDS": "10", "UNITLENS_EVAL_LIMIT": "0",
                                                    "UNITLENS_TRAIN_LIMIT": "0"}))
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        at.sidebar.multiselect[0].set_value(["r18"]).run()
        no_errors(at)
        for page in PAGES:
            at.switch_page(page).run()
            no_errors(at)
        at.switch_page("pages/gates.py").run()
        pagers = [n.label for n in at.number_input if "at a time" in n.label]
        assert "r18: classes: from (of 1000, 50 at a time)" in pagers
        assert "r18: units, by assigned class: from (of 512, 256 at a time)" in pagers

        def map_captions():
            return [i.caption for e in elements(at._tree) if getattr(e, "type", "") == "image"
                    for i in e.proto.imgs if "penultimate maps" in i.caption]
        at.switch_page("pages/compare.py").run()  # 512 maps: the 64 most active, and all on request
        assert at.toggle(key="compare_all_maps_r18").label == "Show all 512 maps"
        assert map_captions()[0].startswith("the 64 most active of 512 penultimate maps and the top units for ")
        at.toggle(key="compare_all_maps_r18").set_value(True).run()
        no_errors(at)
        assert map_captions()[0].startswith("512 penultimate maps (")

        def drawn_units():  # the unit-drop heatmap's columns, in the order drawn
            spec = next(json.loads(e.proto.spec) for e in elements(at._tree) if getattr(e, "type", "") ==
                        "vega_lite_chart" and "class accuracy drop when one unit is zeroed" in e.proto.spec)
            return spec["encoding"]["x"]["sort"]
        at.switch_page("pages/ablations.py").run()  # 512 units: the 256 that hurt a class most come first
        drops = Analyzer.from_path(thousand_classes, common.store(), limit=None, train_limit=None).cached("unit_ablation")
        first = drawn_units()
        assert len(first) == 256 and at.radio(key="abl_cols_0_order").value == "largest first"
        hidden = set(range(512)) - set(first)
        assert min(drops["max_class_drop"][u] for u in first) >= max(drops["max_class_drop"][u] for u in hidden)
        at.radio(key="abl_cols_0_order").set_value("by number").run()
        assert drawn_units() == list(range(256))
    finally:
        ui_env.restore(previous)
