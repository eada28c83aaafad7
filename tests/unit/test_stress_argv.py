from __future__ import annotations

import pytest

from forensics.errors import UsageError
from forensics.stress.argv import at_level, check_pytest_command, command_key, parse_levels


def test_parse_levels_keeps_order_and_drops_repeats() -> None:
    assert parse_levels("0, 4,8,4") == [0, 4, 8]


@pytest.mark.parametrize("text", ["", "0,,4", "-1", "auto", "4x", "0;4"])
def test_parse_levels_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--parallel"):
        parse_levels(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["pytest", "-n", "8", "tests"],
        ["pytest", "-n8", "tests"],
        ["pytest", "-nauto", "tests"],
        ["pytest", "--numprocesses", "3", "tests"],
        ["pytest", "--numprocesses=logical", "tests"],
        ["pytest", "tests"],
    ],
)
def test_at_level_replaces_any_worker_count(argv: list[str]) -> None:
    assert at_level(argv, 4) == ["pytest", "tests", "-n", "4"]
    assert at_level(argv, 0) == ["pytest", "tests", "-n", "0"]


def test_at_level_keeps_other_options() -> None:
    argv = ["python", "-m", "pytest", "-p", "no:randomly", "--dist", "loadfile", "-k", "not slow"]
    assert at_level(argv, 2) == [*argv, "-n", "2"]


def test_command_key_ignores_worker_count() -> None:
    assert command_key(["pytest", "-n", "8", "t"]) == command_key(["pytest", "t", "-n4"])
    assert command_key(["pytest", "-k", "a b"]) == "pytest -k 'a b'"


def test_check_pytest_command() -> None:
    check_pytest_command(["python", "-m", "pytest"])
    check_pytest_command(["/venv/bin/pytest", "tests"])
    with pytest.raises(UsageError, match="pytest command"):
        check_pytest_command(["make", "test"])
