"""The engine (PyTorch and core) imported on a thread from the moment the server starts
(app.py's lifespan), so a first visit to the Overview is drawn from the shipped results
meanwhile instead of waiting for it."""
from __future__ import annotations

import importlib
import logging
import threading

_thread: threading.Thread | None = None


def start() -> None:
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_load, name="unitlens-warm-up", daemon=True)
        _thread.start()


# pandas first (the Overview drawn meanwhile needs it), then the engine, then what the other pages
# import on a first visit (Altair alone takes 0.4-0.6 s)
MODULES = ("pandas", "ui.common", "altair", "core.explain", "core.charts", "core.inputs")


def _load() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - the page meets the same error on its own import and says so
        logging.getLogger("unitlens").warning("loading the engine failed: %s", exc)


def loading() -> bool:
    """True while the server's warm-up is still importing."""
    return _thread is not None and _thread.is_alive()


def wait() -> None:
    if _thread is not None:
        _thread.join()
