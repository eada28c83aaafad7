from __future__ import annotations

import pytest

from forensics.bisect.search import ddmin, runs_needed
from forensics.bisect.target import Target
from forensics.bisect.trial import _last_started, junit_names


def _counting(polluters: set[str]) -> tuple[list[list[str]], object]:
    calls: list[list[str]] = []

    def reproduces(subset: list[str]) -> bool:
        calls.append(subset)
        return polluters <= set(subset)

    return calls, reproduces


@pytest.mark.parametrize("index", [0, 17, 30, 49])
def test_ddmin_finds_one_polluter_among_50_in_few_trials(index: int) -> None:
    items = [f"t{i}" for i in range(50)]
    calls, reproduces = _counting({f"t{index}"})
    assert ddmin(items, reproduces) == [f"t{index}"]  # type: ignore[arg-type]
    assert len(calls) <= 14


def test_ddmin_needs_both_of_two_polluters_and_keeps_order() -> None:
    items = [f"t{i}" for i in range(20)]
    _, reproduces = _counting({"t3", "t15"})
    assert ddmin(items, reproduces) == ["t3", "t15"]  # type: ignore[arg-type]


def test_ddmin_result_always_reproduces_even_when_trials_miss() -> None:
    # A flaky predicate that misses every other time it would reproduce.
    state = {"n": 0}

    def flaky(subset: list[str]) -> bool:
        if "t7" not in subset:
            return False
        state["n"] += 1
        return state["n"] % 2 == 0

    result = ddmin([f"t{i}" for i in range(12)], flaky)
    assert "t7" in result


def test_runs_needed() -> None:
    assert runs_needed(3, 3, 10) == 1
    assert runs_needed(1, 2, 10) == 5  # 0.5**5 < 0.05
    assert runs_needed(1, 10, 10) == 10  # capped
    assert runs_needed(0, 3, 10) == 10


def test_junit_names_match_pytest() -> None:
    assert junit_names("tests/sub/test_a.py::TestC::test_m[1-a]") == (
        "tests.sub.test_a.TestC",
        "test_m[1-a]",
    )
    assert junit_names("test_z.py::test_decode") == ("test_z", "test_decode")
    assert junit_names("t.py::test_p[a/b.py]") == ("t", "test_p[a/b.py]")


def test_last_started_is_the_test_running_when_output_stopped() -> None:
    output = "test_a.py::test_x PASSED [ 50%]\ntest_b.py::test_y[a b] Fatal Python error: Aborted\n"
    assert _last_started(output, ["test_a.py::test_x", "test_b.py::test_y[a b]"]) == (
        "test_b.py::test_y[a b]"
    )
    assert _last_started("collected 0 items\n", ["test_a.py::test_x"]) is None


def test_target_command_quotes_and_pins_one_process() -> None:
    target = Target(
        "I1", "native-crash", "t.py::test_v[a b]", ("t.py::test_p",), "/py", "/r s", True
    )
    assert target.shell_command(["t.py::test_p"]) == (
        "cd '/r s' && /py -m pytest -p no:randomly -p no:cacheprovider -n 0 -- t.py::test_p "
        "'t.py::test_v[a b]'"
    )


@pytest.mark.parametrize(
    "nodeid",
    ["--basetemp=/home", "-k", "/etc/passwd", "../outside/test_x.py::t", "t.py::a\nb", ""],
)
def test_only_node_ids_inside_the_checkout_are_accepted(nodeid: str) -> None:
    from forensics.bisect.target import check_node_id
    from forensics.errors import InputError

    with pytest.raises(InputError, match="not a test id"):
        check_node_id(nodeid)


@pytest.mark.parametrize(
    "nodeid", ["tests/test_a.py::test_b[--x-/y]", "t.py::C::test[a b]", ".hidden/t.py::t"]
)
def test_ordinary_node_ids_pass(nodeid: str) -> None:
    from forensics.bisect.target import check_node_id

    assert check_node_id(nodeid) == nodeid
