"""`python -m core.data prepare | download NAME`."""
from ..cli import run_main
from . import main

raise SystemExit(run_main(main))
