"""Which process is a training run: read from /proc by both sides of a run, the app that
launches and lists runs (core.runs) and a queued trainer waiting for the runs before it
(core.trainer), so neither imports the other."""
from pathlib import Path


def training_process_start(pid: int) -> str | None:
    """The start time (clock ticks after boot) of `pid` when it is a living core.train process,
    else None: with the pid, it names that process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.split(")")[-1].split()  # after the command name, which may hold spaces
    return fields[19] if fields[0] != "Z" and b"core.train" in cmdline else None
