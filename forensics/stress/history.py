"""Every stress iteration in one SQLite file, so later runs add to the same table.

Rows are keyed by the command without its ``-n`` (see :func:`forensics.stress.argv.command_key`)
and the directory it ran in; a table is always drawn from all the rows for that key.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from forensics.errors import ForensicsError
from forensics.stress.runner import Iteration

DEFAULT_HISTORY = Path(".forensics") / "stress.sqlite"
_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS iterations (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    command TEXT NOT NULL,
    cwd TEXT NOT NULL,
    level INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    started REAL NOT NULL,
    duration_s REAL NOT NULL,
    exit_code INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    bundle TEXT
);
CREATE TABLE IF NOT EXISTS failures (
    iteration_id INTEGER NOT NULL REFERENCES iterations(id),
    cause TEXT NOT NULL,
    signature TEXT NOT NULL,
    sample TEXT NOT NULL,
    test TEXT,
    incident TEXT NOT NULL,
    bisectable INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS iterations_key ON iterations (command, cwd, level);
"""


@dataclass
class SignatureRow:
    signature: str
    cause: str
    count: int
    sample: str
    # The newest bundle with this signature, and its incident: where to look next.
    bundle: str | None
    incident: str
    bisectable: bool


@dataclass
class LevelRow:
    parallel: int
    iterations: int
    passed: int
    mean_duration_s: float
    by_cause: dict[str, int] = field(default_factory=dict)
    signatures: list[SignatureRow] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.iterations - self.passed


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Two stress runs may share a history: wait for the other's write.
            self.db = sqlite3.connect(path, timeout=30)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _VERSION):
                raise ForensicsError(
                    f"{path} is a stress history of version {version}, this forensics reads "
                    f"{_VERSION}; give another file with --history"
                )
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version = {_VERSION}")
            self.db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ForensicsError(
                f"cannot use {path} as the stress history: {exc}; give another file with --history"
            ) from exc

    def close(self) -> None:
        self.db.close()

    def add(self, session: str, command: str, cwd: str, it: Iteration) -> None:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO iterations (session, command, cwd, level, iteration, started,"
                " duration_s, exit_code, passed, bundle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session,
                    command,
                    cwd,
                    it.level,
                    it.index,
                    it.started,
                    it.seconds,
                    it.exit_code,
                    int(it.passed),
                    None if it.passed else str(it.bundle),
                ),
            )
            self.db.executemany(
                "INSERT INTO failures (iteration_id, cause, signature, sample, test, incident,"
                " bisectable) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cur.lastrowid,
                        f.cause,
                        f.signature,
                        f.sample,
                        f.test,
                        f.incident,
                        int(f.bisectable),
                    )
                    for f in it.failures
                ],
            )

    def sessions(self, command: str, cwd: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(DISTINCT session) FROM iterations WHERE command = ? AND cwd = ?",
            (command, cwd),
        ).fetchone()
        return int(row[0])

    def levels(self, command: str, cwd: str) -> list[LevelRow]:
        rows = []
        for level, total, passed, mean in self.db.execute(
            "SELECT level, COUNT(*), SUM(passed), AVG(duration_s) FROM iterations"
            " WHERE command = ? AND cwd = ? GROUP BY level ORDER BY level",
            (command, cwd),
        ):
            row = LevelRow(parallel=level, iterations=total, passed=passed, mean_duration_s=mean)
            # Counts are iterations, not incidents: "in how many runs did this happen".
            for cause, count in self.db.execute(
                "SELECT f.cause, COUNT(DISTINCT f.iteration_id) FROM failures f"
                " JOIN iterations i ON i.id = f.iteration_id"
                " WHERE i.command = ? AND i.cwd = ? AND i.level = ?"
                " GROUP BY f.cause ORDER BY 2 DESC, 1",
                (command, cwd, level),
            ):
                row.by_cause[cause] = count
            for sig, cause, count, last_id in self.db.execute(
                "SELECT f.signature, f.cause, COUNT(DISTINCT f.iteration_id), MAX(i.id)"
                " FROM failures f JOIN iterations i ON i.id = f.iteration_id"
                " WHERE i.command = ? AND i.cwd = ? AND i.level = ?"
                " GROUP BY f.signature, f.cause ORDER BY 3 DESC, 1",
                (command, cwd, level),
            ):
                sample, bundle, incident, bisectable = self.db.execute(
                    "SELECT f.sample, i.bundle, f.incident, f.bisectable FROM failures f"
                    " JOIN iterations i ON i.id = f.iteration_id"
                    " WHERE f.iteration_id = ? AND f.signature = ? AND f.cause = ? LIMIT 1",
                    (last_id, sig, cause),
                ).fetchone()
                row.signatures.append(
                    SignatureRow(sig, cause, count, sample, bundle, incident, bool(bisectable))
                )
            rows.append(row)
        return rows
