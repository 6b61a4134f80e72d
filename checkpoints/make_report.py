"""Numbers and plots for REPRODUCTION.md, from `core.analysis` on the bundled checkpoints (with
their per-epoch trajectories and the faithfulness of their maps), the minimax runs at other p_t
(checkpoints/full_pt/), the unit-ablation controls (checkpoints/controls/), the ViTs, and the
studies of many models (checkpoints/studies/: sweeps, seeds, the RS networks, twenty LSG models).
Full test split, whole training split. Writes docs/reproduction/figures.json and PNG plots, and
REPRODUCTION.md from docs/reproduction/REPRODUCTION.md.in with every table filled in by this
script (no number in the report is typed by hand). Each section is a module of checkpoints/report/.

    .venv/bin/python checkpoints/make_report.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checkpoints.report.bundle import (BUNDLED, CONTROLS, MAPS_CLASS, VIT, adversarial_table, analyse,  # noqa: E402
                                       claims_table, detail_table, faithfulness_table, influential_maps_table,
                                       masking_table, noise_table, table, trajectory_table)
from checkpoints.report.bundle_figures import influential_maps_figure, plots  # noqa: E402
from checkpoints.report.common import OUT  # noqa: E402
from checkpoints.report.controls import controls_table, controls_verdict  # noqa: E402
from checkpoints.report.influential import influential_body, influential_figures  # noqa: E402
from checkpoints.report.lsg20 import lsg20_body, lsg20_figures  # noqa: E402
from checkpoints.report.masking import pair_masking_claim, pair_masking_figures, pair_masking_table  # noqa: E402
from checkpoints.report.representation import pca_body, pca_figures  # noqa: E402
from checkpoints.report.rs import rs_body, rs_figures  # noqa: E402
from checkpoints.report.seeds import seeds_body  # noqa: E402
from checkpoints.report.studies import retrained_alike, seed_figures, study  # noqa: E402
from checkpoints.report.sweeps import sweep_points, sweeps_body  # noqa: E402
from checkpoints.report.vit import vit_table, vit_verdict  # noqa: E402
from core.analysis.engine import Analyzer  # noqa: E402
from core.store import Store  # noqa: E402

TEMPLATE = OUT / "REPRODUCTION.md.in"  # the prose; every number comes from the tables filled in here
TARGET = ROOT / "REPRODUCTION.md"


def main():
    store = Store()
    models = [analyse(ROOT / "checkpoints" / f"{name}.pt", store) for name in BUNDLED
              if (ROOT / "checkpoints" / f"{name}.pt").exists()]
    # p_t on the earlier 10-epoch schedule: the runs that chose the bundle's p_t
    full = sorted((analyse(p, store, faithfulness=False) for p in (ROOT / "checkpoints" / "full_pt").glob("*.pt")),
                  key=lambda r: -r["p_t"])
    vits = [analyse(ROOT / "checkpoints" / f"{name}.pt", store, faithfulness=False) for name in VIT
            if (ROOT / "checkpoints" / f"{name}.pt").exists()]
    controls = [analyse(ROOT / "checkpoints" / "controls" / f"{name}.pt", store, faithfulness=False) for name in CONTROLS
                if (ROOT / "checkpoints" / "controls" / f"{name}.pt").exists()]
    trio = {name: Analyzer.from_path(ROOT / "checkpoints" / f"{name}.pt", store) for name in ("ce", "minimax", "lsg")}
    influential = [influential_figures(trio[name]) for name in ("ce", "minimax", "lsg")]
    pairs = [pair_masking_figures(trio[name]) for name in ("ce", "lsg")]
    pcas = [pca_figures(trio[name]) for name in ("ce", "minimax")]
    swept = study("sweeps", store, seed_figures)
    sweeps = sweep_points(swept)
    seeds = study("seeds", store, seed_figures)
    rs = study("rs", store, rs_figures)
    twenty = study("lsg20", store, lsg20_figures)
    # the bundle's CE beside the controls: the same questions on a model trained to convergence
    reference = [{**m, "name": f"{m['name']} (bundled, {m['epochs']} epochs)"} for m in models if m["name"] == "ce"]
    plots(models, full)
    influential_maps_figure(models)
    (OUT / "figures.json").write_text(json.dumps({"bundled": models, "full_pt": full, "vit": vits, "controls": controls,
                                                "sweeps": {k: v.points for k, v in sweeps.items()}, "influential": influential,
                                                "pair_masking": pairs,
                                                "pca": [{k: v for k, v in m.items() if k not in ("coords", "labels")}
                                                        for m in pcas]}, indent=1))
    tables = {"results_table": table(models, "model"), "detail_table": detail_table(models),
              "noise_table": noise_table(models), "claims_table": claims_table(models),
              "masking_table": masking_table(models),
              "pair_masking_table": pair_masking_table(pairs), "pair_masking_claim": pair_masking_claim(pairs),
              "influential_body": influential_body(influential), "pca_body": pca_body(pcas), "adversarial_table": adversarial_table(models),
              "influential_maps_table": influential_maps_table(models), "maps_class": MAPS_CLASS, "trajectory_table": trajectory_table(models),
              "faithfulness_table": faithfulness_table(models), "pt_table": table(full, "10-epoch schedule"),
              "epochs": models[0]["epochs"],
              "vit_table": vit_table(models, vits) if len(vits) == len(VIT) else "(the ViT trio is not trained yet)",
              "vit_verdict": vit_verdict(models, vits) if len(vits) == len(VIT) else "",
              "vit_epochs": vits[0]["epochs"] if vits else 0,
              "controls_table": controls_table([*controls, *reference]) if len(controls) == len(CONTROLS) else "(the controls are not trained yet)",
              "sweeps_body": sweeps_body(sweeps), "seeds_body": seeds_body(seeds), "rs_body": rs_body(rs), "lsg20_body": lsg20_body(twenty),
              "retrained_alike": retrained_alike(swept, seeds, rs, twenty),
              "controls_verdict": controls_verdict([*controls, *reference]) if len(controls) == len(CONTROLS) else ""}
    TARGET.write_text(TEMPLATE.read_text().format_map(tables))
    print(f"wrote {TARGET.relative_to(ROOT)} and {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
