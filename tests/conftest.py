"""Shared helpers: copy a scenario suite, run it wrapped and unwrapped, read its triage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Test modules import these helpers as `forensics_testkit`: the name works however pytest was
# started (`pytest`, `python -m pytest`, any rootdir), since this conftest is always imported first.
sys.modules.setdefault("forensics_testkit", sys.modules[__name__])

SCENARIOS = Path(__file__).parent / "scenarios" / "crashy"
RUN_TIMEOUT_S = 240.0

# pytest-benchmark (when installed) warns under xdist; `-p no:NAME` is accepted by pytest even
# when no plugin of that name is installed, so this is safe on machines without it.
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:benchmark"]


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that would make a child think it is supervised or a
    worker of *this* test session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FORENSICS_", "PYTEST_XDIST_", "PYTEST_ADDOPTS", "PYTEST_CURRENT"))
        and k not in ("PYTEST_PLUGINS", "PYTHONFAULTHANDLER")
    }
    env.update(extra)
    return env


def shell_status(returncode: int) -> int:
    """The status a shell reports: 128+N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str] | str,
    cwd: Path,
    *,
    timeout: float = RUN_TIMEOUT_S,
    shell: bool = False,
    env: dict[str, str] | None = None,
) -> Proc:
    """Run to the end in a session of its own; on timeout the whole session is SIGKILLed."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        shell=shell,
        env=env if env is not None else clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{argv!r} did not finish in {timeout:g}s:\n{err.decode()[-3000:]}")
    return Proc(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def copy_scenario(name: str, dest: Path) -> Path:
    """A private copy of tests/scenarios/crashy/NAME, with a pytest.ini that pins its rootdir."""
    target = dest / name
    shutil.copytree(SCENARIOS / name, target)
    ini = target / "pytest.ini"
    if not ini.exists():
        ini.write_text("[pytest]\n")
    return target


def report_json(bundle: Path, cwd: Path | None = None) -> dict[str, Any]:
    proc = run(
        [sys.executable, "-m", "forensics", "report", str(bundle), "--format", "json"],
        cwd or bundle.parent,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@dataclass
class WrapResult:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path
    bundle: Path
    triage: dict[str, Any]
    # The same command run without forensics, in a fresh copy of the suite.
    unwrapped: Proc | None = None
    unwrapped_cwd: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def incidents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.triage["incidents"]
        return result

    def by_test(self, nodeid: str) -> list[dict[str, Any]]:
        return [i for i in self.incidents if i["test"] == nodeid]

    def one(self, nodeid: str) -> dict[str, Any]:
        found = self.by_test(nodeid)
        assert len(found) == 1, (nodeid, [(i["cause"], i["summary"]) for i in self.incidents])
        return found[0]


def wrap(
    scenario: str,
    command: Sequence[str],
    base: Path,
    *,
    unwrapped: bool = True,
    timeout: float = RUN_TIMEOUT_S,
    hang_timeout: float | None = None,
) -> WrapResult:
    """Run COMMAND in a copy of SCENARIO under `forensics wrap`, then (if *unwrapped*) the same
    command without forensics in another copy, and read the bundle's triage."""
    base.mkdir(parents=True, exist_ok=True)
    cwd = copy_scenario(scenario, base / "wrapped")
    bundle = cwd / "bundle"
    options = ["--hang-timeout", str(hang_timeout)] if hang_timeout is not None else []
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), *options]
    argv += ["--", *command]
    proc = run(argv, cwd, timeout=timeout)
    result = WrapResult(
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        cwd=cwd,
        bundle=bundle,
        triage=report_json(bundle, cwd),
    )
    if unwrapped:
        plain_cwd = copy_scenario(scenario, base / "plain")
        result.unwrapped = run(list(command), plain_cwd, timeout=timeout)
        result.unwrapped_cwd = plain_cwd
    return result


@pytest.fixture(scope="session")
def wrap_scenario(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., WrapResult]:
    def _wrap(scenario: str, command: Sequence[str], **kwargs: Any) -> WrapResult:
        return wrap(scenario, command, tmp_path_factory.mktemp(scenario), **kwargs)

    return _wrap


# --- running as an unprivileged user (root CI re-runs scenarios as `nobody`) ------------------

UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def unprivileged_python() -> str:
    """An interpreter with forensics installed that `nobody` can run: this one, or the one
    .ci/run installs for it (UNPRIVILEGED_PYTHON) when this one lives under a private home."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    why = ""
    for python in (os.environ.get("UNPRIVILEGED_PYTHON"), sys.executable):
        if not python:
            continue
        probe = subprocess.run(
            [*UNPRIVILEGED, python, "-c", "import forensics, pytest, xdist"],
            capture_output=True,
            text=True,
            cwd="/",
        )
        if probe.returncode == 0:
            return python
        why = probe.stderr.strip()[-300:]
    why = f"no interpreter with forensics that nobody can run: {why}"
    if os.environ.get("CI"):
        pytest.fail(why + " (.ci/run sets UNPRIVILEGED_PYTHON)")
    pytest.skip(why)


def unprivileged_dir(prefix: str) -> Path:
    """A fresh directory `nobody` owns, on a path it can reach (pytest's tmp_path is 0700)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    os.chown(base, 65534, 65534)
    return base


def chown_tree(path: Path) -> None:
    for entry in [path, *path.rglob("*")]:
        os.chown(entry, 65534, 65534, follow_symlinks=False)
