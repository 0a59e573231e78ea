"""`python -m alma_core.server`: the same as `alma serve`."""

import sys

from . import run_server

sys.exit(run_server())
