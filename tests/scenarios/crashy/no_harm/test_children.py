"""A suite whose tests start, inspect, crash and kill their own processes on purpose."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

LIST_FDS = (
    "import json, os\n"
    "fds = {}\n"
    "for fd in os.listdir('/proc/self/fd'):\n"
    "    try:\n"
    "        fds[fd] = os.readlink('/proc/self/fd/' + fd)\n"
    "    except OSError:\n"
    "        pass\n"
    "print(json.dumps(fds))\n"
)


def _regular_files(fds):
    return sorted(t for t in fds.values() if t.startswith("/") and not t.startswith("/dev/"))


def test_exec_child_holds_no_regular_file():
    out = subprocess.run([sys.executable, "-c", LIST_FDS], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _regular_files(json.loads(out.stdout)) == []


def test_fork_child_holds_nothing_of_the_agent():
    bundle = os.environ.get("FORENSICS_BUNDLE") or "/nonexistent-bundle"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        held = [
            os.readlink(f"/proc/self/fd/{fd}")
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        ]
        os.write(w, repr([h for h in held if h.startswith(bundle)]).encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 65536) == b"[]"
    assert status == 0


def test_child_faulthandler_left_as_configured():
    # Set but empty: Python leaves faulthandler off, and so must the agent.
    env = {**os.environ, "PYTHONFAULTHANDLER": ""}
    code = "import faulthandler; print(faulthandler.is_enabled())"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert off.stdout.strip() == "False"
    env["PYTHONFAULTHANDLER"] = "1"
    crash = "import ctypes; ctypes.string_at(0)"
    on = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, env=env)
    assert on.returncode == -signal.SIGSEGV
    # The library asked for the dump on the child's stderr: it must be there.
    assert "Fatal Python error: Segmentation fault" in on.stderr


def test_kills_its_own_child():
    child = subprocess.Popen(["sleep", "60"])
    child.kill()
    assert child.wait() == -signal.SIGKILL


def test_child_crashes_on_purpose():
    crash = subprocess.run([sys.executable, "-c", "import os; os.abort()"], capture_output=True)
    assert crash.returncode == -signal.SIGABRT


def test_isolated_child_is_out_of_reach():
    out = subprocess.run([sys.executable, "-I", "-c", "import time; time.sleep(0.3)"])
    assert out.returncode == 0


def test_fails_then_kills_its_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        raise AssertionError("the service never answered")
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def crashed_helper():
    helper = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"])
    time.sleep(0.2)
    return helper.returncode


def test_helper_crashed_in_setup(crashed_helper):
    time.sleep(0.2)
    assert crashed_helper == 0, "the helper process crashed"


def _inner_pytest(tmp_path, body, *args):
    (tmp_path / "test_inner.py").write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        capture_output=True,
        text=True,
    )


def test_inner_pytest_without_faulthandler(tmp_path):
    # As in pytest's own suite: with its faulthandler plugin disabled, faulthandler stays off.
    body = "import faulthandler\n\ndef test_off():\n    assert not faulthandler.is_enabled()\n"
    done = _inner_pytest(tmp_path, body, "-p", "no:faulthandler")
    assert done.returncode == 0, done.stdout


def test_inner_session_fails_on_purpose(tmp_path):
    done = _inner_pytest(tmp_path, "def test_inner_failure():\n    assert 1 == 2\n")
    assert done.returncode == 1 and "1 failed" in done.stdout
