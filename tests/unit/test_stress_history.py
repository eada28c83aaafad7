"""The stress history across versions, and the runner's one-line errors."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import pytest

from forensics.errors import ForensicsError
from forensics.limits import RunLimits
from forensics.stress.history import History
from forensics.stress.runner import Failure, Iteration, run_iteration

# The schema as version 1 wrote it.
V1 = """
CREATE TABLE iterations (
    id INTEGER PRIMARY KEY, session TEXT NOT NULL, command TEXT NOT NULL, cwd TEXT NOT NULL,
    level INTEGER NOT NULL, iteration INTEGER NOT NULL, started REAL NOT NULL,
    duration_s REAL NOT NULL, exit_code INTEGER NOT NULL, passed INTEGER NOT NULL, bundle TEXT
);
CREATE TABLE failures (
    iteration_id INTEGER NOT NULL REFERENCES iterations(id), cause TEXT NOT NULL,
    signature TEXT NOT NULL, sample TEXT NOT NULL, test TEXT, incident TEXT NOT NULL,
    bisectable INTEGER NOT NULL
);
CREATE INDEX iterations_key ON iterations (command, cwd, level);
INSERT INTO iterations VALUES (1, 'old', 'pytest t.py', '/w', 2, 1, 0, 301.5, 1, 0, '/b/n2-001');
INSERT INTO failures VALUES (1, 'hang', 'hang t.py::test_h', 'stuck', 't.py::test_h', 'I1', 0);
PRAGMA user_version = 1;
"""


def _v1(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.close()
    return path


def test_version_1_is_migrated_in_place_with_wraps_defaults(tmp_path: Path) -> None:
    store = History(_v1(tmp_path / "h.sqlite"))
    fresh = Iteration(2, 1, ["pytest"], tmp_path / "b2", 1, 4.0, time.time())
    fresh.limits = RunLimits(hang_timeout=3, timeout=60, interrupt_grace=2)
    fresh.failures = [Failure("hang", "hang at f (t.py)", "s", "t.py::test_h", "I1", False, "call")]
    store.add("new", "pytest t.py", "/w", fresh)
    (level,) = store.levels("pytest t.py", "/w")
    assert (level.iterations, level.hung, level.hangs_by_phase) == (2, 2, {"call": 1, "unknown": 1})
    # The old rows ran with wrap's defaults: the migration says so rather than leaving a gap.
    assert {(r.limits, r.iterations) for r in store.limits("pytest t.py", "/w")} == {
        (RunLimits(300.0, 0.0, 10.0), 1),
        (RunLimits(3.0, 60.0, 2.0), 1),
    }
    store.close()
    db = sqlite3.connect(tmp_path / "h.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
    History(tmp_path / "h.sqlite").close()  # opening a migrated history again changes nothing


def test_a_newer_history_is_refused_in_one_line(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "h.sqlite")
    db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(ForensicsError, match=r"version 9.*--history"):
        History(tmp_path / "h.sqlite")


def test_an_interpreter_that_cannot_start_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As an unprivileged user whose interpreter lives under a directory it cannot enter.
    locked = tmp_path / "python"
    locked.write_text("")
    locked.chmod(0o600)
    monkeypatch.setattr(sys, "executable", str(locked))
    with pytest.raises(ForensicsError, match=r"cannot start `forensics wrap` with .*python"):
        run_iteration(["pytest"], 0, 1, tmp_path / "b", RunLimits())
