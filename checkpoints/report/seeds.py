"""Over seeds (train_seeds.sh): both papers' Table 1 as mean +- std, the fixed gate's Fig. 7 and
Table 2."""
from __future__ import annotations

import statistics

from core import lsg, tradeoffs

from .common import markdown_table, plt, save_figure
from .studies import FIG7_KINDS, MATRIX_SEED, kind_of

SEED_KINDS = {  # train_seeds.sh's runs, in the tables' order: file stem before "-seed" -> what it is
    "ce": "cross-entropy (STD)", "confidence_penalty": "confidence penalty", "label_smoothing": "label smoothing",
    "minimax": "minimax", "minimax-ties": "minimax, a random class among tied minima (Sec. 3.2.2)",
    "lsg": "LSG (trained gate)", "lsg-fixed": "LSG, fixed gate (App. C)",
    "lsg-tight": "LSG, gate tightened to binary after 2 epochs (Sec. 3.3)"}
NO_CORRELATION = 0.01  # a C_IC below this is no correlation: half of it means nothing


def by_kind(models: list[dict]) -> dict[str, dict]:
    """The seeds study's models grouped by kind: the measures', the gate's density's and C_IC's
    mean and sample std over seeds (tradeoffs.over_seeds, as the Specificity and cost page folds seeds)."""
    keys = [*(m.key for m in tradeoffs.MEASURES), "gate_density", "c_ic"]
    kinds = {}
    for kind in SEED_KINDS:
        members = [m for m in models if kind_of(m["file"]) == kind]
        if members:
            rows = [{**m["measured"], "gate_density": m["gate"]["density"], "c_ic": m["filters"]["c_ic"]} for m in members]
            kinds[kind] = {"seeds": len(members), "members": members, **tradeoffs.over_seeds(rows, keys)}
    return kinds


def seeds_table(kinds: dict[str, dict]) -> str:
    keys = ("accuracy", "nll", "median_si", "nte_fraction", "phi", "gate_density", "c_ic")
    return markdown_table(["model", "seeds", "accuracy", "test CE (nats)", "median SI", "NTE / log 9", "Phi",
                           "gate density", "C_IC"],
                          [[SEED_KINDS[kind], k["seeds"], *(tradeoffs.cell(k, key) for key in keys)]
                           for kind, k in kinds.items()])


def seeds_claims(kinds: dict[str, dict]) -> str:
    """The papers' claims that need several runs, each decided on the means over seeds."""
    acc = {kind: (k["accuracy"], k["accuracy_spread"] or 0) for kind, k in kinds.items()}
    rivals = [kind for kind in ("ce", "confidence_penalty", "label_smoothing") if kind in acc]
    best = max(rivals, key=lambda kind: acc[kind][0])
    ahead = acc["minimax"][0] - acc[best][0]
    beyond = abs(ahead) > acc["minimax"][1] + acc[best][1]
    ce, gated, fixed = kinds["ce"], kinds["lsg"], kinds["lsg-fixed"]
    ratio = {kind: kinds[kind]["c_ic"] / ce["c_ic"] for kind in ("lsg", "lsg-fixed")}
    return "\n".join([
        f"- **Minimax is as accurate as the output regularisers or more (minimax paper Table 1: ResNet-18 on "
        f"CIFAR-10, minimax 95.33 +- 0.12 against 94.94-95.11)** "
        f"{'matches' if ahead >= 0 else '**does not hold**'}: minimax {100 * acc['minimax'][0]:.2f} +- "
        f"{100 * acc['minimax'][1]:.2f}, the best of the others ({SEED_KINDS[best]}) {100 * acc[best][0]:.2f} +- "
        f"{100 * acc[best][1]:.2f}: minimax {'ahead' if ahead >= 0 else 'behind'} by {100 * abs(ahead):.2f} points, "
        f"{'more' if beyond else 'less'} than the two spreads together.",
        f"- **LSG keeps CE's accuracy and cross-entropy and lowers Phi (LSG paper Table 1: 0.9062 vs 0.9046, "
        f"Phi 0.2203 vs 0.8234)** {'matches' if gated['phi'] < ce['phi'] and gated['accuracy'] >= ce['accuracy'] - 0.01 else '**does not hold**'}: "
        f"accuracy {gated['accuracy']:.4f} vs {ce['accuracy']:.4f}, test CE {gated['nll']:.4f} vs {ce['nll']:.4f}, "
        f"Phi {gated['phi']:.4f} vs {ce['phi']:.4f}.",
        f"- **Inter-class filter correlation under LSG is about half of STD's (LSG paper Table 2, ResNet-20: "
        f"0.1022 vs 0.1648, a ratio of 0.62)** "
        + (f"cannot tell: STD's C_IC is {ce['c_ic']:.4f}, no correlation to halve (the fixed gate's "
           f"{fixed['c_ic']:.4f}, the trained gate's {gated['c_ic']:.4f})." if ce["c_ic"] < NO_CORRELATION else
           f"{'matches' if ratio['lsg-fixed'] <= 0.7 else '**does not hold**'} for the fixed gate the paper used "
           f"there: C_IC {fixed['c_ic']:.4f} vs {ce['c_ic']:.4f} (ratio {ratio['lsg-fixed']:.2f}); the trained "
           f"gate's is {gated['c_ic']:.4f} (ratio {ratio['lsg']:.2f})."),
        *([ties_claim(kinds["minimax"], kinds["minimax-ties"])] if "minimax-ties" in kinds else []),
    ])


def ties_claim(first: dict, drawn: dict) -> str:
    """Whether drawing the least likely class at random among tied minima (the paper) rather than
    taking the first changes the model beyond what the seeds change: accuracy and NTE apart by
    more than their two spreads together."""
    apart = {key: abs(drawn[key] - first[key]) > (drawn[f"{key}_spread"] or 0) + (first[f"{key}_spread"] or 0)
             for key in ("accuracy", "nte_fraction")}
    said = ("cannot tell with one seed of each (no spread to compare with)" if min(first["seeds"], drawn["seeds"]) < 2
            else "changes the model" if any(apart.values()) else "changes nothing the seeds do not")
    return (f"- **Ties among the least likely classes (minimax paper Sec. 3.2.2: one drawn at random; this tool took "
            f"the first before `--random-ties`)**: {said}: "
            f"accuracy {100 * drawn['accuracy']:.2f} +- {100 * (drawn['accuracy_spread'] or 0):.2f} against "
            f"{100 * first['accuracy']:.2f} +- {100 * (first['accuracy_spread'] or 0):.2f}, NTE / log 9 "
            f"{drawn['nte_fraction']:.3f} against {first['nte_fraction']:.3f}.")


def seeds_figure(kinds: dict[str, dict]) -> None:
    """Fig. 7 as the paper draws it: the filter correlation matrix of a CE and a fixed-gate LSG
    model (seed MATRIX_SEED, ordered by the gate's classes), and (e) the share of entries above a
    threshold, mean over seeds, for CE, LSG and the fixed gate."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    for ax, kind in zip(axes, FIG7_KINDS):
        matrix = next(m["filters"]["matrix"] for m in kinds[kind]["members"] if m["filters"]["matrix"] is not None)
        shown = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=f"{SEED_KINDS[kind]}, seed {MATRIX_SEED}", xticks=[], yticks=[])
    fig.colorbar(shown, ax=axes[1], fraction=0.046, label="correlation")
    for kind in [k for k in ("ce", "lsg", "lsg-fixed", "lsg-tight") if k in kinds]:
        members = kinds[kind]["members"]
        thresholds = members[0]["filters"]["thresholds"]
        curve = [statistics.fmean(m["filters"]["redundancy"][i] for m in members) for i in range(len(thresholds))]
        axes[2].plot(thresholds, curve, marker="o", label=SEED_KINDS[kind])
    axes[2].set(xlabel="threshold", ylabel="share of entries above it", title="(e) redundancy, mean over seeds")
    axes[2].legend(fontsize=8)
    save_figure(fig, "seeds.png", 120)
    plt.close(fig)


def seeds_body(models: list[dict]) -> str:
    """The section's table, figure and verdicts, or what to run where the study is not here."""
    kinds = by_kind(models)
    if not {"ce", "minimax", "lsg", "lsg-fixed"} <= set(kinds):
        return ("Not here: neither the study's checkpoints nor checkpoints/studies/seeds.json. "
                "`bash checkpoints/train_seeds.sh`, then `.venv/bin/python checkpoints/make_report.py`, fills this "
                "section.")
    seeds_figure(kinds)
    stale = stale_fixed_gates(kinds["lsg-fixed"]["members"])
    note = (f"\n\n**Trained with an earlier fixed gate** (not App. C's): {', '.join(stale)}; "
            "`ONLY=lsg-fixed bash checkpoints/train_seeds.sh` retrains them." if stale else "")
    return f"{seeds_table(kinds)}\n\n![seeds](docs/reproduction/seeds.png)\n\n{seeds_claims(kinds)}{note}"


def stale_fixed_gates(members: list[dict]) -> list[str]:
    """The fixed-gate models whose recorded gate is not today's block_gate (units each class
    owns): a record kept from before the gate followed the paper's Fig. 9."""
    return [m["file"] for m in members if m["gate"]["monopolised"] != lsg.monopolised_units(
        lsg.block_gate(len(m["gate"]["monopolised"]), m["meta"]["num_features"]))]
