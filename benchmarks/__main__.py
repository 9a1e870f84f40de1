"""`python -m benchmarks [--quick] [--only NAME] [--output FILE]`: the `dcbench bench` runner."""

import sys

from dcbench.cli.bench import main

sys.exit(main())
