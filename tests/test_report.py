"""checkpoints/make_report.py's verdicts on hand-made figures: each claim's "matches" must turn
into "does not hold" when the figures say otherwise (the report's prose is computed, not typed)."""
import importlib.util
import math
from pathlib import Path

import pytest

from core.tradeoffs import Sweep

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("make_report", ROOT / "checkpoints" / "make_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def point(value, accuracy, nte_fraction, seeds=2, spread=0.01):
    return {"value": value, "seeds": seeds, "accuracy": accuracy, "accuracy_spread": spread,
            "nte_fraction": nte_fraction, "nte_fraction_spread": spread, "median_si": 0.8, "median_si_spread": None}


def test_fig5_claims_follow_the_means(report):
    lam = Sweep("maxnte", "lam", [point(0.5, 0.90, 0.90), point(1, 0.89, 0.93), point(2, 0.85, 0.95)])
    pt = Sweep("minimax", "p_t", [point(0.5, 0.900, 0.99), point(0.7, 0.905, 0.97), point(0.9, 0.902, 0.92)])
    said = report.sweep_claims({"lam": lam, "p_t": pt}).splitlines()
    assert said[0].count("matches") == 1 and "90.00% -> 89.00% -> 85.00%" in said[0]
    assert f"{0.95 * math.log(9):.3f} nats" in said[0]  # the highest mean NTE, in nats
    assert "matches" in said[1] and "0.920 -> 0.970 -> 0.990" in said[1] and "within 0.50 points" in said[1]
    # accuracy rising with lambda, and minimax's accuracy moving by 3 points: neither holds
    lam.points[2]["accuracy"] = 0.95
    pt.points[0]["accuracy"] = 0.87
    said = report.sweep_claims({"lam": lam, "p_t": pt}).splitlines()
    assert all("**does not hold**" in line for line in said)
    assert "within 3.50 points" in said[1]


def control(name, class_drops, rotated_mean, rho_class, rho_overall, accuracy=0.9):
    return {"name": name, "max_class_drop": class_drops,
            "rotation": {"mean_max_class_drop": rotated_mean, "unit_mean_max_class_drop": sum(class_drops) / len(class_drops)},
            "headline": {"rho_drop_selectivity": rho_class, "accuracy": accuracy}, "rho_overall_si": rho_overall,
            "mean_overall_drop": 0.001, "selectivity": {"median": 0.7}}


def test_the_controls_verdict_compares_units_with_rotated_directions(report):
    models = [control("ce-bn", [0.02, 0.04], 0.01, 0.6, 0.1), control("ce-nobn", [0.05, 0.07], 0.02, 0.5, 0.2),
              control("ce-dropout0.5", [0.01, 0.01], 0.03, 0.1, 0.4)]
    said = report.controls_verdict(models).splitlines()
    # units beat rotated directions in two of three (3.00% vs 1.00%, 6.00% vs 2.00%; 1.00% vs 3.00%)
    assert "only in ce-bn, ce-nobn" in said[0] and "ce-dropout0.5 1.00% vs 3.00%" in said[0]
    assert "only in ce-bn, ce-nobn" in said[1] and "ce-bn 0.600 vs 0.100" in said[1]
    models[0]["rotation"]["mean_max_class_drop"] = models[1]["rotation"]["mean_max_class_drop"] = 0.5
    assert "random direction?** no:" in report.controls_verdict(models).splitlines()[0]
    assert "without it the mean largest class drop of one unit is 6.00% (with it 3.00%)" in said[2]
