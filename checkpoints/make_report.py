"""Numbers and plots for REPRODUCTION.md, from `core.analysis` on the bundled checkpoints (with
their per-epoch trajectories and the faithfulness of their maps) and the minimax runs at other
p_t (checkpoints/full_pt/). Full test split, whole training split. Writes
docs/reproduction/figures.json and PNG plots, and prints the markdown tables.

    .venv/bin/python checkpoints/make_report.py
"""
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core.analysis.engine import REPORT, Analyzer, summary  # noqa: E402
from core.store import Store  # noqa: E402

OUT = ROOT / "docs" / "reproduction"
BUNDLED = ["ce", "minimax", "lsg", "maxnte", "label_smoothing", "confidence_penalty"]


def analyse(path: Path, store: Store, faithfulness: bool = True) -> dict:
    analyzer = Analyzer.from_path(path, store)
    results = analyzer.report((*REPORT, "faithfulness") if faithfulness else REPORT)
    row = summary(results, analyzer.meta)
    figures = row["headline"]  # the report's columns, named as the tables below read them
    row.update(accuracy=figures["accuracy"], phi=figures["phi"], gate_density=figures["gate_density"],
               single_class_fraction=row["gate"]["single_class_fraction"], r_A=figures["r_a"],
               spearman_drop_selectivity=figures["rho_drop_selectivity"], spearman_drop_l1=figures["rho_drop_l1"],
               spearman_drop_filter_l1=figures["rho_drop_filter_l1"], c_ic=figures["c_ic"])
    row["selectivity"]["dead"] = row["selectivity"]["dead_count"]
    row["si_histogram"] = results["selectivity"]["histogram"]
    row["p_t"] = analyzer.meta.get("options", {}).get("p_t")
    row["epochs"] = analyzer.meta.get("epochs_completed")
    row["faithfulness"] = results["faithfulness"]["methods"] if "faithfulness" in results else {}
    row["influential_sweep"] = results["influential"]["sweep"]
    row["A_d"], row["A_f"] = results["influential"]["A_d"], results["influential"]["A_f"]
    row["max_class_drop"] = results["unit_ablation"]["max_class_drop"]
    row["mean_overall_drop"] = results["unit_ablation"]["mean_overall_drop"]
    row["largest_overall_drop"] = results["unit_ablation"]["largest_overall_drop"]
    row["within_class_corr"] = results["filter_correlation"]["within_class"]
    row["trajectory"] = results["trajectory"]["epochs"] if results["trajectory"]["available"] else []
    for heavy in ("unit_ablation", "influential", "gate", "headline"):
        row.pop(heavy, None)
    return row


def si_histogram(rows: list[dict], filename: str, title: str, label=lambda r: r["name"]) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    edges = [i / 20 for i in range(21)]
    for r in rows:
        ax.stairs(r["si_histogram"], edges, label=f"{label(r)} (median {r['selectivity']['median']:.2f})", linewidth=2)
    ax.set(xlabel="selectivity index", ylabel="units", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / filename, dpi=120)
    plt.close(fig)


def plots(models: list[dict], full: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    si_histogram(models, "selectivity.png", "Unit selectivity, Fashion-MNIST test set")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for m in models:
        epochs = [e["epoch"] for e in m["trajectory"]]
        for ax, key in zip(axes, ("median_selectivity", "nontarget_fraction", "accuracy")):
            ax.plot(epochs, [e[key] for e in m["trajectory"]], label=m["name"])
    for ax, title in zip(axes, ("median SI", "non-target entropy / log 9", "test accuracy")):
        ax.set(xlabel="epoch", title=title)
    axes[2].set_ylim(0.80, 0.96)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "trajectory.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    maps = list(models[0]["faithfulness"])
    width = 0.8 / len(models)
    for ax, measure, title in zip(axes, ("deletion", "insertion"), ("deletion AUC (lower is better)",
                                                                     "insertion AUC (higher is better)")):
        for i, m in enumerate(models):
            ax.bar([k + i * width for k in range(len(maps))], [m["faithfulness"][name][measure]["mean"] for name in maps],
                   width, label=m["name"], color=f"C{i}")
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(maps))], [models[0]["faithfulness"][n]["label"].split(" (")[0]
                                                                       for n in maps], fontsize=8)
        ax.set(title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "faithfulness.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([m["name"] for m in models], [m["nontarget_entropy"]["mean"] for m in models])
    ax.axhline(models[0]["nontarget_entropy"]["bound"], color="red", linestyle="--", label="log 9")
    ax.set(ylabel="nats", title="Mean non-target entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "nontarget_entropy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(models)
    modes = ["gaussian", "matched", "zero"]
    for i, m in enumerate(models):
        for j, which in enumerate(("influential", "non_influential")):
            xs = [k * 2 + j + i * width for k in range(3)]
            ax.bar(xs, [m["noise_ablation"][mode][which] for mode in modes], width,
                   label=f"{m['name']}" if j == 0 else None, color=f"C{i}", alpha=1.0 if j == 0 else 0.5)
    ax.set_xticks([k * 2 + 0.5 for k in range(3)], [f"{mode}\n(infl. | non-infl.)" for mode in modes])
    ax.set(ylabel="test accuracy", title="Replacing influential vs non-influential features")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "noise_ablation.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), sharey=True)
    for ax, m in zip(axes, models):
        ax.scatter(m["selectivity"]["per_unit"], m["max_class_drop"], s=12)
        ax.set(title=f"{m['name']}: rho {m['spearman_drop_selectivity']:.2f}", xlabel="selectivity")
    axes[0].set_ylabel("largest class-accuracy drop")
    fig.tight_layout()
    fig.savefig(OUT / "unit_ablation.png", dpi=120)
    plt.close(fig)

    if full:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        pts = [r["p_t"] for r in full]
        ax.plot(pts, [r["selectivity"]["median"] for r in full], "o-", label="median SI")
        ax.plot(pts, [r["nontarget_entropy"]["fraction"] for r in full], "s-", label="non-target entropy / log 9")
        ax.plot(pts, [r["accuracy"] for r in full], "^-", label="test accuracy")
        ax.invert_xaxis()
        ax.set(xlabel="p_t", title="Minimax p_t (10-epoch schedule)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(OUT / "pt_full.png", dpi=120)
        plt.close(fig)


def table(rows: list[dict], label: str) -> str:
    lines = [f"| {label} | accuracy | median SI | dead | NTE (nats) | NTE / log 9 | Phi | density | single-class units | r_A (k=5) | noise infl. / non-infl. | rho(drop, SI) | rho(drop, L1) | C_IC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = r["noise_ablation"]["gaussian"]
        lines.append(f"| {r['name']} | {r['accuracy']:.4f} | {r['selectivity']['median']:.3f} | {r['selectivity']['dead']} | "
                     f"{r['nontarget_entropy']['mean']:.3f} | {r['nontarget_entropy']['fraction']:.3f} | {r['phi']:.3f} | "
                     f"{r['gate_density']:.3f} | {r['single_class_fraction']:.2f} | {r['r_A']:.3f} | "
                     f"{g['influential']:.4f} / {g['non_influential']:.4f} | {r['spearman_drop_selectivity']:.3f} | "
                     f"{r['spearman_drop_l1']:.3f} | {r['c_ic']:.4f} |")
    return "\n".join(lines)


def faithfulness_table(models: list[dict]) -> str:
    maps = list(models[0]["faithfulness"])
    lines = ["| model | " + " | ".join(models[0]["faithfulness"][n]["label"].split(" (")[0] for n in maps) + " |",
             "|---|" + "---|" * len(maps)]
    for measure in ("deletion", "insertion", "road_morf", "road_lerf"):
        for m in models:
            cells = [f"{m['faithfulness'][n][measure]['mean']:.3f} ± {m['faithfulness'][n][measure]['std']:.3f}"
                     for n in maps]
            lines.append(f"| {m['name']}: {measure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    store = Store()
    models = [analyse(ROOT / "checkpoints" / f"{name}.pt", store) for name in BUNDLED
              if (ROOT / "checkpoints" / f"{name}.pt").exists()]
    # p_t on the earlier 10-epoch schedule: the runs that chose the bundle's p_t
    full = sorted((analyse(p, store, faithfulness=False) for p in (ROOT / "checkpoints" / "full_pt").glob("*.pt")),
                  key=lambda r: -r["p_t"])
    plots(models, full)
    (OUT / "figures.json").write_text(json.dumps({"bundled": models, "full_pt": full}, indent=1))
    print(table(models, "model"))
    print()
    print(table(full, "10-epoch schedule"))
    print()
    print(faithfulness_table(models))
    for m in models:
        noise = m["noise_ablation"]
        print(m["name"], "epochs", m["epochs"], "SI quartiles",
              [round(q, 3) for q in statistics.quantiles(m["selectivity"]["per_unit"], n=4)],
              "units >= 0.9:", sum(si >= 0.9 for si in m["selectivity"]["per_unit"]),
              {k: (round(v["influential"], 4), round(v["non_influential"], 4)) for k, v in noise.items()},
              "A_d", round(m["A_d"], 4), "A_f", round(m["A_f"], 4), "mean/largest overall drop",
              round(m["mean_overall_drop"], 4), round(m["largest_overall_drop"], 4), "within", round(m["within_class_corr"], 4))


if __name__ == "__main__":
    main()
