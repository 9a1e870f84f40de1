"""Layer 6, leaderboards: published tables (package data), the SQLite results store, merged
views, model cards filled from the store.

- `published`: the shipped tables (thesis 5.2-5.5, ECCV 1-5, erratum, third-party rows);
- `store.ResultsStore`: every result row and run, SQLite in WAL mode;
- `tables.Leaderboard`: published tables with our rows merged in, deltas, comparisons;
- `export` / `report`: Markdown, CSV, LaTeX, HTML (with training curves);
- `cards`: model cards with the model's stored results; `importing`: results made elsewhere.
"""

from __future__ import annotations

from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import Leaderboard

__all__ = ["Leaderboard", "ResultsStore"]
