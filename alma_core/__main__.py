"""`python -m alma_core`: the `alma` command line."""

import sys

from .cli import main

sys.exit(main())
