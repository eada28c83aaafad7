"""Every stress iteration in one SQLite file, so later runs add to the same table.

Rows are keyed by the command without its ``-n`` (see :func:`forensics.stress.argv.command_key`)
and the directory it ran in; a table is always drawn from all the rows for that key.  Each
iteration also records the ``wrap`` limits it ran with; a history written before they were
recorded is migrated in place (its iterations ran with ``wrap``'s defaults, which is what the
migration fills in).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from forensics.errors import ForensicsError
from forensics.limits import WRAP_DEFAULTS, RunLimits
from forensics.stress.runner import Iteration

DEFAULT_HISTORY = Path(".forensics") / "stress.sqlite"
_VERSION = 2
# Causes that end a process (a hang is counted on its own, with its phase).
CRASH_CAUSES = ("native-crash", "oom-kill", "external-kill", "unexpected-exit")
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
    bundle TEXT,
    hang_timeout REAL,
    timeout REAL,
    interrupt_grace REAL
);
CREATE TABLE IF NOT EXISTS failures (
    iteration_id INTEGER NOT NULL REFERENCES iterations(id),
    cause TEXT NOT NULL,
    signature TEXT NOT NULL,
    sample TEXT NOT NULL,
    test TEXT,
    incident TEXT NOT NULL,
    bisectable INTEGER NOT NULL,
    phase TEXT
);
CREATE INDEX IF NOT EXISTS iterations_key ON iterations (command, cwd, level);
"""
# Columns added since version 1, with the value rows written before them get.
_DEFAULTS = WRAP_DEFAULTS
_ADDED = (
    ("iterations", "hang_timeout", "REAL", _DEFAULTS.hang_timeout),
    ("iterations", "timeout", "REAL", _DEFAULTS.timeout),
    ("iterations", "interrupt_grace", "REAL", _DEFAULTS.interrupt_grace),
    ("failures", "phase", "TEXT", None),
)


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
    phase: str | None = None


@dataclass
class SignatureGroup:
    """One signature across every level: the line a maintainer pastes under the table."""

    signature: str
    cause: str
    phase: str | None
    # Failed iterations with this signature, per level.
    counts: dict[int, int]
    sample: str
    # Where it was seen first (the bundle to read), and its incident there.
    first_bundle: str | None
    first_incident: str


@dataclass
class LimitsRow:
    limits: RunLimits
    iterations: int


@dataclass
class LevelRow:
    parallel: int
    iterations: int
    passed: int
    mean_duration_s: float
    by_cause: dict[str, int] = field(default_factory=dict)
    signatures: list[SignatureRow] = field(default_factory=list)
    # Iterations with a crash (CRASH_CAUSES), with a hang, and with a hang in each phase.
    crashed: int = 0
    hung: int = 0
    hangs_by_phase: dict[str, int] = field(default_factory=dict)

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
            if version > _VERSION:
                raise ForensicsError(
                    f"{path} is a stress history of version {version}, this forensics reads "
                    f"up to {_VERSION}; give another file with --history"
                )
            if version < _VERSION:
                self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ForensicsError(
                f"cannot use {path} as the stress history: {exc}; give another file with --history"
            ) from exc

    def _migrate(self) -> None:
        """Create the tables, or add what version 1 lacked; once, even with two stress runs
        opening the same history at the same time (the write lock is taken first)."""
        level = self.db.isolation_level
        self.db.isolation_level = None
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                for table, column, kind, default in _ADDED:
                    have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                        self.db.execute(f"UPDATE {table} SET {column} = ?", (default,))
                self.db.execute(f"PRAGMA user_version = {_VERSION}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        finally:
            self.db.isolation_level = level

    def close(self) -> None:
        self.db.close()

    def add(self, session: str, command: str, cwd: str, it: Iteration) -> None:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO iterations (session, command, cwd, level, iteration, started,"
                " duration_s, exit_code, passed, bundle, hang_timeout, timeout, interrupt_grace)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    it.limits.hang_timeout,
                    it.limits.timeout,
                    it.limits.interrupt_grace,
                ),
            )
            self.db.executemany(
                "INSERT INTO failures (iteration_id, cause, signature, sample, test, incident,"
                " bisectable, phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cur.lastrowid,
                        f.cause,
                        f.signature,
                        f.sample,
                        f.test,
                        f.incident,
                        int(f.bisectable),
                        f.phase,
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
            key = (command, cwd, level)
            # Counts are iterations, not incidents: "in how many runs did this happen".
            for cause, count in self.db.execute(
                f"SELECT f.cause, COUNT(DISTINCT f.iteration_id) {_FAILURES_AT_LEVEL}"
                " GROUP BY f.cause ORDER BY 2 DESC, 1",
                key,
            ):
                row.by_cause[cause] = count
            marks = ", ".join("?" for _ in CRASH_CAUSES)
            row.crashed = self.db.execute(
                f"SELECT COUNT(DISTINCT f.iteration_id) {_FAILURES_AT_LEVEL}"
                f" AND f.cause IN ({marks})",
                (*key, *CRASH_CAUSES),
            ).fetchone()[0]
            row.hung = row.by_cause.get("hang", 0)
            for phase, count in self.db.execute(
                f"SELECT COALESCE(f.phase, 'unknown'), COUNT(DISTINCT f.iteration_id)"
                f" {_FAILURES_AT_LEVEL} AND f.cause = 'hang' GROUP BY 1 ORDER BY 2 DESC, 1",
                key,
            ):
                row.hangs_by_phase[phase] = count
            for sig, cause, phase, count, last_id in self.db.execute(
                "SELECT f.signature, f.cause, f.phase, COUNT(DISTINCT f.iteration_id), MAX(i.id)"
                f" {_FAILURES_AT_LEVEL} GROUP BY f.signature, f.cause, f.phase ORDER BY 4 DESC, 1",
                key,
            ):
                sample, bundle, incident, bisectable = self._failure(last_id, sig, cause, phase)
                row.signatures.append(
                    SignatureRow(
                        sig, cause, count, sample, bundle, incident, bool(bisectable), phase
                    )
                )
            rows.append(row)
        return rows

    def groups(self, command: str, cwd: str) -> list[SignatureGroup]:
        """Every signature with its count per level, most frequent first."""
        found: dict[tuple[str, str, str | None], tuple[dict[int, int], int]] = {}
        for sig, cause, phase, level, count, first_id in self.db.execute(
            "SELECT f.signature, f.cause, f.phase, i.level, COUNT(DISTINCT f.iteration_id),"
            " MIN(i.id) FROM failures f JOIN iterations i ON i.id = f.iteration_id"
            " WHERE i.command = ? AND i.cwd = ? GROUP BY 1, 2, 3, 4",
            (command, cwd),
        ):
            counts, first = found.setdefault((sig, cause, phase), ({}, first_id))
            counts[level] = count
            found[(sig, cause, phase)] = (counts, min(first, first_id))
        groups = []
        for (sig, cause, phase), (counts, first_id) in found.items():
            sample, bundle, incident, _ = self._failure(first_id, sig, cause, phase)
            groups.append(SignatureGroup(sig, cause, phase, counts, sample, bundle, incident))
        groups.sort(key=lambda g: (-sum(g.counts.values()), g.cause, g.signature))
        return groups

    def limits(self, command: str, cwd: str) -> list[LimitsRow]:
        """The wrap limits the iterations ran with, and how many ran with each."""
        return [
            LimitsRow(RunLimits(hang, timeout, grace), count)
            for hang, timeout, grace, count in self.db.execute(
                "SELECT hang_timeout, timeout, interrupt_grace, COUNT(*) FROM iterations"
                " WHERE command = ? AND cwd = ? GROUP BY 1, 2, 3 ORDER BY 4 DESC",
                (command, cwd),
            )
        ]

    def _failure(
        self, iteration_id: int, sig: str, cause: str, phase: str | None
    ) -> tuple[str, str | None, str, int]:
        row = self.db.execute(
            "SELECT f.sample, i.bundle, f.incident, f.bisectable FROM failures f"
            " JOIN iterations i ON i.id = f.iteration_id WHERE f.iteration_id = ?"
            " AND f.signature = ? AND f.cause = ? AND f.phase IS ? LIMIT 1",
            (iteration_id, sig, cause, phase),
        ).fetchone()
        return row[0], row[1], row[2], row[3]


_FAILURES_AT_LEVEL = (
    "FROM failures f JOIN iterations i ON i.id = f.iteration_id"
    " WHERE i.command = ? AND i.cwd = ? AND i.level = ?"
)
