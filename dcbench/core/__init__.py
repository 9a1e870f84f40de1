"""Layer 0, what every other layer stands on: `errors` (UserError), `files` (atomic writes,
staged folders), `home` (DCBENCH_HOME paths), `provenance` (revision, versions, hashes),
`config` (dataclass <-> YAML, `--set` overrides), `registry` (the one Registry), `rows` (the
result row), `runlog` (a run's log.jsonl), `progress` (bars with a total), `distributed`
(torch.distributed plumbing), `faults` (crash hooks for the resume tests), `version`."""
