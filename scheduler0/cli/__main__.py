"""C{python -m scheduler0.cli ...}: the console script, for tests and bench scripts that run
the command with a given interpreter."""

import sys

from . import main

sys.exit(main())
