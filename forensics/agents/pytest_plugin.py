"""The pytest agent: breadcrumbs of every test, in the controller and in every xdist worker.

Registered under ``pytest11`` and inert unless the run is supervised (``forensics wrap`` sets
``FORENSICS_BUNDLE``) or ``--forensics-bundle DIR`` is given.  Standard library only, besides
pytest itself; xdist hooks are optional so the plugin works without xdist installed.

It changes nothing a test can see: no environment variable is set or unset around tests (a
``setenv`` races with ``getenv`` in native threads); the processes a test starts are tied to
it afterwards, from the process tree and the times in the journals.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from forensics.agents.bootstrap import agent
from forensics.bundle import ENV_BUNDLE, SUBDIRS

_agent = agent()

_BUNDLE_HELP = (
    "write forensics breadcrumbs and fault dumps into this bundle directory "
    "(set automatically under `forensics wrap`)"
)
_active_key = pytest.StashKey[bool]()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MESSAGE_LIMIT = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("forensics", "crash forensics")
    group.addoption("--forensics-bundle", dest="forensics_bundle", default=None, help=_BUNDLE_HELP)
    parser.addini("forensics_bundle", _BUNDLE_HELP, default=None)


def _resolve_bundle(config: pytest.Config) -> str | None:
    """The bundle directory from the command line, the ini file or the environment."""
    value = config.getoption("forensics_bundle", None) or config.getini("forensics_bundle")
    if value:
        path = Path(str(value))
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (path / sub).mkdir(mode=0o700, exist_ok=True)
        # Workers and the processes tests start inherit the environment.
        os.environ[ENV_BUNDLE] = str(path.resolve())
    return os.environ.get(ENV_BUNDLE)


class _Statm:
    """The process's RSS, read with one pread of a descriptor kept open (a test costs two)."""

    fd: int | None = None

    @classmethod
    def rss(cls) -> int | None:
        try:
            if cls.fd is None:
                cls.fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(cls.fd, 128, 0).split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return None

    @classmethod
    def forget(cls) -> None:
        """In a forked child: the descriptor is the parent's statm, and not the child's to hold."""
        if cls.fd is not None:
            try:
                os.close(cls.fd)
            except OSError:
                pass
            cls.fd = None


_rss = _Statm.rss
os.register_at_fork(after_in_child=_Statm.forget)


def _worker_id(config: pytest.Config) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict):
        return str(workerinput.get("workerid"))
    return os.environ.get("PYTEST_XDIST_WORKER")


def _role(config: pytest.Config) -> str:
    if getattr(config, "workerinput", None) is not None:
        return "worker"
    dist = getattr(config.option, "dist", "no")
    numprocesses = getattr(config.option, "numprocesses", None)
    if dist not in (None, "no") or numprocesses:
        return "controller"
    return "single"


def _active(config: pytest.Config) -> bool:
    return config.stash.get(_active_key, False)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _resolve_bundle(config) or not _agent.activate():
        return
    worker = _worker_id(config)
    try:
        # After pytest's faulthandler plugin, which points faulthandler at stderr.
        dump_signal = _agent.enter_pytest(
            worker, faulthandler_plugin=config.pluginmanager.has_plugin("faulthandler")
        )
    except OSError:
        return
    config.stash[_active_key] = True
    _agent.record(
        "session-start",
        dump_signal=dump_signal,
        role=_role(config),
        worker=worker,
        rootdir=str(config.rootpath),
        args=[str(a) for a in config.invocation_params.args],
        invocation_dir=str(config.invocation_params.dir),
        xdist_dist=getattr(config.option, "dist", None),
        plugins=sorted(
            {
                name
                for name, _ in config.pluginmanager.list_name_plugin()
                if name and "/" not in name
            }
        )[:200],
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _active(config):
        _agent.record("session-unconfigure")


def pytest_collectstart(collector: pytest.Collector) -> None:
    if _active(collector.config) and isinstance(collector, pytest.Module):
        _agent.record("collect-start", nodeid=collector.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _agent.state.journal_fd is None:
        return
    if report.failed:
        _agent.record(
            "collect-end",
            nodeid=report.nodeid,
            outcome=report.outcome,
            longrepr=str(report.longrepr)[-_MESSAGE_LIMIT * 4 :],
        )
    elif report.nodeid.endswith(".py"):
        # Module-level collectors: they are where an import-time crash happens.
        _agent.record("collect-end", nodeid=report.nodeid, outcome=report.outcome)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    if not _active(item.config):
        yield
        return
    nodeid = item.nodeid
    # A child forked during the test names it in its start record.
    _agent.state.current_test = nodeid
    _agent.record("test-start", nodeid=nodeid, rss=_rss())
    try:
        yield
    finally:
        # The teardown's phase-end record is the test's end (one write fewer per test).
        _agent.state.current_test = None


def _failure_message(report: pytest.TestReport) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str):
        return message[:_MESSAGE_LIMIT]
    return str(report.longrepr)[-_MESSAGE_LIMIT:]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _agent.state.journal_fd is None:
        return
    node = getattr(report, "node", None)
    fields: dict[str, Any] = {
        "nodeid": report.nodeid,
        "phase": report.when,
        "outcome": report.outcome,
        "duration": round(report.duration, 6),
    }
    if node is not None:
        # A report a worker sent to the controller: what pytest counts.  A passed setup or call
        # adds nothing to the count; the passed teardown says the test finished.
        if report.passed and report.when != "teardown":
            return
        kind = "report"
        fields["worker"] = getattr(getattr(node, "gateway", None), "id", None)
    else:
        kind = "phase-end"
        if report.when == "teardown":
            fields["rss"] = _rss()
    if hasattr(report, "wasxfail"):
        fields["wasxfail"] = True
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        fields["message"] = _failure_message(report)
        fields["location"] = [getattr(crash, "path", None), getattr(crash, "lineno", None)]
        fields["longrepr"] = str(report.longrepr)[-_MESSAGE_LIMIT * 4 :]
    _agent.record(kind, **fields)
    if report.failed and kind == "phase-end":
        _captured_faults(report)


_FATAL = "Fatal Python error: "


def _captured_faults(report: pytest.TestReport) -> None:
    """A fatal error a child of the test printed to the stderr pytest captured (the agent
    leaves children their stderr): the child's only stack, kept for the triage."""
    for section, content in report.sections:
        at = content.find(_FATAL) if isinstance(content, str) else -1
        if at >= 0:
            _agent.record(
                "captured-fault",
                nodeid=report.nodeid,
                phase=report.when,
                section=section,
                text=content[at : at + _MESSAGE_LIMIT * 16],
            )


def pytest_internalerror(excrepr: Any, excinfo: Any) -> None:
    if _agent.state.journal_fd is not None:
        _agent.record("internalerror", text=str(excrepr)[-20000:])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _active(session.config):
        _agent.record("session-finish", exitstatus=int(exitstatus))


# --- pytest-timeout ---------------------------------------------------------------------------

# Our dump fires this long before pytest-timeout's timer, whose thread method ends the process
# with os._exit(1) after printing to a stderr that xdist does not pass on.
_TIMEOUT_LEAD_S = 0.5


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    if not _active(item.config):
        return
    timeout = getattr(settings, "timeout", None)
    method = getattr(settings, "method", None)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        return
    _agent.record("timeout-armed", nodeid=item.nodeid, timeout=timeout, method=method)
    # pytest's own faulthandler_timeout uses the same single faulthandler timer: leave it be.
    if _faulthandler_timeout(item.config) or _agent.state.fault_file is None:
        return
    try:
        import faulthandler

        faulthandler.dump_traceback_later(
            max(timeout - _TIMEOUT_LEAD_S, timeout * 0.9), file=_agent.state.fault_file
        )
        item.stash[_timer_key] = True
    except (ValueError, OSError, RuntimeError):
        pass


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    if item.stash.get(_timer_key, False):
        import faulthandler

        faulthandler.cancel_dump_traceback_later()
        item.stash[_timer_key] = False


_timer_key = pytest.StashKey[bool]()


def _faulthandler_timeout(config: pytest.Config) -> float:
    try:
        return float(config.getini("faulthandler_timeout") or 0)
    except (ValueError, KeyError):
        return 0.0


# --- xdist controller hooks ------------------------------------------------------------------


def _worker_popen(node: Any) -> Any:
    return getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    if _agent.state.journal_fd is None:
        return
    popen = _worker_popen(node)
    _agent.record(
        "node-ready",
        worker=getattr(getattr(node, "gateway", None), "id", None),
        worker_pid=getattr(popen, "pid", None),
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    if _agent.state.journal_fd is None:
        return
    popen = _worker_popen(node)
    returncode = None
    if popen is not None and error is not None:
        # The worker's pipe closed; give the kernel a moment to deliver its exit status.
        deadline = time.monotonic() + 2.0
        while returncode is None and time.monotonic() < deadline:
            returncode = popen.poll()
            if returncode is None:
                time.sleep(0.02)
    _agent.record(
        "node-down",
        worker=getattr(getattr(node, "gateway", None), "id", None),
        worker_pid=getattr(popen, "pid", None),
        error=None if error is None else str(error)[:_MESSAGE_LIMIT],
        returncode=returncode,
    )


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: Any, sched: Any) -> None:
    if _agent.state.journal_fd is None:
        return
    node = getattr(report, "node", None)
    _agent.record(
        "crash-item",
        nodeid=crashitem,
        worker=getattr(getattr(node, "gateway", None), "id", None),
    )
