"""Layer 8, the command line: one module per subcommand, dispatched by `entry.main`."""

from dcbench.cli.entry import SUBCOMMANDS, main

__all__ = ["SUBCOMMANDS", "main"]
