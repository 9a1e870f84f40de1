"""`python -m dcbench` is the `dcbench` command."""

import sys

from dcbench.cli.entry import main

sys.exit(main())
