"""Twenty LSG models (train_lsg20.sh): the units each class monopolises and those shared, against
the LSG paper's count over 20 models (Sec. 4.3)."""
from __future__ import annotations

import statistics

from core import lsg, tradeoffs
from core.analysis.engine import Analyzer

from .common import TARGET_DENSITY, markdown_table, near, plt, save_figure

PAPER_MONOPOLISED, PAPER_SHARED = 0.10, 0.10  # LSG Sec. 4.3: a class owns about 10% of the filters, 10% are shared
SETTLED = 0.05  # a trained gate within this of its target density has settled


def lsg20_figures(analyzer: Analyzer) -> dict:
    """What the section reads of a model: its test accuracy and its trained gate's units, by the
    definitions the gate analysis and the Specificity and cost page use (core.lsg), without the
    gate analysis's Phi fit, which the section does not read."""
    gate = analyzer.model.gate.detach()
    return {"measured": {"accuracy": analyzer.run("accuracy")["accuracy"],
                         "single_class_units": lsg.single_class_fraction(gate), "shared_units": lsg.shared_fraction(gate)},
            "gate": {"source": "trained", "density": float(lsg.gate_density(gate)),
                     "monopolised": lsg.monopolised_units(gate)}}


def lsg20_rows(models: list[dict]) -> list[dict]:
    """Per model of the twenty-LSG study: its seed, accuracy, trained gate's density, the units
    each class monopolises and the shares of single-class, shared and closed units."""
    rows = []
    for m in models:
        single, shared = m["measured"]["single_class_units"], m["measured"]["shared_units"]
        rows.append({"seed": m["meta"]["seed"], "accuracy": m["measured"]["accuracy"], "density": m["gate"]["density"],
                     "monopolised": m["gate"]["monopolised"], "units": m["meta"]["num_features"],
                     "single": single, "shared": shared, "closed": 1 - single - shared})
    return sorted(rows, key=lambda r: r["seed"])


def lsg20_table(rows: list[dict]) -> str:
    return markdown_table(["seed", "accuracy", "gate density", "units each class monopolises", "single-class", "shared",
                           "closed"],
                          [[r["seed"], f"{r['accuracy']:.4f}", f"{r['density']:.3f}", " ".join(map(str, r["monopolised"])),
                            f"{r['single']:.0%}", f"{r['shared']:.0%}", f"{r['closed']:.0%}"] for r in rows])


def settled(rows: list[dict]) -> list[dict]:
    """The models whose trained gate came within SETTLED of its target density: a gate still dense
    gives no unit to one class alone, so it says nothing of how many a class takes."""
    return [r for r in rows if abs(r["density"] - TARGET_DENSITY) <= SETTLED]


def lsg20_claims(rows: list[dict]) -> str:
    """The paper's count over 20 models, decided on the models whose gates settled on the target."""
    done = settled(rows)
    every = tradeoffs.over_seeds(rows, ["density", "accuracy"])
    said = [f"- The trained gates' density: {len(done)} of {len(rows)} models came within {SETTLED} of the target "
            f"{TARGET_DENSITY} (density {every['density']:.3f} +- {every['density_spread'] or 0:.3f}, "
            f"accuracy {every['accuracy']:.2%} +- {every['accuracy_spread'] or 0:.2%}); the verdicts below read those."]
    if not done:
        return "\n".join([*said, "- **Each class monopolises about 10% of the units; about 10% are shared**: cannot "
                           "tell, no gate settled."])
    units = done[0]["units"]
    owned = [n for r in done for n in r["monopolised"]]
    fold = tradeoffs.over_seeds([{**r, "per_class": statistics.fmean(r["monopolised"])} for r in done],
                                ["per_class", "shared", "closed"])
    per_class, shared = fold["per_class"], fold["shared"]
    said += [
        f"- **Each class monopolises about 10% of the units (LSG paper Sec. 4.3: 6 of ResNet-20's 64, over 20 CIFAR-10 "
        f"models)** {'matches' if near(per_class / units, PAPER_MONOPOLISED) else '**does not hold**'}: "
        f"{per_class:.1f} +- {fold['per_class_spread'] or 0:.1f} of {units} a class ({per_class / units:.1%}; mean over "
        f"classes, then mean and sample std over {len(done)} models), from {min(owned)} to {max(owned)} over their "
        f"{len(owned)} classes.",
        f"- **About 10% of the units are shared by classes (the same section)** "
        f"{'matches' if near(shared, PAPER_SHARED) else '**does not hold**'}: {shared:.1%} +- "
        f"{fold['shared_spread'] or 0:.1%} are open to two classes or more; {fold['closed']:.1%} are open to none "
        "(the paper's fixed gate, built on this count, has 6 units a class and 4 open to all: 9.4% and 6.2%)."]
    return "\n".join(said)


def lsg20_figure(rows: list[dict]) -> None:
    """How many units a class monopolises, over every class of the settled models, the paper's 6 marked."""
    owned = [n for r in rows for n in r["monopolised"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(owned, bins=range(min(owned), max(owned) + 2), align="left", rwidth=0.8, color="C1")
    ax.axvline(PAPER_MONOPOLISED * rows[0]["units"], color="k", linestyle=":", label="paper: about 10% of the units")
    ax.set(xlabel="units the class monopolises", ylabel="classes",
           title=f"{len(rows)} LSG models whose gates settled, {len(owned)} classes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "lsg20.png", 110)
    plt.close(fig)


def lsg20_body(models: list[dict]) -> str:
    """The section's table, figure and verdicts, or what to run where the study is not here."""
    if not models:
        return ("Not here: neither the study's checkpoints nor checkpoints/studies/lsg20.json. "
                "`bash checkpoints/train_lsg20.sh` (about an hour on 2 CPU cores), then "
                "`.venv/bin/python checkpoints/make_report.py`, fills this section.")
    rows = lsg20_rows(models)
    figure = ""
    if settled(rows):
        lsg20_figure(settled(rows))
        figure = "![lsg20](docs/reproduction/lsg20.png)\n\n"
    return f"{lsg20_table(rows)}\n\n{figure}{lsg20_claims(rows)}"
