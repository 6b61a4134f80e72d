"""The part of the pages' shared code that needs no PyTorch (ui/common.py builds on it): plain
text, CSV downloads, the default model choice, and the guard every page starts with. The Overview
uses it alone while the engine loads."""
from __future__ import annotations

import re
import runpy
import threading

import streamlit as st

from core.catalog import PROJECT_ROOT
from core.headline import HEADLINE

_ENTRY = threading.local()  # set while app.py (the navigation entry) runs in this thread

DEFAULT_METHODS = ("ce", "minimax", "lsg")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^])")


def plain(text) -> str:
    """Text read from a file (class names, file names, methods, messages) for any Streamlit
    element that renders markdown: every markdown character escaped, so it shows as typed and
    never becomes a link, an image fetch or a colour directive."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")


def download_csv(frame, name: str, key: str, label: str = "Download CSV") -> None:
    st.download_button(label, frame.to_csv(index=False).encode(), f"{name}.csv", "text/csv", key=key,
                       on_click="ignore")


METRICS_DOC = "definitions: docs/metrics.md in the project"  # every figure's formula, in one place


def number_columns(columns) -> dict:
    """Streamlit column settings for a table's numbers: a headline figure keeps its Overview format
    and its explanation on hover; any other number shows three decimals."""
    figures = {f.label: f for f in HEADLINE}
    return {column: st.column_config.NumberColumn(column, help=f"{figures[column].help} ({METRICS_DOC})",
                                                  format="%d" if figures[column].sql == "INTEGER" else "%.3f")
            if column in figures else st.column_config.NumberColumn(format="%.3f") for column in columns}


def default_models(labels: list[str]) -> list[str]:
    """What is compared before the user chooses: the paper's trio if present, else the first three."""
    return [m for m in DEFAULT_METHODS if m in labels] or labels[:3]


class entry:
    """Marks the run of app.py (the navigation entry) in this thread."""

    def __enter__(self):
        _ENTRY.active = True

    def __exit__(self, *exc):
        _ENTRY.active = False


def page_frame() -> None:
    """First thing in every page, before its own imports. On a freshly started server Streamlit
    first runs a deep-linked page on its own (its pages/ folder mode): then run the real entry
    instead, which draws the navigation at once (and says what it loads) and runs this page
    inside it, and stop this outer run."""
    if not getattr(_ENTRY, "active", False):
        runpy.run_path(str(PROJECT_ROOT / "app.py"), run_name="__unitlens_entry__")
        st.stop()
