"""The headline figures of a model: defined once here, and from this table come the Overview's
columns, the store's `models` table, `core.analyze`'s terminal table and its JSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .values import is_number


@dataclass(frozen=True)
class Figure:
    key: str                         # column in the `models` table and key in JSON
    label: str                       # header on screen and in the terminal
    analysis: str                    # the analysis it is read from
    read: Callable[[dict], object]   # result -> value
    fmt: str = "{:.3f}"
    sql: str = "DOUBLE"
    help: str = ""


def _noise(part: str):
    return lambda r: (r.get("gaussian") or {}).get(part)


HEADLINE: tuple[Figure, ...] = (
    Figure("accuracy", "accuracy", "accuracy", lambda r: r["accuracy"], "{:.4f}", help="share of the whole test split classified right (10,000 images for Fashion-MNIST)"),
    Figure("median_selectivity", "median SI", "selectivity", lambda r: r["median"],
           help="median selectivity index of the live units (standard median): 0 responds to every class alike, 1 only to one"),
    Figure("selectivity_q1", "SI q1", "selectivity", lambda r: r.get("q1"), help="lower quartile of selectivity"),
    Figure("selectivity_q3", "SI q3", "selectivity", lambda r: r.get("q3"), help="upper quartile of selectivity"),
    Figure("dead_units", "dead units", "selectivity", lambda r: r["dead_count"], "{}", "INTEGER",
           help="units that never activate on the test split"),
    Figure("nontarget_entropy", "NTE (nats)", "nontarget_entropy", lambda r: r["mean"],
           help="mean entropy (in nats) of the softmax over the non-target logits: high means the wrong classes share the leftover probability evenly, as the minimax loss aims for"),
    Figure("nontarget_fraction", "NTE / log(C-1)", "nontarget_entropy", lambda r: r["fraction"],
           help="non-target entropy as a fraction of its bound log(C - 1): 1 is perfectly even"),
    Figure("phi", "Phi", "gate", lambda r: r["phi"],
           help="filter ambiguity (LSG paper, Eq. 2); lower is more class-specific. It holds the gated cross-entropy, "
                "so a model trained to be less confident (minimax, toward p_t = 0.7) starts higher"),
    Figure("gate_density", "gate density", "gate", lambda r: r["density"],
           help="||G||_1 / (C K) of the gate shown: an LSG model's trained gate, else the post-hoc fit (whose "
                "target is 0.2, so there a value far from it means the fit did not meet its constraint)"),
    Figure("r_a", "r_A (k=5)", "influential", lambda r: r["r_A"],
           help="accuracy of the decomposed logits over the full accuracy"),
    Figure("noise_influential", "noise on infl.", "noise_ablation", _noise("influential"),
           help="accuracy with each class's influential features replaced by N(0, 1) noise"),
    Figure("noise_non_influential", "noise on non-infl.", "noise_ablation", _noise("non_influential"),
           help="accuracy with every non-influential feature replaced by N(0, 1) noise"),
    Figure("rho_drop_selectivity", "rho(drop, SI)", "unit_ablation", lambda r: r["spearman_selectivity"],
           help="Spearman correlation of a unit's largest class drop with its selectivity"),
    Figure("rho_drop_l1", "rho(drop, fc L1)", "unit_ablation", lambda r: r["spearman_l1"],
           help="... with the L1 norm of its outgoing fc column"),
    Figure("rho_drop_filter_l1", "rho(drop, filter L1)", "unit_ablation", lambda r: r.get("spearman_filter_l1"),
           help="... with the L1 norm of its incoming last-conv filter"),
    Figure("c_ic", "C_IC", "filter_correlation", lambda r: r["c_ic"],
           help="mean correlation between dominant filters of different classes"),
)
ANALYSES_NEEDED = tuple(dict.fromkeys(f.analysis for f in HEADLINE))


def describe_missing(missing: dict[str, list[str]]) -> str:
    """Model -> the analyses it still needs, in words: a model missing a few figures names them
    ("ce (C_IC)"), one missing most is named alone."""
    parts = []
    for label, needed in missing.items():
        figures = [f.label for f in HEADLINE if f.analysis in needed]
        parts.append(f"{label} ({', '.join(figures)})" if len(figures) <= 3 else label)
    return ", ".join(parts)

# The Overview's tabs, by the analysis a figure comes from (all of them in one table were wider
# than the page, and the columns past Phi went unseen).
GROUPS: dict[str, tuple[str, ...]] = {
    "Accuracy and selectivity": ("accuracy", "selectivity"),
    "Non-target entropy and filter ambiguity": ("nontarget_entropy", "gate", "filter_correlation"),
    "Influential features": ("influential", "noise_ablation"),
    "Single-unit ablation": ("unit_ablation",),
}


def checkpoint_accuracy(meta: dict) -> float | None:
    """The test accuracy the trainer recorded, where it can stand for the accuracy figure before
    that is computed: only over the whole test split (a --limit run measured fewer images; a
    checkpoint from before `whole_test_split` was recorded says so by its limit)."""
    whole = meta.get("whole_test_split", not meta.get("limit"))
    return meta.get("test_accuracy") if whole else None


def grouped() -> dict[str, list[Figure]]:
    """The headline figures under their Overview tab, in HEADLINE's order."""
    return {group: [f for f in HEADLINE if f.analysis in analyses] for group, analyses in GROUPS.items()}


def headline(results: dict) -> dict:
    """key -> value (None where its analysis is missing or skipped)."""
    return {figure.key: value_of(figure, results.get(figure.analysis)) for figure in HEADLINE}


def value_of(figure: Figure, result) -> float | int | None:
    """The figure read from its analysis's result: a finite number, or None where the result is
    missing or holds something else there. A stored result is a row of a file on disk: a crafted
    one (a text, a list, a missing key where a figure should be) must not break the Overview."""
    try:
        value = figure.read(result) if isinstance(result, dict) and result else None
    except (KeyError, TypeError, AttributeError, IndexError):
        return None
    return value if is_number(value) and (figure.sql != "INTEGER" or isinstance(value, int)) else None


def figure_columns(results: dict) -> dict:
    """label -> value of every headline figure whose analysis is in `results` (analysis -> result):
    the pages' tables show a figure under the Overview's name, read the Overview's way."""
    return {f.label: value_of(f, results[f.analysis]) for f in HEADLINE if results.get(f.analysis)}


LABELS = {f.key: f.label for f in HEADLINE}


def format_value(figure: Figure, value) -> str:
    return "-" if value is None else figure.fmt.format(value)


def format_number(value, spec: str = ".3f") -> str:
    """A figure in a page's caption or title: "undefined" where the papers' ratio or correlation
    is (r_A when A_f = 0, a rank correlation over constant drops), stored as None."""
    return "undefined" if value is None else format(value, spec)
