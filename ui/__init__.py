"""Streamlit glue the pages share (the sidebar frame, caches, downloads, the error guard).
Page modules live in pages/, all logic in core/."""
