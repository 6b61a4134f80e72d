"""Altair chart builders shared by pages (layout only: data comes from core results)."""
import altair as alt
import pandas as pd


def heatmap(matrix, row_names, col_names, row_title: str, col_title: str, title: str,
            scheme: str = "greys", domain=None, height: int = 260, col_order=None):
    rows = [{"row": row_names[i], "col": col_names[j], "value": v}
            for i, line in enumerate(matrix) for j, v in enumerate(line)]
    frame = pd.DataFrame(rows)
    scale = alt.Scale(scheme=scheme, domain=domain) if domain else alt.Scale(scheme=scheme)
    chart = alt.Chart(frame).mark_rect().encode(
        x=alt.X("col:O", sort=col_order or list(col_names), title=col_title,
                axis=alt.Axis(labelFontSize=8, labelOverlap=False, labelLimit=160)),
        y=alt.Y("row:O", sort=list(row_names), title=row_title, axis=alt.Axis(labelOverlap=False, labelLimit=160)),
        color=alt.Color("value:Q", scale=scale),
        tooltip=["row", "col", alt.Tooltip("value:Q", format=".3f")],
    ).properties(height=height, title=title)
    return chart, frame


FAITHFULNESS_MEASURES = {"deletion": "deletion AUC (lower is better)", "insertion": "insertion AUC (higher is better)",
                         "road_morf": "ROAD, most relevant first (lower is better)",
                         "road_lerf": "ROAD, least relevant first (nearer 0 is better)"}


def model_colour(models) -> alt.Color:
    """One colour per model, in the sidebar's order, the same on every chart of every page."""
    models = list(dict.fromkeys(models))
    return alt.Color("model:N", scale=alt.Scale(domain=models), sort=models, title="model")


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
    bars = base.mark_bar().encode(y=alt.Y("mean:Q", title=None), color=model_colour(models),
                                  tooltip=["model", "map", alt.Tooltip("mean:Q", format=".3f"),
                                           alt.Tooltip("std:Q", format=".3f")])
    spread = base.mark_rule(color="black").encode(y="low:Q", y2="high:Q")
    return (bars + spread).properties(height=240, title=FAITHFULNESS_MEASURES[measure])
