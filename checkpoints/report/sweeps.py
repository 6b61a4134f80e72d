"""The minimax paper's Fig. 5: non-target entropy and accuracy against MaxNTE's lambda and minimax's
1 - p_t, mean +- std over seeds (train_sweeps.sh)."""
from __future__ import annotations

from core import tradeoffs

from .common import NTE_BOUND, markdown_table, plt, save_figure


def sweep_points(models: list[dict]) -> dict[str, tradeoffs.Sweep]:
    """The minimax paper's Fig. 5 from the sweeps study (train_sweeps.sh): each sweep's points,
    mean and sample std over the seeds, as the Specificity and cost page folds them."""
    return {sweep.option: sweep for sweep in tradeoffs.sweeps([(m["meta"], m["measured"]) for m in models])}


def sweep_table(sweep: tradeoffs.Sweep, option: str) -> str:
    in_nats = lambda point: {key: None if point[key] is None else point[key] * NTE_BOUND  # noqa: E731
                             for key in ("nte_fraction", "nte_fraction_spread")}
    return markdown_table([option, "seeds", "accuracy", "NTE (nats)", "NTE / log 9", "median SI"], [
        [f"{point['value']:g}", point["seeds"], tradeoffs.cell(point, "accuracy"),
         tradeoffs.cell(in_nats(point), "nte_fraction"), tradeoffs.cell(point, "nte_fraction"),
         tradeoffs.cell(point, "median_si")] for point in sweep.points])


def sweep_claims(sweeps: dict[str, tradeoffs.Sweep]) -> str:
    """Fig. 5's two readings, each checked on the means over seeds."""
    lam, pt = sweeps["lam"].points, sweeps["p_t"].points
    lam_acc = [p["accuracy"] for p in lam]
    falling = all(b < a for a, b in zip(lam_acc, lam_acc[1:]))
    lam_nte = max(p["nte_fraction"] for p in lam) * NTE_BOUND
    by_gap = sorted(pt, key=lambda p: 1 - p["value"])  # 1 - p_t rising, as the paper's axis
    pt_nte = [p["nte_fraction"] for p in by_gap]
    rising = all(b > a for a, b in zip(pt_nte, pt_nte[1:]))
    pt_acc = [p["accuracy"] for p in by_gap]
    stable = max(pt_acc) - min(pt_acc) <= 0.01
    return "\n".join([
        f"- **MaxNTE: accuracy falls as lambda rises, and its entropy stalls below the bound (paper: at about 2.12 "
        f"of 2.197 nats)** {'matches' if falling and lam_nte < NTE_BOUND - 0.01 else '**does not hold**'}: accuracy "
        + " -> ".join(f"{a:.2%}" for a in lam_acc) + f" over lambda " + ", ".join(f"{p['value']:g}" for p in lam)
        + f"; its highest mean NTE is {lam_nte:.3f} nats.",
        f"- **minimax: as 1 - p_t rises the entropy approaches the bound with stable accuracy** "
        f"{'matches' if rising and stable else '**does not hold**'}: NTE / log 9 "
        + " -> ".join(f"{v:.3f}" for v in pt_nte) + " over 1 - p_t " + ", ".join(f"{1 - p['value']:.1f}" for p in by_gap)
        + f", accuracy within {100 * (max(pt_acc) - min(pt_acc)):.2f} points (stable: within 1 point)."])


def sweep_figure(sweeps: dict[str, tradeoffs.Sweep]) -> None:
    """Fig. 5 as the paper draws it: NTE (left axis, the bound dotted) and test accuracy (right
    axis) against lambda and 1 - p_t, mean +- std over the seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, (option, label) in zip(axes, (("lam", "MaxNTE: lambda"), ("p_t", "minimax: 1 - p_t"))):
        points = sorted(sweeps[option].points, key=lambda p: p["value"] if option == "lam" else 1 - p["value"])
        xs = [p["value"] if option == "lam" else 1 - p["value"] for p in points]
        ax.errorbar(xs, [p["nte_fraction"] * NTE_BOUND for p in points],
                    [(p["nte_fraction_spread"] or 0) * NTE_BOUND for p in points], fmt="o-", color="C0", capsize=3)
        ax.axhline(NTE_BOUND, color="C0", linestyle=":")
        ax.set(xlabel=label, ylabel="non-target entropy (nats)", title=label)
        right = ax.twinx()
        right.errorbar(xs, [p["accuracy"] for p in points], [p["accuracy_spread"] or 0 for p in points],
                       fmt="s--", color="C3", capsize=3)
        right.set_ylabel("test accuracy", color="C3")
    fig.tight_layout()
    save_figure(fig, "sweeps.png", 120)
    plt.close(fig)


def sweeps_body(sweeps: dict[str, tradeoffs.Sweep]) -> str:
    """The section's tables, figure and verdicts, or what to run where the sweeps are not here."""
    if not {"p_t", "lam"} <= set(sweeps):
        return ("Not here: neither the sweeps' checkpoints nor checkpoints/studies/sweeps.json. "
                "`bash checkpoints/train_sweeps.sh` (about 15 minutes on 2 CPU cores), then "
                "`.venv/bin/python checkpoints/make_report.py`, fills this section.")
    sweep_figure(sweeps)
    return (f"MaxNTE over lambda:\n\n{sweep_table(sweeps['lam'], 'lambda')}\n\nminimax over p_t:\n\n"
            f"{sweep_table(sweeps['p_t'], 'p_t')}\n\n![sweeps](docs/reproduction/sweeps.png)\n\n{sweep_claims(sweeps)}")
