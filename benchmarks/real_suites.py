"""Real open-source suites, unwrapped and under ``forensics wrap``, side by side in one run.

Each suite runs twice at ``-n 2`` (the order alternates between suites, so neither side always
gets the warmer machine): once as the project runs it, once under ``forensics wrap``.  Outcomes
come from pytest's own JUnit XML; incidents from the triage JSON.  The goal is identical outcomes
and no incident on a test that passed.

The suites are the caller's checkouts, each with an interpreter that has the suite's own
dependencies, pytest-xdist and forensics installed::

    python benchmarks/real_suites.py \\
        --suite loky=/work/suites/loky:/work/suites/venv-loky/bin/python:tests \\
        --suite pebble=/work/suites/pebble:/work/suites/venv-pebble/bin/python:test

A suite is NAME=CHECKOUT:PYTHON[:PYTEST ARGS, space-separated]; ``--extra`` adds pytest arguments
to every run (e.g. ``-p no:randomly``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Suite:
    name: str
    checkout: Path
    python: str
    args: list[str]


@dataclass
class Outcome:
    wall_s: float
    exit_code: int
    tests: dict[str, str] = field(default_factory=dict)  # nodeid-ish -> passed/failed/...
    incidents: list[dict[str, object]] = field(default_factory=list)
    expected_deaths: int = 0
    not_covered: int = 0


def parse_suite(text: str) -> Suite:
    name, _, rest = text.partition("=")
    parts = rest.split(":", 2)
    if not name or len(parts) < 2:
        raise SystemExit(f"--suite {text!r}: expected NAME=CHECKOUT:PYTHON[:ARGS]")
    args = shlex.split(parts[2]) if len(parts) > 2 else []
    return Suite(name, Path(parts[0]).resolve(), parts[1], args)


def junit_outcomes(path: Path) -> dict[str, str]:
    """classname::name -> outcome, from pytest's JUnit XML (our own file: no DOCTYPE)."""
    outcomes: dict[str, str] = {}
    if not path.is_file():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if "failure" in tags:
            outcome = "failed"
        elif "error" in tags:
            outcome = "error"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test reported twice (a teardown error after a pass) keeps the worst outcome.
        rank = ["passed", "skipped", "failed", "error"]
        if key not in outcomes or rank.index(outcome) > rank.index(outcomes[key]):
            outcomes[key] = outcome
    return outcomes


def junit_key(nodeid: str) -> str:
    """A pytest node id in the JUnit classname::name form."""
    path, _, rest = nodeid.partition("::")
    module = path.removesuffix(".py").replace("/", ".")
    parts = rest.split("::")
    return f"{'.'.join([module, *parts[:-1]])}::{parts[-1]}"


def run_once(suite: Suite, wrapped: bool, extra: list[str], work: Path, timeout: float) -> Outcome:
    tag = "wrapped" if wrapped else "plain"
    junit = work / f"{suite.name}-{tag}.xml"
    bundle = work / f"{suite.name}-bundle"
    pytest = [suite.python, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
    pytest += [f"--junitxml={junit}", *extra, *suite.args]
    forensics = str(Path(suite.python).with_name("forensics"))
    argv = [forensics, "wrap", "--bundle", str(bundle), "--force", "--", *pytest]
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("FORENSICS_", "PYTEST_")):
            del env[name]
    start = time.monotonic()
    with open(work / f"{suite.name}-{tag}.log", "wb") as log:
        proc = subprocess.run(
            argv if wrapped else pytest,
            cwd=suite.checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    outcome = Outcome(time.monotonic() - start, proc.returncode, junit_outcomes(junit))
    if wrapped:
        triage = subprocess.run(
            [forensics, "report", str(bundle), "--format", "json", "--no-redact"],
            capture_output=True,
            text=True,
            check=False,
        )
        data = json.loads(triage.stdout) if triage.returncode == 0 else {}
        outcome.incidents = data.get("incidents") or []
        outcome.expected_deaths = len(data.get("expected_deaths") or [])
        outcome.not_covered = len(data.get("not_covered") or [])
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", default=[], type=parse_suite)
    parser.add_argument("--extra", default="", help="pytest arguments added to every run")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", type=Path, help="keep logs, JUnit files and bundles here")
    options = parser.parse_args()
    if not options.suite:
        parser.error("give at least one --suite")
    work = options.keep or Path(tempfile.mkdtemp(prefix="forensics-suites-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, suite in enumerate(options.suite):
        extra = shlex.split(options.extra)
        order = (False, True) if index % 2 == 0 else (True, False)
        results = {w: run_once(suite, w, extra, work, options.timeout) for w in order}
        plain, wrapped = results[False], results[True]
        changed = sorted(
            k
            for k in set(plain.tests) | set(wrapped.tests)
            if plain.tests.get(k) != wrapped.tests.get(k)
        )
        passing = [
            i
            for i in wrapped.incidents
            if isinstance(i.get("test"), str)
            and wrapped.tests.get(junit_key(i["test"])) == "passed"
        ]
        rows.append((suite, plain, wrapped, changed, passing))
        for key in changed[:20]:
            print(f"  {suite.name}: {key}: {plain.tests.get(key)} -> {wrapped.tests.get(key)}")
        for inc in passing[:20]:
            print(
                f"  {suite.name}: incident on a passing test: {inc.get('id')} {inc.get('summary')}"
            )
    print()
    header = (
        "| suite | commit | tests | failures plain / wrapped | exit plain / wrapped | changed "
        "outcomes | incidents | on passing tests | expected deaths | not covered | wall plain / "
        "wrapped | ratio |"
    )
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for suite, plain, wrapped, changed, passing in rows:
        commit = subprocess.run(
            ["git", "-C", str(suite.checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        fails = [sum(o in ("failed", "error") for o in r.tests.values()) for r in (plain, wrapped)]
        print(
            f"| {suite.name} | {commit} | {len(plain.tests)} | {fails[0]} / {fails[1]} | "
            f"{plain.exit_code} / {wrapped.exit_code} | {len(changed)} | "
            f"{len(wrapped.incidents)} | "
            f"{len(passing)} | {wrapped.expected_deaths} | {wrapped.not_covered} | "
            f"{plain.wall_s:.1f} s / {wrapped.wall_s:.1f} s | {wrapped.wall_s / plain.wall_s:.2f} |"
        )
    if options.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\nlogs, JUnit files and bundles in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
