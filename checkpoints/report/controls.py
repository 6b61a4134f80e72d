"""The unit-ablation abstract's controls (random rotation, batch norm, dropout): table and verdicts."""
from __future__ import annotations

from .common import markdown_table


def controls_table(models: list[dict]) -> str:
    """One unit zeroed against one randomly rotated direction zeroed (rotation_control), per control."""
    header = ["model", "accuracy", "median SI", "one unit: mean / largest class drop",
              "one rotated direction: mean / largest class drop", "one unit: mean / largest overall drop",
              "one rotated direction: mean / largest overall drop", "rho(class drop, SI)", "rho(overall drop, SI)"]
    return markdown_table(header, [
        [m["name"], f"{m['headline']['accuracy']:.4f}", f"{m['selectivity']['median']:.3f}",
         f"{r['unit_mean_max_class_drop']:.2%} / {r['unit_largest_class_drop']:.2%}",
         f"{r['mean_max_class_drop']:.2%} / {r['largest_class_drop']:.2%}",
         f"{m['mean_overall_drop']:.3%} / {m['largest_overall_drop']:.3%}",
         f"{r['mean_overall_drop']:.3%} / {r['largest_overall_drop']:.3%}",
         f"{m['headline']['rho_drop_selectivity']:.3f}", f"{m['rho_overall_si']:.3f}"]
        for m in models for r in (m["rotation"],)])


def controls_verdict(models: list[dict]) -> str:
    """The abstract's claims, each answered from the control models' figures."""
    by = {m["name"]: m for m in models}
    mean_drop = {n: m["rotation"]["unit_mean_max_class_drop"] for n, m in by.items()}
    rotated = {n: m["rotation"]["mean_max_class_drop"] for n, m in by.items()}
    units_matter = [n for n in by if mean_drop[n] > rotated[n]]
    rho = {n: (m["headline"]["rho_drop_selectivity"], m["rho_overall_si"]) for n, m in by.items()}
    class_better = [n for n in by if rho[n][0] > rho[n][1]]
    bn, nobn, dropout = by["ce-bn"], by["ce-nobn"], by["ce-dropout0.5"]
    said = [
        "- **Does zeroing one unit hurt single classes more than zeroing a random direction?** "
        + ("yes" if len(units_matter) == len(by) else f"only in {', '.join(units_matter)}" if units_matter else "no")
        + ": the mean largest class drop of one unit against one rotated direction is "
        + "; ".join(f"{n} {mean_drop[n]:.2%} vs {rotated[n]:.2%}" for n in by) + ".",
        "- **Does selectivity predict the class drop better than the overall drop?** "
        + ("yes" if len(class_better) == len(by) else f"only in {', '.join(class_better)}" if class_better else "no")
        + ": Spearman's rho with SI, class drop against overall drop, is "
        + "; ".join(f"{n} {rho[n][0]:.3f} vs {rho[n][1]:.3f}" for n in by) + ".",
        f"- **Batch norm**: without it the mean largest class drop of one unit is {mean_drop['ce-nobn']:.2%} "
        f"(with it {mean_drop['ce-bn']:.2%}), the mean overall drop {nobn['mean_overall_drop']:.3%} "
        f"({bn['mean_overall_drop']:.3%}), the median SI {nobn['selectivity']['median']:.3f} "
        f"({bn['selectivity']['median']:.3f}), at {nobn['headline']['accuracy']:.2%} accuracy "
        f"({bn['headline']['accuracy']:.2%}).",
        f"- **Dropout 0.5 before the head**: the mean largest class drop of one unit is "
        f"{mean_drop['ce-dropout0.5']:.2%} (without dropout {mean_drop['ce-bn']:.2%}), the mean overall drop "
        f"{dropout['mean_overall_drop']:.3%} ({bn['mean_overall_drop']:.3%}), the median SI "
        f"{dropout['selectivity']['median']:.3f} ({bn['selectivity']['median']:.3f}), at "
        f"{dropout['headline']['accuracy']:.2%} accuracy ({bn['headline']['accuracy']:.2%})."]
    return "\n".join(said)
