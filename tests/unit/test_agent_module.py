"""The in-process agent module: the names it shares with the bundle format, and its encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from forensics import bundle
from forensics.agents.bootstrap import SITE_DIR, agent

_agent = agent()


def test_names_agree_with_the_bundle_format() -> None:
    assert _agent.ENV_BUNDLE == bundle.ENV_BUNDLE
    assert _agent.WORKERS_DIR == bundle.WORKERS_DIR
    assert _agent.FAULTS_DIR == bundle.FAULTS_DIR
    assert int(_agent.DUMP_SIGNAL) == int(bundle.DUMP_SIGNAL)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_values)
def test_the_start_up_encoder_writes_json_that_reads_back(value: object) -> None:
    assert json.loads(_agent._dumps(value)) == value


def test_values_json_cannot_hold_become_null() -> None:
    assert json.loads(_agent._dumps([float("inf"), float("nan")])) == [None, None]


def test_the_agent_loads_without_the_forensics_package(tmp_path: Path) -> None:
    """A user package called `forensics` wins over ours in a wrapped process."""
    (tmp_path / "forensics").mkdir()
    (tmp_path / "forensics" / "__init__.py").write_text("MINE = True\n")
    for sub in ("workers", "faults"):
        (tmp_path / "b" / sub).mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(SITE_DIR),
        "FORENSICS_BUNDLE": str(tmp_path / "b"),
    }
    code = "import sys, forensics; print(forensics.MINE, '_forensics_agent' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["True", "True"], done.stderr
    (record,) = (tmp_path / "b" / "workers").glob("*.jsonl")
    start = json.loads(record.read_text().splitlines()[0])
    assert start["kind"] == "process-start" and start["how"] == "exec"
