"""The light argument parsers of the `dcbench` subcommands (see `cli.entry`)."""
