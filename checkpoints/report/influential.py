"""The ReLU+FC paper's choices of Alg. 1 (Figs. 2, 3; Sec. 4): the per-class histogram of top-k1
indices, k1 apart from k2, and k1 chosen for 90% coverage, on the bundled CE, minimax and LSG."""
from __future__ import annotations

import statistics

from core.analysis.engine import Analyzer

from .common import markdown_table, plt, save_figure

GRID = (3, 5, 10, 20)  # k1 and k2, each against each (the paper's Fig. 3 sweeps both on ResNet-20)
PAPER_K2_3 = 84.16 / 91.17  # r_A at k2 = 3 (Sec. 5.2.1: 84.16% of its 91.17%)
CONCENTRATED = 0.5  # "the mass concentrates around a few indices": half of it on k2 = 5 of the units
FIG2_CLASS = 0  # the class whose histogram is drawn (the paper draws one)


def influential_figures(analyzer: Analyzer) -> dict:
    """A_d and r_A over the k1 x k2 grid, the index histogram at k1 = k2 = 5, and the coverage."""
    base = analyzer.run("influential")
    grid = []
    for k1 in GRID:
        for k2 in GRID:
            run = analyzer.run("influential", k1=k1, k2=k2)
            grid.append({"k1": k1, "k2": k2, "A_d": run["A_d"], "r_A": run["r_A"]})
    return {"name": analyzer.name, "A_f": base["A_f"], "grid": grid, "frequencies": base["frequencies"],
            "coverage": base["coverage"], "class_names": analyzer.meta["class_names"]}


def top_share(counts: list[int], k: int = 5) -> float:
    """The share of a class's histogram on its k most frequent indices (uniform: k / K)."""
    return sum(sorted(counts, reverse=True)[:k]) / sum(counts) if sum(counts) else 0.0


def grid_table(model: dict) -> str:
    at = {(g["k1"], g["k2"]): g for g in model["grid"]}
    return markdown_table([f"{model['name']}: k1 \\ k2", *map(str, GRID)],
                          [[k1, *(f"{100 * at[k1, k2]['A_d']:.2f} ({at[k1, k2]['r_A']:.3f})" for k2 in GRID)]
                           for k1 in GRID])


def influential_claims(models: list[dict]) -> str:
    """The paper's readings of Figs. 2 and 3 and of its k1, each decided on the numbers."""
    by = {m["name"]: m for m in models}
    ce = by["ce"]
    at = {(g["k1"], g["k2"]): g for g in ce["grid"]}
    share = {m["name"]: statistics.fmean(top_share(row) for row in m["frequencies"]) for m in models}
    best = {k1: max(GRID, key=lambda k2: at[k1, k2]["A_d"]) for k1 in GRID}
    lower = [k2 for k2 in GRID[:-1] if at[GRID[-1], k2]["A_d"] < at[k2, k2]["A_d"]]
    needed = {m["name"]: m["coverage"]["median"] for m in models}
    units = len(ce["frequencies"][0])
    said = lambda holds: "matches" if holds else "**does not hold**"  # noqa: E731
    return "\n".join([
        f"- **The top-k1 indices of a class concentrate on a few units (Fig. 2)** "
        f"{said(min(share.values()) >= CONCENTRATED)}: the 5 most frequent of the {units} indices hold "
        + ", ".join(f"{name} {s:.0%}" for name, s in share.items())
        + f" of a class's histogram (mean over classes; uniform would be {5 / units:.0%}).",
        f"- **For a given k1 the best k2 is k1 (Fig. 3)** {said(all(best[k1] == k1 for k1 in GRID))}: on CE the "
        "best k2 is " + ", ".join(f"{best[k1]} at k1 = {k1}" for k1 in GRID) + ".",
        f"- **A very large k1 does worse than k1 = k2 (Fig. 3)** {said(len(lower) == len(GRID) - 1)}: on CE, k1 = "
        f"{GRID[-1]} against k1 = k2 at k2 = " + ", ".join(
            f"{k2}: {100 * at[GRID[-1], k2]['A_d']:.2f}% vs {100 * at[k2, k2]['A_d']:.2f}%" for k2 in GRID[:-1]) + ".",
        f"- **Three units a class keep most of the accuracy (Sec. 5.2.1: 84.16% of 91.17%, r_A {PAPER_K2_3:.3f})** "
        f"{said(at[3, 3]['r_A'] >= PAPER_K2_3)}: CE at k1 = k2 = 3 {100 * at[3, 3]['A_d']:.2f}% of "
        f"{100 * ce['A_f']:.2f}% (r_A {at[3, 3]['r_A']:.3f}).",
        f"- **k1 = 5 covers 90% of an image's activation (Sec. 4, on CIFAR-10)** "
        f"{said(max(needed.values()) <= 5)}: the median image needs "
        + ", ".join(f"{needed[n]:g} units ({n})" for n in needed) + f" of {units} for 90% of its activation."])


def influential_figure(models: list[dict]) -> None:
    """Fig. 2 as the paper draws it: one class's relative index frequencies at k1 = 5, per model."""
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 2.8), sharey=True)
    for ax, m in zip(axes, models):
        counts = m["frequencies"][FIG2_CLASS]
        ax.bar(range(len(counts)), [c / sum(counts) for c in counts], width=1.0, color="C0")
        ax.set(title=f"{m['name']}: {m['class_names'][FIG2_CLASS]}", xlabel="unit index")
    axes[0].set_ylabel("relative frequency in top 5")
    fig.tight_layout()
    save_figure(fig, "influential_frequencies.png", 110)
    plt.close(fig)


def influential_body(models: list[dict]) -> str:
    influential_figure(models)
    tables = "\n\n".join(grid_table(m) for m in models)
    return (f"![index frequencies](docs/reproduction/influential_frequencies.png)\n\n"
            f"Decomposed accuracy A_d in % (r_A) over k1 (rows) and k2 (columns):\n\n{tables}\n\n"
            f"{influential_claims(models)}")
