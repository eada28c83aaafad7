"""Decoding /proc signal masks, py-spy JSON and errors, and the SIGINT diagnosis rules."""

from __future__ import annotations

import json

from forensics.analyze.sigint import sigint_reasons
from forensics.collect.procinfo import (
    PipeInfo,
    ProcInfo,
    Signals,
    ThreadInfo,
    _parse_stat,
    _status_fields,
    decode_sigmask,
    sigint_facts,
    signal_name,
)
from forensics.collect.pyspy import classify_failure, parse_pyspy_json, render_text

# Recorded from a vfork() parent on Linux 6.x (trimmed).
STATUS_D = """Name:\tvf
State:\tD (disk sleep)
Tgid:\t4242
PPid:\t1
Threads:\t1
SigQ:\t1/31459
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000002
SigBlk:\t0000000000000000
SigIgn:\t0000000001001000
SigCgt:\t0000000180000002
"""


def test_decode_masks() -> None:
    assert decode_sigmask("0000000000000002") == ["SIGINT"]
    assert decode_sigmask("0000000000004002") == ["SIGINT", "SIGTERM"]
    assert decode_sigmask("0000000001001000") == ["SIGPIPE", "SIGXFSZ"]
    assert decode_sigmask("0000000180000002") == ["SIGINT", "SIG32", "SIG33"]
    assert decode_sigmask("0000000000000000") == []
    assert decode_sigmask("garbage") == []


def test_realtime_names() -> None:
    assert signal_name(34) == "SIGRTMIN"  # the enum's own name
    assert signal_name(35) == "SIGRTMIN+1"
    assert signal_name(63) == "SIGRTMAX-1"
    assert signal_name(2) == "SIGINT"


def test_recorded_status_and_stat() -> None:
    fields = _status_fields(STATUS_D)
    assert fields["State"].startswith("D")
    assert decode_sigmask(fields["ShdPnd"]) == ["SIGINT"]
    # comm may contain spaces and parentheses; ppid comes after the last ")".
    assert _parse_stat("77 (a) b (c)) S 12 77 77 0") == ("a) b (c)", "S", 12)


def _info(**kw: object) -> ProcInfo:
    info = ProcInfo(pid=123, state="S", state_meaning="sleeping")
    info.threads = [ThreadInfo(tid=123, name="python", state="S", wchan=None)]
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def test_diagnosis_d_state() -> None:
    info = _info(state="D", d_state=True, wchan="wait_for_vfork_done")
    assert sigint_reasons(sigint_facts(info)) == [
        "pid 123 is in D-state (uninterruptible sleep in wait_for_vfork_done): no signal, not "
        "even SIGKILL, takes effect until the kernel call returns"
    ]


def test_diagnosis_thread_blocked_and_pending() -> None:
    info = _info()
    info.threads = [
        ThreadInfo(124, "t", "S", None, blocked=["SIGINT"], pending=["SIGINT"]),
        ThreadInfo(123, "m", "S", None),
    ]
    assert "SIGINT is blocked in thread 124 and pending" in sigint_reasons(sigint_facts(info))


def test_diagnosis_ignored_and_full_wakeup_pipe() -> None:
    pipe = PipeInfo(5, "pipe", 9, "w", 65536, 65536, True, writable=False, self_pipe=True)
    info = _info(signals=Signals(ignored=["SIGINT"]), pipes=[pipe])
    reasons = sigint_reasons(sigint_facts(info))
    assert reasons[0] == "SIGINT is ignored (SIG_IGN) in pid 123"
    assert reasons[1].startswith("the signal wakeup pipe fd 5 of pid 123 is full (65536/65536")


def test_diagnosis_nothing_wrong_but_handler() -> None:
    assert sigint_reasons(sigint_facts(_info())) == []
    caught = sigint_reasons(sigint_facts(_info(signals=Signals(caught=["SIGINT"]))))
    assert len(caught) == 1 and "main thread" in caught[0]


PYSPY_JSON = [
    {
        "pid": 7,
        "thread_id": 1,
        "thread_name": "MainThread",
        "os_thread_id": 7,
        "active": True,
        "owns_gil": True,
        "frames": [
            {"name": "pause", "filename": "/lib/libc.so.6", "module": "/lib/libc.so.6", "line": 0},
            {"name": "f", "filename": "/x/a.py", "module": None, "line": 3},
            "not a frame",
        ],
    },
    "not a thread",
]


def test_parse_pyspy_json() -> None:
    stacks = parse_pyspy_json(json.dumps(PYSPY_JSON), 7)
    assert len(stacks) == 1 and stacks[0].thread == "7 MainThread (gil)"
    assert (stacks[0].tid, stacks[0].thread_name, stacks[0].holds_gil) == (7, "MainThread", True)
    assert stacks[0].state == "active"  # py-spy's guess until /proc says otherwise
    native, py = stacks[0].frames
    assert native.native and native.library == "libc.so.6" and native.file is None
    assert not py.native and py.file == "/x/a.py" and py.line == 3
    text = render_text(7, stacks)
    assert 'Thread 7 (active+gil): "MainThread"' in text and "    f (/x/a.py:3)" in text


def test_classify_failure() -> None:
    denied = "Error: Failed to get process executable name.\n Permission denied (os error 13)"
    assert classify_failure(denied, 1)[0] == "ptrace-denied"
    assert classify_failure("Error: Failed to find python version from target process", 1)[0] == (
        "not-python"
    )
    assert classify_failure("anything", 2**22 + 12345)[0] == "exited"


def test_facts_are_facts_and_old_bundles_keep_their_sentences() -> None:
    info = _info()
    info.threads = [ThreadInfo(123, "m", "S", None, blocked=["SIGINT"])]
    facts = sigint_facts(info)
    # Recorded as JSON facts, no English in the bundle.
    assert json.loads(json.dumps(facts)) == facts
    assert not any(isinstance(v, str) and " " in v for v in facts.values())
    assert facts["blocked_threads"] == [123] and facts["ignored"] is False
    assert sigint_reasons(facts) == ["SIGINT is blocked in every thread of pid 123"]
    # A bundle from before: its sentences as they were written; junk is no reason.
    assert sigint_reasons(["SIGINT is ignored (SIG_IGN) in pid 9"]) == [
        "SIGINT is ignored (SIG_IGN) in pid 9"
    ]
    assert sigint_reasons("SIGINT") == [] and sigint_reasons({"pid": [1]}) == []
