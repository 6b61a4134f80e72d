"""Twenty LSG models (train_lsg20.sh): the units each class monopolises and those shared, against
the LSG paper's count over 20 models (Sec. 4.3)."""
from __future__ import annotations

import statistics

from .common import TARGET_DENSITY, markdown_table, plt, save_figure

PAPER_MONOPOLISED, PAPER_SHARED = 0.10, 0.10  # LSG Sec. 4.3: a class owns about 10% of the filters, 10% are shared
SETTLED = 0.05  # a trained gate within this of its target density has settled


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


def lsg20_claims(rows: list[dict]) -> str:
    """The paper's count over 20 models, decided on the models whose gates settled on the target."""
    fold = lambda values: (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)  # noqa: E731
    settled = [r for r in rows if abs(r["density"] - TARGET_DENSITY) <= SETTLED]
    density, spread = fold([r["density"] for r in rows])
    said = [f"- **The trained gates reach the target density {TARGET_DENSITY}**: {len(settled)} of {len(rows)} models "
            f"are within {SETTLED} of it (density {density:.3f} +- {spread:.3f}); the verdicts below read those."]
    if not settled:
        return "\n".join([*said, "- **Each class monopolises about 10% of the units; about 10% are shared**: cannot "
                           "tell, no gate settled."])
    units = settled[0]["units"]
    owned = [n for r in settled for n in r["monopolised"]]
    per_class, per_class_spread = fold([statistics.fmean(r["monopolised"]) for r in settled])
    shared, shared_spread = fold([r["shared"] for r in settled])
    within = lambda share, paper: abs(share - paper) <= paper / 2  # noqa: E731
    said += [
        f"- **Each class monopolises about 10% of the units (LSG paper Sec. 4.3: 6 of ResNet-20's 64, over 20 CIFAR-10 "
        f"models)** {'matches' if within(per_class / units, PAPER_MONOPOLISED) else '**does not hold**'}: "
        f"{per_class:.1f} +- {per_class_spread:.1f} of {units} a class ({per_class / units:.1%}; mean over classes, "
        f"then mean and sample std over {len(settled)} models), from {min(owned)} to {max(owned)} over the "
        f"{len(owned)} classes of all models.",
        f"- **About 10% of the units are shared by classes (the same section)** "
        f"{'matches' if within(shared, PAPER_SHARED) else '**does not hold**'}: {shared:.1%} +- {shared_spread:.1%} "
        f"are open to two classes or more; {statistics.fmean(r['closed'] for r in settled):.1%} are open to none "
        "(the paper's fixed gate, built on this count, has 6 units a class and 4 open to all: 9.4% and 6.2%)."]
    return "\n".join(said)


def lsg20_figure(rows: list[dict]) -> None:
    """How many units a class monopolises, over every class of every model, the paper's 6 marked."""
    owned = [n for r in rows for n in r["monopolised"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(owned, bins=range(min(owned), max(owned) + 2), align="left", rwidth=0.8, color="C1")
    ax.axvline(PAPER_MONOPOLISED * rows[0]["units"], color="k", linestyle=":", label="paper: about 6")
    ax.set(xlabel="units the class monopolises", ylabel="classes (all models)",
           title=f"{len(rows)} LSG models, {len(owned)} classes")
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
    lsg20_figure(rows)
    return f"{lsg20_table(rows)}\n\n![lsg20](docs/reproduction/lsg20.png)\n\n{lsg20_claims(rows)}"
