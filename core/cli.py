"""What every command line shares: one-line argument errors, and no traceback ever."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from .errors import UserError


class TerminalLine:
    """One line on stderr, rewritten in place, only when stderr is a terminal (the commands'
    progress bars; a log file gets none of it)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()

    @staticmethod
    def bar(fraction: float, width: int) -> str:
        filled = int(width * min(max(fraction, 0.0), 1.0))
        return f"[{'#' * filled}{'.' * (width - filled)}]"

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{text}")
            sys.stderr.flush()

    def end(self, keep: bool = True) -> None:
        """Leave the last line (a newline after it) or wipe it."""
        if self.enabled:
            sys.stderr.write("\n" if keep else "\r" + " " * 80 + "\r")


def say_note(text: str) -> None:
    """A note on a line of its own on stderr (a terminal's progress bar may be mid-line)."""
    print(f"{chr(10) if sys.stderr.isatty() else ''}note: {text}", file=sys.stderr, flush=True)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (usage is in --help)."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


# every control character but newline, tab and carriage return (the progress bar's), C1 included
CONTROL = dict.fromkeys([*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0)], "?")


class PrintableStream:
    """A text stream that writes control characters as '?': class names, file names and messages
    from files we did not write reach a terminal, where an escape sequence would act (retitle the
    window, hide lines, rewrite what was printed)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.translate(CONTROL))

    def __getattr__(self, name):
        return getattr(self.stream, name)


def run_main(main, argv=None) -> int:
    """Run a command's main; a user error or an unexpected one becomes one line on stderr."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(sys.stdout), PrintableStream(sys.stderr)
    try:
        return _run_main(main, argv)
    finally:
        sys.stdout, sys.stderr = streams


def _run_main(main, argv=None) -> int:
    try:  # Ctrl-C is KeyboardInterrupt again (core/__init__.py quieted it while the command loaded)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: nothing was changed there either
        pass
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - a command line never shows a traceback
        if os.environ.get("UNITLENS_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        print(f"error: internal error ({type(exc).__name__}: {first}); please report it", file=sys.stderr)
        return 1


def exit_without_teardown(code: int):
    """End the process with `code`, skipping the interpreter's teardown. With PyTorch and a CUDA
    context loaded that teardown took a second on a GPU machine (bench/RESULTS.md), a tenth of
    a short training run. Only for a command whose files are all written and closed by then
    (the trainer's are: each progress line is closed as written, the checkpoint is fsynced)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), or a closed stream
            pass
    os._exit(code)
