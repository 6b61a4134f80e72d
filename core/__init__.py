"""Unit Lens's engine: importable and testable without Streamlit."""
import sys

if sys.argv[:1] == ["-m"]:  # `python -m core.<command>`: Python is still finding the command's module
    import os
    import signal

    def _interrupted_while_loading(signum, frame):
        """Ctrl-C while PyTorch loads (a second or two): one line, not a traceback from inside an import.
        core.cli.run_main hands Ctrl-C back to Python once the command runs."""
        sys.stderr.write("error: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_while_loading)
