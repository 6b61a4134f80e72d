"""The part of the pages' shared code that needs no PyTorch (ui/common.py builds on it): plain
text, CSV downloads, the default model choice. The Overview uses it alone while the engine loads."""
from __future__ import annotations

import re

import streamlit as st

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


def default_models(labels: list[str]) -> list[str]:
    """What is compared before the user chooses: the paper's trio if present, else the first three."""
    return [m for m in DEFAULT_METHODS if m in labels] or labels[:3]
