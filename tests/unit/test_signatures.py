"""normalize(): run-specific noise out, meaning kept."""

from __future__ import annotations

from forensics.analyze.logs.signatures import MAX_SIGNATURE, normalize


def test_queue_closed_from_two_runs_groups() -> None:
    a = normalize(
        "ValueError: Queue <multiprocessing.queues.Queue object at 0x7f0c3c6c2e40> is closed"
    )
    b = normalize(
        "ValueError: Queue <multiprocessing.queues.Queue object at 0x7f5e21a8d1c0> is closed"
    )
    assert a == b == "ValueError: Queue <multiprocessing.queues.Queue object at <addr>> is closed"


def test_worker_pid_temp_paths_numbers() -> None:
    text = (
        "KeyError: <WorkerController gw13> pid 4242 in /tmp/pytest-of-runner/pytest-7/test_x0/f.py"
        " after 3.5s, 12 retries"
    )
    assert (
        normalize(text)
        == "KeyError: <WorkerController gw?> pid <n> in <tmp> after <n>s, <n> retries"
    )


def test_names_with_digits_are_kept() -> None:
    assert normalize("test_case_2 python3.11 sha256") == "test_case_2 python3.11 sha256"


def test_uuid_hex_ansi_whitespace() -> None:
    text = "\x1b[31mjob 123e4567-e89b-12d3-a456-426614174000  commit deadbeef12345678\x1b[0m"
    assert normalize(text) == "job <uuid> commit <hex>"


def test_bounded() -> None:
    assert len(normalize("x" * 10_000)) == MAX_SIGNATURE
