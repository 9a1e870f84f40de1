"""Where weights come from: the `catalog` of known checkpoints, `download` (URLs with sha256),
`pull` (download + safe conversion into the hub cache), `hf` (Hugging Face Hub pull/push)."""
