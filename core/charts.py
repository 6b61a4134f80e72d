"""Altair chart builders shared by pages (layout only: data comes from core results)."""
import math

import altair as alt
import numpy as np
import pandas as pd


def shared_range(matrices) -> list[float] | None:
    """[lowest, highest] over every entry of `matrices` (None entries skipped): one colour scale
    for several heatmaps, so equal colours mean equal values; None when there is no value."""
    values = [v for matrix in matrices for row in matrix for v in row if v is not None]
    return [min(values), max(values)] if values else None


def lines_coincide(frame: pd.DataFrame, x: str, y: str) -> bool:
    """Whether at every `x` two or more models have a `y` and all have the same one: their lines
    are drawn on top of each other and look like one."""
    at = frame.groupby(x)[y]
    return bool(len(frame)) and bool((at.count() > 1).all()) and at.nunique().max() == 1


def epoch_axis(title: str = "epoch") -> alt.X:
    """Epochs are whole numbers: never an axis reading 1.000000 for a one-epoch run."""
    return alt.X("epoch:Q", title=title, axis=alt.Axis(format="d", tickMinStep=1))


def training_curve(steps: pd.DataFrame, loss_label: str = "loss"):
    """A run's progress events (global_step, loss, accuracy): the loss on the left axis, the
    running training accuracy on the right (0 to 1); one axis for both flattened the accuracy."""
    base = alt.Chart(steps).encode(x=alt.X("global_step:Q", title="step", axis=alt.Axis(format="d", tickMinStep=1)))
    loss = base.mark_line(color="#d62728").encode(
        y=alt.Y("loss:Q", title=loss_label, axis=alt.Axis(titleColor="#d62728")))
    accuracy = base.mark_line(color="#1f77b4").encode(
        y=alt.Y("accuracy:Q", title="train accuracy", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(titleColor="#1f77b4")))
    return alt.layer(loss, accuracy).resolve_scale(y="independent")


def heatmap(matrix, row_names, col_names, row_title: str, col_title: str, title: str,
            scheme: str = "greys", domain=None, height: int = 260, col_order=None, value_title: str = "value",
            pick: bool = False):
    """A matrix as coloured cells, with the data frame it was drawn from. `pick`: a click on a cell
    selects its column (a point selection named `unit_pick` on the field `col`)."""
    rows = [{"row": row_names[i], "col": col_names[j], "value": v}
            for i, line in enumerate(matrix) for j, v in enumerate(line)]
    frame = pd.DataFrame(rows)
    scale = alt.Scale(scheme=scheme, domain=domain) if domain else alt.Scale(scheme=scheme)
    readable = len(col_names) <= 32  # 64 unit numbers side by side were too small to read: hover instead
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("col:O", sort=col_order or list(col_names), title=col_title if readable else f"{col_title}; hover for each",
                axis=alt.Axis(labelFontSize=8, labelOverlap=False, labelLimit=160, labels=readable, ticks=readable)),
        y=alt.Y("row:O", sort=list(row_names), title=row_title, axis=alt.Axis(labelOverlap=False, labelLimit=160)),
        color=alt.Color("value:Q", scale=scale, title=value_title),
        tooltip=[alt.Tooltip("row:O", title=row_title.split(" (")[0]), alt.Tooltip("col:O", title=col_title.split(" (")[0]),
                 alt.Tooltip("value:Q", format=".3f", title=value_title)],
    ).properties(height=height, title=title)
    if pick:
        chart = chart.add_params(alt.selection_point(name="unit_pick", fields=["col"], on="click"))
    return chart, frame


FAITHFULNESS_MEASURES = {"deletion": "deletion AUC (lower is better)", "insertion": "insertion AUC (higher is better)",
                         "road_morf": "ROAD, most relevant first (lower is better)",
                         "road_lerf": "ROAD, least relevant first (nearer 0 is better)"}


def model_colour(models, channel=alt.Color, legend: bool = True):
    """One colour per model, in the sidebar's order, the same on every chart of every page. Other
    channels (alt.StrokeDash, alt.Shape, alt.Stroke) get the same domain and title, so Vega-Lite
    draws one legend for all of them. legend=False: a layer that should not draw its own."""
    models = list(dict.fromkeys(models))
    return channel("model:N", scale=alt.Scale(domain=models), sort=models, title="model",
                   **({} if legend else {"legend": None}))


def faithfulness_frame(results: dict[str, dict]) -> pd.DataFrame:
    """model -> faithfulness result  ->  one row per model, map and measure (mean, std)."""
    return pd.DataFrame([{"model": model, "map": entry["label"], "measure": measure,
                          "mean": entry[measure]["mean"], "std": entry[measure]["std"]}
                         for model, result in results.items() for entry in result["methods"].values()
                         for measure in FAITHFULNESS_MEASURES])


def faithfulness_chart(frame: pd.DataFrame, measure: str):
    """Bars of one measure per map, models side by side, with one standard deviation over images."""
    part = frame[frame["measure"] == measure].assign(low=lambda f: f["mean"] - f["std"],
                                                     high=lambda f: f["mean"] + f["std"])
    models = list(dict.fromkeys(part["model"]))
    base = alt.Chart(part).encode(x=alt.X("map:N", title=None, sort=None, axis=alt.Axis(labelAngle=-30, labelLimit=140)),
                                  xOffset=alt.XOffset("model:N", sort=models))
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title="mean ± std"), color=model_colour(models),
                                  tooltip=["model", "map", alt.Tooltip("mean:Q", format=".3f"),
                                           alt.Tooltip("std:Q", format=".3f")])
    spread = base.mark_rule(color="black").encode(y="low:Q", y2="high:Q")
    name, _, verdict = FAITHFULNESS_MEASURES[measure].partition(" (")
    return (bars + spread).properties(height=240, title=[name, f"({verdict}"] if verdict else name)  # two lines: two charts a row


def bounded_density(values, grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density of values in [0, 1], reflected at 0 and 1 so that it integrates to
    1 over [0, 1]: a plain KDE cut at the edges shows units piled near SI = 1 (minimax) as a
    density falling off there. Bandwidth: Scott's rule, as Vega's own density transform."""
    values = np.asarray(values, dtype=np.float64)
    if bandwidth is None:
        spread = min(values.std(ddof=1) if len(values) > 1 else 0.0,
                     (np.percentile(values, 75) - np.percentile(values, 25)) / 1.34)
        bandwidth = 1.06 * (spread if spread > 0 else max(values.std(), 0.05)) * len(values) ** -0.2
    mirrored = np.concatenate([values, -values, 2.0 - values])
    z = (np.asarray(grid, dtype=np.float64)[:, None] - mirrored[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(values) * bandwidth * math.sqrt(2 * math.pi))


def selectivity_density_chart(per_unit: pd.DataFrame, models: list[str]):
    """Overlaid (never stacked) densities of the live units' selectivity, one curve per model.
    per_unit: columns model, selectivity."""
    grid = np.linspace(0.0, 1.0, 201)
    rows = [{"model": model, "selectivity": x, "density": d}
            for model, part in (per_unit.groupby("model", sort=False) if len(per_unit) else ())
            for x, d in zip(grid, bounded_density(part["selectivity"], grid))]
    frame = pd.DataFrame(rows, columns=["model", "selectivity", "density"])
    base = alt.Chart(frame).encode(x=alt.X("selectivity:Q", scale=alt.Scale(domain=[0, 1]), title="selectivity index"),
                                   y=alt.Y("density:Q", stack=None))
    # a faint fill and a line of the model's own colour: where areas overlap, the lines still say whose is
    # whose; the legend is the lines' (the fill's swatches were too pale to tell apart)
    # legends resolved apart: a shared one with the fill's turned off drew no legend at all
    return (base.mark_area(opacity=0.12).encode(color=model_colour(models, legend=False))
            + base.mark_line(strokeWidth=2).encode(color=model_colour(models))).resolve_legend(color="independent")


def selectivity_histogram_chart(per_unit: pd.DataFrame, models: list[str]):
    """Overlaid (never stacked) histograms in bins of 0.05, outlined so overlaps stay readable."""
    return alt.Chart(per_unit).mark_bar(fillOpacity=0.25, strokeWidth=1.5).encode(
        x=alt.X("selectivity:Q", bin=alt.Bin(extent=[0, 1], step=0.05), title="selectivity index"),
        y=alt.Y("count():Q", stack=None, title="units"), color=model_colour(models),
        stroke=model_colour(models, alt.Stroke))


def probability_chart(probabilities: dict[float, np.ndarray], names: list[str]):
    """The top-5 classes (the same at every temperature), one bar per temperature side by side."""
    top = np.argsort(-probabilities[1.0])[:5]
    frame = pd.DataFrame([{"class": names[i], "T": f"T = {t:g}", "p": float(probs[i])}
                          for t, probs in probabilities.items() for i in top])
    order = [names[i] for i in top]
    return alt.Chart(frame, title=["top-5 probabilities", "at temperature T"], height=alt.Step(10)).mark_bar().encode(
        x=alt.X("p:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
        y=alt.Y("class:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=90)),
        yOffset=alt.YOffset("T:N"), color=alt.Color("T:N", scale=alt.Scale(range=["#1f4e79", "#9ecae1"]), title=None,
                                                      legend=alt.Legend(orient="bottom")),
        tooltip=["class", "T", alt.Tooltip("p:Q", format=".3f")])
