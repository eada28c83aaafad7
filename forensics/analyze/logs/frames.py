"""What the frames of a dump tell: the stack that crashed, the test it ran (by its node id or
the file pytest's progress line named), the pytest phase, and the third-party library."""

from __future__ import annotations

from forensics.analyze.logs.findings import FaultRecord
from forensics.model import Frame, Stack
from forensics.rules import is_harness_path

PHASE_BY_HOOK = {
    "pytest_runtest_setup": "setup",
    "pytest_runtest_call": "call",
    "pytest_runtest_teardown": "teardown",
    "pytest_collect_file": "collect",
    "pytest_make_collect_report": "collect",
}


def function_of(test: str) -> str:
    """The test function of a node id: ``a/test_x.py::T::test_y[1]`` -> ``test_y``."""
    return test.rsplit("::", 1)[-1].split("[", 1)[0]


def current_stack(fault: FaultRecord) -> Stack | None:
    """The thread that crashed (faulthandler's "Current thread"), else the first one."""
    for stack in fault.stacks:
        if stack.state == "current":
            return stack
    return fault.stacks[0] if fault.stacks else None


def _runner_frame(frame: Frame) -> bool:
    # The test machinery's frames, not the code that crashed: one set with bundles.
    return is_harness_path(frame.file)


def node_id_from_frames(frames: list[Frame], rootdir: str | None) -> str | None:
    """The node id of the innermost ``test*`` function in a test file, relative to rootdir."""
    for frame in frames:  # innermost first, as faulthandler prints
        base = (frame.file or "").replace("\\", "/").rsplit("/", 1)[-1]
        if frame.name.startswith("test") and (
            base.startswith("test_") or base.endswith("_test.py")
        ):
            path = frame.file or base
            if rootdir and path.startswith(rootdir.rstrip("/") + "/"):
                path = path[len(rootdir.rstrip("/")) + 1 :]
            return f"{path}::{frame.name}"
    return None


def node_id_in_file(frames: list[Frame], progress_file: str | None) -> str | None:
    """The test function among the frames of the file pytest's progress line named."""
    if not progress_file:
        return None
    base = progress_file.replace("\\", "/").rsplit("/", 1)[-1]
    for frame in frames:
        if (
            frame.name.startswith("test")
            and (frame.file or "").replace("\\", "/").rsplit("/", 1)[-1] == base
        ):
            return f"{progress_file}::{frame.name}"
    return None


def frames_of(fault: FaultRecord) -> list[Frame]:
    """The frames of the thread that crashed."""
    stack = current_stack(fault)
    return stack.frames if stack else []


def phase_of(frames: list[Frame]) -> str | None:
    """The pytest phase (setup, call, teardown, collect) a pytest hook frame shows."""
    for frame in frames:
        if frame.name in PHASE_BY_HOOK:
            return PHASE_BY_HOOK[frame.name]
    return None


def library_of(frames: list[Frame]) -> str | None:
    """The package of the innermost non-runner frame under site-packages, if any."""
    for frame in frames:
        path = (frame.file or "").replace("\\", "/")
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path and not _runner_frame(frame):
                return path.split(marker, 1)[1].split("/", 1)[0]
    return None


def all_frames(stacks: list[Stack]) -> list[Frame]:
    """Every frame of a dump: the test's own is the one named test* in a test file."""
    return [frame for stack in stacks for frame in stack.frames]
