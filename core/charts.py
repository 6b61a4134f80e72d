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
