"""`python -m alma_core.mcp --config .alma/config.yaml [--transport stdio|http] ...`"""

import sys

from . import run_server

sys.exit(run_server())
