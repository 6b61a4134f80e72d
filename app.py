"""Unit Lens: placeholder entry until the dashboard lands; lists the checkpoints found."""
import streamlit as st

from core.checkpoints import CheckpointError, discover, load_checkpoint

st.set_page_config(page_title="Unit Lens", layout="wide")
st.title("Unit Lens")
for path in discover():
    try:
        _, meta = load_checkpoint(path)
        st.write(f"**{path.stem}**: {meta['method']} / {meta['arch']} / {meta['dataset']}, "
                 f"test accuracy {meta.get('test_accuracy', float('nan')):.4f}")
    except CheckpointError as exc:
        st.warning(str(exc))
