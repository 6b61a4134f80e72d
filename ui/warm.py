"""The engine (PyTorch and core) imported, and the checkpoints and their results read, on a
thread from the moment the server starts (app.py's lifespan), so a first visit to the Overview
is drawn from the shipped results meanwhile instead of waiting for it; then what the other
pages import and the models they compare first, so their first visits do not pay for it either."""
from __future__ import annotations

import importlib
import logging
import threading
import time

ENGINE = ("pandas", "ui.common")  # pandas first: the Overview drawn meanwhile needs it
PAGES = ("altair", "core.explain", "core.charts", "core.inputs")  # Altair alone: 0.3 s (bench/RESULTS.md)
_thread: threading.Thread | None = None
_engine_ready = threading.Event()


def start() -> None:
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_load, name="unitlens-warm-up", daemon=True)
        _thread.start()


def _load() -> None:
    try:
        for name in ENGINE:
            importlib.import_module(name)
        importlib.import_module("ui.common").preload()  # the checkpoints and their results, read once
        _engine_ready.set()
        for name in PAGES:
            importlib.import_module(name)
        importlib.import_module("ui.common").build_default_models()
    except Exception as exc:  # noqa: BLE001 - the page meets the same error on its own import and says so
        logging.getLogger("unitlens").warning("loading the engine failed: %s", exc)
    finally:
        _engine_ready.set()


def loading() -> bool:
    """True while the server's warm-up is still importing the engine."""
    return _thread is not None and not _engine_ready.is_set()


def wait(tick) -> None:
    """Until the engine is there, calling tick() every 0.1 s: each element it updates lets
    Streamlit act on a click elsewhere or on Stop meanwhile (a blocked script would not)."""
    while loading():
        tick()
        time.sleep(0.1)
