"""A run's ``study.db`` read with plain SQLite in read-only mode (no Optuna, no torch).

For polling a search that runs in another process: opening the storage with Optuna would
create its schema, racing the search's own creation ("table ... already exists"); and this
module imports in milliseconds, so shell scripts in tests can run it as
``python -m tests.study_db DB count|indices``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path


def _query(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                            timeout=5)) as connection:
        return connection.execute(sql).fetchall()


def finished_trials(db: Path) -> int:
    """Trials stored in ``db``; 0 while it does not exist or is being created."""
    if not Path(db).exists():
        return 0
    try:
        return _query(db, "SELECT count(*) FROM trials")[0][0]
    except sqlite3.Error:  # not created yet, or being created
        return 0


def trial_indices(db: Path) -> list[int]:
    """The search's ``index`` of every stored trial, sorted."""
    return sorted(json.loads(value) for (value,) in _query(
        db, "SELECT value_json FROM trial_user_attributes WHERE key = 'index'"))


def trial_attribute(db: Path, key: str) -> list:
    """The user attribute ``key`` of every stored trial that has it (none while ``db`` is
    being created)."""
    if finished_trials(db) == 0:
        return []
    return [json.loads(value) for (value,) in _query(
        db, f"SELECT value_json FROM trial_user_attributes WHERE key = '{key}'")]


if __name__ == "__main__":
    path, what = Path(sys.argv[1]), sys.argv[2]
    print(finished_trials(path) if what == "count" else trial_indices(path))
