"""checkpoints/make_report.py's verdicts on hand-made figures (its sections, checkpoints/report/): each
claim's "matches" must turn into "does not hold" when the figures say otherwise (the report's prose is
computed, not typed)."""
import math

import pytest

from checkpoints.report import controls, lsg20, rs, seeds, studies, sweeps
from core.tradeoffs import Sweep


def point(value, accuracy, nte_fraction, seeds=2, spread=0.01):
    return {"value": value, "seeds": seeds, "accuracy": accuracy, "accuracy_spread": spread,
            "nte_fraction": nte_fraction, "nte_fraction_spread": spread, "median_si": 0.8, "median_si_spread": None}


def test_fig5_claims_follow_the_means():
    lam = Sweep("maxnte", "lam", [point(0.5, 0.90, 0.90), point(1, 0.89, 0.93), point(2, 0.85, 0.95)])
    pt = Sweep("minimax", "p_t", [point(0.5, 0.900, 0.99), point(0.7, 0.905, 0.97), point(0.9, 0.902, 0.92)])
    said = sweeps.sweep_claims({"lam": lam, "p_t": pt}).splitlines()
    assert said[0].count("matches") == 1 and "90.00% -> 89.00% -> 85.00%" in said[0]
    assert f"{0.95 * math.log(9):.3f} nats" in said[0]  # the highest mean NTE, in nats
    assert "matches" in said[1] and "0.920 -> 0.970 -> 0.990" in said[1] and "within 0.50 points" in said[1]
    # accuracy rising with lambda, and minimax's accuracy moving by 3 points: neither holds
    lam.points[2]["accuracy"] = 0.95
    pt.points[0]["accuracy"] = 0.87
    said = sweeps.sweep_claims({"lam": lam, "p_t": pt}).splitlines()
    assert all("**does not hold**" in line for line in said)
    assert "within 3.50 points" in said[1]


def control(name, class_drops, rotated_mean, rho_class, rho_overall, accuracy=0.9):
    return {"name": name, "max_class_drop": class_drops,
            "rotation": {"mean_max_class_drop": rotated_mean, "unit_mean_max_class_drop": sum(class_drops) / len(class_drops)},
            "headline": {"rho_drop_selectivity": rho_class, "accuracy": accuracy}, "rho_overall_si": rho_overall,
            "mean_overall_drop": 0.001, "selectivity": {"median": 0.7}}


def test_the_controls_verdict_compares_units_with_rotated_directions():
    models = [control("ce-bn", [0.02, 0.04], 0.01, 0.6, 0.1), control("ce-nobn", [0.05, 0.07], 0.02, 0.5, 0.2),
              control("ce-dropout0.5", [0.01, 0.01], 0.03, 0.1, 0.4)]
    said = controls.controls_verdict(models).splitlines()
    # units beat rotated directions in two of three (3.00% vs 1.00%, 6.00% vs 2.00%; 1.00% vs 3.00%)
    assert "only in ce-bn, ce-nobn" in said[0] and "ce-dropout0.5 1.00% vs 3.00%" in said[0]
    assert "only in ce-bn, ce-nobn" in said[1] and "ce-bn 0.600 vs 0.100" in said[1]
    models[0]["rotation"]["mean_max_class_drop"] = models[1]["rotation"]["mean_max_class_drop"] = 0.5
    assert "random direction?** no:" in controls.controls_verdict(models).splitlines()[0]
    assert "without it the mean largest class drop of one unit is 6.00% (with it 3.00%)" in said[2]


def seeded(kind, seed, accuracy, phi=0.5, c_ic=0.2, monopolised=(6, 6), density=0.2, shared=0.1):
    """One model of the seeds study as checkpoints/studies/seeds.json keeps it (two classes, 64 units)."""
    from core.tradeoffs import MEASURES
    return {"file": f"checkpoints/studies/seeds/{kind}-seed{seed}.pt", "meta": {"num_features": 64, "seed": seed},
            "measured": {**{m.key: None for m in MEASURES}, "accuracy": accuracy, "phi": phi, "nll": 0.3,
                         "single_class_units": sum(monopolised) / 64, "shared_units": shared},
            "gate": {"density": density, "monopolised": list(monopolised)},
            "filters": {"c_ic": c_ic, "within_class": 0.5, "thresholds": [0.3], "redundancy": [0.1], "matrix": None}}


def test_the_seeds_study_folds_seeds_by_kind_and_its_claims_follow_the_means():
    """Kinds from the file names (lsg-fixed apart from lsg), mean and sample std over seeds; each
    verdict turns when the figures do."""
    models = [seeded("ce", 0, 0.80, phi=0.9, c_ic=0.20), seeded("ce", 1, 0.82, phi=0.7, c_ic=0.16),
              seeded("label_smoothing", 0, 0.79), seeded("minimax", 0, 0.83), seeded("minimax", 1, 0.85),
              seeded("lsg", 0, 0.81, phi=0.3, c_ic=0.15),
              seeded("lsg", 1, 0.81, phi=0.3, c_ic=0.13),
              seeded("lsg-fixed", 0, 0.78, c_ic=0.09)]
    kinds = seeds.by_kind(models)
    assert list(kinds) == ["ce", "label_smoothing", "minimax", "lsg", "lsg-fixed"]
    assert kinds["ce"]["seeds"] == 2 and kinds["ce"]["accuracy"] == pytest.approx(0.81)
    assert kinds["ce"]["accuracy_spread"] == pytest.approx(0.0141421, rel=1e-5)
    assert kinds["ce"]["c_ic"] == pytest.approx(0.18) and kinds["lsg-fixed"]["c_ic_spread"] is None
    said = seeds.seeds_claims(kinds).splitlines()
    assert "matches" in said[0] and "minimax 84.00 +- 1.41" in said[0] and "(cross-entropy (STD)) 81.00" in said[0]
    assert "matches" in said[1] and "Phi 0.3000 vs 0.8000" in said[1]
    assert "matches" in said[2] and "ratio 0.50" in said[2] and "(ratio 0.78)" in said[2]
    for m in models:
        if m["file"].startswith("checkpoints/studies/seeds/minimax"):
            m["measured"]["accuracy"] = 0.70
        if m["file"].startswith("checkpoints/studies/seeds/lsg-"):
            m["filters"]["c_ic"] = 0.17
        if "/lsg-seed" in m["file"]:
            m["measured"]["phi"] = 0.95
    said = seeds.seeds_claims(seeds.by_kind(models)).splitlines()
    assert all("**does not hold**" in line for line in said)


def rs_layer(name, si, iam, am=None, rho=(0.5, 0.4), rho_drop=None):
    return {"layer": name, "si": si, "rs": {"iam": iam, **({"am": am} if am else {})},
            "rho": {"iam": rho[0], **({"am": rho[1]} if am else {})}, "rho_drop": rho_drop}


def test_the_rs_claims_follow_the_figures():
    """Medians, interquartile ranges (inclusive quartiles) and shares of zero per layer; each
    verdict turns when the figures do."""
    shallow = {"meta": {"arch": "shallow_cnn"}, "layers": [
        rs_layer("conv 1", [0.1, 0.2, 0.3, 0.4, 0.5], [0.0, 0.2, 0.4, 0.6, 0.8], [0.2, 0.4, 0.6, 0.8, 1.0], (0.9, 0.8)),
        rs_layer("conv 2", [0.2] * 5, [0.1] * 5, rho=(0.6, None)),
        rs_layer("conv 3", [0.3] * 5, [0.0, 0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4, 0.5], (0.5, 0.3)),
        rs_layer("conv 4", [0.3] * 5, [0.1] * 5, rho=(0.2, None)),
        rs_layer("hidden fc", [0.8] * 5, [0, 0, 0, 0.1, 0.2], rho=(0.1, None), rho_drop=-0.3)]}
    mlp = {"meta": {"arch": "mlp"}, "layers": [rs_layer("hidden 1", [0.2] * 5, [0.5] * 5, [0.5] * 5),
                                             rs_layer("hidden 3", [0.2] * 5, [0.4] * 5, [0.4] * 5)]}
    rows = rs.rs_rows([shallow, mlp])
    conv1 = rows[0]
    assert conv1["median_si"] == pytest.approx(0.3) and conv1["iam"]["median"] == pytest.approx(0.4)
    assert conv1["iam"]["iqr"] == pytest.approx(0.4) and conv1["iam"]["zero"] == pytest.approx(0.2)
    assert rows[4]["iam"]["zero"] == pytest.approx(0.6) and "am" not in rows[4]
    said = rs.rs_claims(rows).splitlines()
    assert all(line.count("matches") == 1 for line in said[:5]), said
    assert "0.900 -> 0.600 -> 0.500 -> 0.200 (falling at every layer)" in said[3]
    assert "rho(RS, class drop) -0.300" in said[5]
    assert "| shallow_cnn | conv 1 | 5 | 0.300 | 0.400 / 0.400 / 20% | 0.900 | 0.600 / 0.400 | 0.800 | — |" in \
        rs.rs_table(rows)
    shallow["layers"][0]["rho"] = {"iam": -0.1, "am": 0.8}  # conv 1 no longer positive, nor above conv 4
    shallow["layers"][0]["rs"]["iam"] = [0.9] * 5           # and IAM's RS above AM's; no diversity lost in the MLP
    shallow["layers"][4]["si"] = [0.1] * 5                 # the hidden layer no more selective than the convolutions
    mlp["layers"][0]["rs"]["iam"] = [0.0, 0.25, 0.5, 0.75, 1.0]
    said = rs.rs_claims(rs.rs_rows([shallow, mlp])).splitlines()
    assert all("**does not hold**" in line for line in said[:5]), said


def test_no_correlation_in_std_is_said_rather_than_halved():
    """C_IC near 0 for STD (the short runs here): no ratio of two near-zero numbers is a verdict."""
    models = [seeded("ce", 0, 0.8, c_ic=-0.002), seeded("minimax", 0, 0.8), seeded("lsg", 0, 0.8, c_ic=-0.003),
              seeded("lsg-fixed", 0, 0.8, c_ic=-0.004)]
    said = seeds.seeds_claims(seeds.by_kind(models)).splitlines()
    assert "cannot tell: STD's C_IC is -0.0020, no correlation to halve" in said[2] and "(ratio" not in said[2]


def test_the_twenty_lsg_models_are_counted_where_their_gates_settled():
    """Units a class monopolises: mean over classes, then mean and sample std over the models whose
    trained gate is within 0.05 of the target; a model whose gate stayed dense is left out; each
    verdict turns when the figures do."""
    models = [seeded("lsg", 0, 0.70, monopolised=(6, 8), shared=0.10),
              seeded("lsg", 1, 0.72, monopolised=(4, 6), shared=0.12),
              seeded("lsg", 2, 0.71, monopolised=(0, 0), shared=0.9, density=0.93)]
    rows = lsg20.lsg20_rows(models)
    assert [r["seed"] for r in rows] == [0, 1, 2] and rows[0]["closed"] == pytest.approx(1 - 14 / 64 - 0.10)
    assert "| 0 | 0.7000 | 0.200 | 6 8 | 22% | 10% | 68% |" in lsg20.lsg20_table(rows)
    said = lsg20.lsg20_claims(rows).splitlines()
    assert "2 of 3 models came within 0.05 of the target 0.2" in said[0]
    assert "(density 0.443 +- 0.421, accuracy 71.00% +- 1.00%)" in said[0]  # every model's
    assert "matches" in said[1] and "6.0 +- 1.4 of 64 a class (9.4%" in said[1] and "from 4 to 8 over their 4 classes" in said[1]
    assert "matches" in said[2] and "11.0% +- 1.4%" in said[2]
    models[0]["gate"]["monopolised"], models[1]["gate"]["monopolised"] = [1, 1], [1, 2]
    models[0]["measured"]["shared_units"] = models[1]["measured"]["shared_units"] = 0.4
    said = lsg20.lsg20_claims(lsg20.lsg20_rows(models)).splitlines()
    assert all("**does not hold**" in line for line in said[1:])
    for m in models:
        m["gate"]["density"] = 0.9
    assert "cannot tell, no gate settled" in lsg20.lsg20_claims(lsg20.lsg20_rows(models))


def test_a_study_keeps_the_records_of_models_whose_checkpoints_are_not_here(tiny_checkpoints, tmp_path, monkeypatch):
    """Retraining one model of a study rewrites its line alone: the line of a model whose checkpoint
    is absent stays as recorded, the present one's is computed from its file (with its weights' hash)."""
    import json
    import shutil
    from core.store import Store
    from core.weights import sha256
    monkeypatch.setattr(studies, "STUDIES", tmp_path)
    (tmp_path / "demo").mkdir()
    kept = {"file": "checkpoints/studies/demo/gone-seed0.pt", "sha256": "ab", "figure": 0.5}
    stale = {"file": "checkpoints/studies/demo/ce-seed0.pt", "sha256": "old", "figure": 0.1}
    (tmp_path / "demo.json").write_text(json.dumps({"models": [stale, kept]}))
    shutil.copy(tiny_checkpoints["ce"], tmp_path / "demo" / "ce-seed0.pt")
    models = studies.study("demo", Store(tmp_path / "store.duckdb"), lambda analyzer: {"figure": analyzer.meta["method"]})
    assert [m["file"] for m in models] == ["checkpoints/studies/demo/ce-seed0.pt", "checkpoints/studies/demo/gone-seed0.pt"]
    assert models[1] == kept
    assert models[0]["sha256"] == sha256(tiny_checkpoints["ce"]) and models[0]["figure"] == "ce"
    assert len(models[0]["weights_sha256"]) == 64 and models[0]["meta"]["method"] == "ce"
    assert json.loads((tmp_path / "demo.json").read_text())["models"] == models


def grid_model(name, a_d, a_f=0.9, share=(40, 30, 10, 5, 5, 10), needed=4.0):
    """A model's influential figures over GRID: A_d from a_d(k1, k2); each class's histogram `share`."""
    from checkpoints.report.influential import GRID
    grid = [{"k1": k1, "k2": k2, "A_d": a_d(k1, k2), "r_A": a_d(k1, k2) / a_f} for k1 in GRID for k2 in GRID]
    return {"name": name, "A_f": a_f, "grid": grid, "frequencies": [list(share)] * 2, "coverage": {"median": needed},
            "class_names": ["a", "b"]}


def test_the_influential_claims_follow_the_grid_and_the_histograms():
    """Top-5 share by hand (95 of 100); the best k2 per k1 on the diagonal; k1 = 20 below k1 = k2;
    r_A at 3 against the paper's 0.923; coverage against 5. Each turns when the figures do."""
    from checkpoints.report import influential
    assert influential.top_share([40, 30, 10, 5, 5, 10]) == pytest.approx(0.95)
    assert influential.top_share([1] * 64) == pytest.approx(5 / 64)
    diagonal = lambda k1, k2: 0.88 - 0.01 * abs(k1 - k2) - (0.02 if k1 == 20 and k2 < 20 else 0)  # noqa: E731
    models = [grid_model(name, diagonal) for name in ("ce", "minimax", "lsg")]
    said = influential.influential_claims(models).splitlines()
    assert all(line.count("matches") == 1 for line in said), said
    assert "ce 95%, minimax 95%, lsg 95%" in said[0] and "best k2 is 3 at k1 = 3, 5 at k1 = 5" in said[1]
    assert "(r_A 0.978)" in said[3] and "4 units (ce)" in said[4]
    wide = lambda k1, k2: 0.70 + 0.01 * k2  # noqa: E731  (more units always better, k1 irrelevant; r_A 0.811 at 3)
    models = [grid_model(name, wide, share=[1] * 64, needed=12.0) for name in ("ce", "minimax", "lsg")]
    said = influential.influential_claims(models).splitlines()
    assert all("**does not hold**" in line for line in said), said
    assert "| ce: k1 \\ k2 | 3 | 5 | 10 | 20 |" in influential.grid_table(models[0])


def test_the_two_class_masking_claim_reads_the_influential_units():
    from checkpoints.report import masking
    def model(name, first, sixth, gate=(0.0, 0.0)):
        row = lambda a, b: {"alone": a, "first": a, "sixth": b, "units": 10, "others": 0.9}  # noqa: E731
        return {"name": name, "classes": ["T-shirt/top", "Sandal"], "by": {"gate": row(*gate), "influential": row(first, sixth)}}
    models = [model("ce", 0.5, 0.6), model("lsg", 0.1, 0.05)]
    said = masking.pair_masking_claim(models)
    assert "matches" in said and "LSG 0.100 / 0.050, CE 0.500 / 0.600" in said
    assert "| lsg | influential | 0.100 | 0.100 | 0.050 | 10 | 0.900 |" in masking.pair_masking_table(models)
    models[1]["by"]["influential"]["sixth"] = 0.7
    assert "**does not hold**" in masking.pair_masking_claim(models)


def test_the_pca_claim_compares_the_silhouettes():
    from checkpoints.report import representation
    models = [{"name": "ce", "silhouette": 0.1}, {"name": "minimax", "silhouette": 0.3}]
    assert "matches" in representation.pca_claim(models) and "minimax 0.300 against CE 0.100" in representation.pca_claim(models)
    models[1]["silhouette"] = 0.05
    assert "**does not hold**" in representation.pca_claim(models)


def test_ties_change_nothing_unless_the_means_differ_beyond_the_spreads():
    """Accuracy 0.80 +- 0.01 against 0.81 +- 0.01 (apart by 0.01, within 0.02): nothing; 0.85: a change."""
    models = [seeded("minimax", s, 0.80 + 0.01 * (s == 1) - 0.01 * (s == 2)) for s in range(3)]
    models += [seeded("minimax-ties", s, 0.81 + 0.01 * (s == 1) - 0.01 * (s == 2)) for s in range(3)]
    for m in models:
        m["measured"]["nte_fraction"] = 0.95
    kinds = seeds.by_kind(models)
    said = seeds.ties_claim(kinds["minimax"], kinds["minimax-ties"])
    assert "changes nothing the seeds do not" in said and "accuracy 81.00 +- 1.00 against 80.00 +- 1.00" in said
    for m in models[3:]:
        m["measured"]["accuracy"] += 0.04
    assert "changes the model" in seeds.ties_claim(*(seeds.by_kind(models)[k] for k in ("minimax", "minimax-ties")))
    one = seeds.by_kind(models[:1] + models[3:4])
    assert "cannot tell with one seed of each" in seeds.ties_claim(one["minimax"], one["minimax-ties"])


def test_a_fixed_gate_recorded_before_the_papers_layout_is_named():
    """App. C's gate owns 6 units a class of 64 (10 classes); a record of 7, 6, 7, ... is an older gate's."""
    fresh = seeded("lsg-fixed", 0, 0.8, monopolised=[6] * 10)
    old = seeded("lsg-fixed", 1, 0.8, monopolised=[7, 6, 7, 6, 6, 7, 6, 7, 6, 6])
    assert seeds.stale_fixed_gates([fresh, old]) == ["checkpoints/studies/seeds/lsg-fixed-seed1.pt"]
