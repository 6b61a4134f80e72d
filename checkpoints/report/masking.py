"""The LSG paper's Fig. 5: a class's units masked, then two classes' (the first and the sixth) at
once, on the bundled CE and LSG, by the gate and by the influential units."""
from __future__ import annotations

from core.analysis.engine import Analyzer

from .common import markdown_table

PAIR = (0, 5)  # the paper's first and sixth classes


def pair_masking_figures(analyzer: Analyzer) -> dict:
    """Per way of choosing units: the first class's accuracy with its units masked, then both
    classes' with both sets masked, the units masked and the other classes' accuracy."""
    first, sixth = PAIR
    out = {}
    for by in ("gate", "influential"):
        alone = analyzer.run("class_masking", by=by)
        pair = analyzer.run("class_masking", by=by, with_class=sixth)
        matrix = pair["confusions"][first]
        rest = [i for i in range(len(matrix)) if i not in PAIR]
        out[by] = {"alone": alone["masked_class_accuracy"][first], "first": pair["masked_class_accuracy"][first],
                   "sixth": pair["partner_accuracy"][first],
                   "units": len(set(pair["units"][first]) | set(pair["units"][sixth])),
                   "others": sum(matrix[i][i] for i in rest) / sum(sum(matrix[i]) for i in rest)}
    names = analyzer.meta["class_names"]
    return {"name": analyzer.name, "classes": [names[c] for c in PAIR], "by": out}


def pair_masking_table(models: list[dict]) -> str:
    first, sixth = models[0]["classes"]
    return markdown_table(["model", "units chosen by", f"{first} alone masked", f"{first} and {sixth} masked: {first}",
                           f"{first} and {sixth} masked: {sixth}", "units masked", "other classes"],
                          [[m["name"], by, f"{r['alone']:.3f}", f"{r['first']:.3f}", f"{r['sixth']:.3f}", r["units"],
                            f"{r['others']:.3f}"] for m in models for by, r in m["by"].items()])


def pair_masking_claim(models: list[dict]) -> str:
    """Fig. 5's reading, decided where both models lose the same number of units (the influential
    five a class) and, apart, with each model's gate."""
    by = {m["name"]: m["by"] for m in models}
    ce, lsg = by["ce"]["influential"], by["lsg"]["influential"]
    first, sixth = models[0]["classes"]
    holds = lsg["first"] < ce["first"] and lsg["sixth"] < ce["sixth"]
    gate = {n: b["gate"] for n, b in by.items()}
    return (f"- **With two classes' units masked, LSG loses more of both classes than STD (LSG paper Fig. 5: LSG "
            f"fails to recognise them, STD still does)** {'matches' if holds else '**does not hold**'} with five "
            f"influential units a class: {first} / {sixth} "
            f"accuracy LSG {lsg['first']:.3f} / {lsg['sixth']:.3f}, CE {ce['first']:.3f} / {ce['sixth']:.3f}. With "
            f"each model's gate (LSG's trained one masks {gate['lsg']['units']} units, CE's post-hoc fit "
            f"{gate['ce']['units']}): LSG {gate['lsg']['first']:.3f} / {gate['lsg']['sixth']:.3f}, CE "
            f"{gate['ce']['first']:.3f} / {gate['ce']['sixth']:.3f}.")
