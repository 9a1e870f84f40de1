"""`python -m dcbench` is the `dcbench` command."""

import sys

from dcbench.cli import main

sys.exit(main())
