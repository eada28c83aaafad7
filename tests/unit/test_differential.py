"""The differential: every death cause weighed against the facts a source has."""

from __future__ import annotations

from forensics.analyze.differential import DeathFacts, Hypothesis, conclude, weigh


def _verdicts(found: list[Hypothesis]) -> dict[str, str]:
    return {h.cause: h.verdict for h in found}


def test_a_silent_worker_death_without_a_header_is_a_crash_or_a_timeout_exit() -> None:
    # Seed 000's excerpt: "[gw8] node down: Not properly terminated" and nothing else.
    found = weigh(DeathFacts(source="log"))
    verdicts = _verdicts(found)
    assert verdicts["native-crash"] == "possible"
    assert verdicts["hang"] == "possible"
    # A SIGKILL (the OOM killer's) and os._exit() end a worker as silently as a crash does.
    assert verdicts["oom-kill"] == verdicts["unexpected-exit"] == "possible"
    assert verdicts["external-kill"] == "not excluded"
    assert conclude(found, prefer="native-crash") == ("native-crash", "low")


def test_thread_method_and_a_worker_silent_for_the_timeout_is_a_hang() -> None:
    facts = DeathFacts(
        source="log", timeout_s=20.0, timeout_method="thread", silent_s=20.4, silent_of="worker"
    )
    found = weigh(facts)
    assert found[0].cause == "hang" and found[0].verdict == "most likely"
    assert any("20.4 s" in x for x in found[0].for_)
    # The log cannot see a signal: a crash stays open, so the confidence is medium.
    assert _verdicts(found)["native-crash"] == "not excluded"
    assert conclude(found) == ("hang", "medium")


def test_a_worker_that_printed_shortly_before_it_died_was_not_ended_by_the_timer() -> None:
    facts = DeathFacts(
        source="log", timeout_s=20.0, timeout_method="thread", silent_s=3.0, silent_of="worker"
    )
    found = weigh(facts)
    assert _verdicts(found)["hang"] == "ruled out"
    assert _verdicts(found)["native-crash"] == "possible"
    assert conclude(found) == ("native-crash", "low")


def test_a_death_before_the_timer_could_fire_rules_the_timer_out() -> None:
    facts = DeathFacts(source="log", timeout_s=20.0, timeout_method="thread", since_begin_s=4.0)
    assert _verdicts(weigh(facts))["hang"] == "ruled out"


def test_header_without_times_leaves_a_hang_possible_and_a_crash_not_excluded() -> None:
    found = weigh(DeathFacts(source="log", timeout_s=20.0, timeout_method="thread"))
    verdicts = _verdicts(found)
    assert verdicts["hang"] == "possible"
    assert verdicts["native-crash"] == "not excluded"
    assert conclude(found, prefer="native-crash") == ("hang", "low")


def test_no_pytest_timeout_among_the_plugins_rules_the_timer_out() -> None:
    found = weigh(DeathFacts(source="log", timeout_plugin=False))
    assert _verdicts(found)["hang"] == "ruled out"
    assert conclude(found, prefer="native-crash") == ("native-crash", "low")


def test_signal_method_does_not_end_a_worker() -> None:
    found = weigh(DeathFacts(source="log", timeout_s=5.0, timeout_method="signal"))
    assert _verdicts(found)["hang"] == "ruled out"


def test_bundle_timer_exit_rules_out_every_other_cause() -> None:
    facts = DeathFacts(
        source="bundle",
        status_observed=True,
        exit_code=1,
        timeout_s=5.0,
        timeout_method="thread",
        timer_dump=True,
        ran_s=5.02,
    )
    found = weigh(facts)
    assert found[0].cause == "hang" and found[0].verdict == "most likely"
    assert all(h.verdict == "ruled out" for h in found[1:])
    native = next(h for h in found if h.cause == "native-crash")
    assert "no fatal signal: it exited with status 1" in native.against
    assert conclude(found) == ("hang", "high")


def test_bundle_exit_status_one_before_the_timer_is_an_unexpected_exit() -> None:
    facts = DeathFacts(
        source="bundle",
        status_observed=True,
        exit_code=1,
        timeout_s=5.0,
        timeout_method="thread",
        ran_s=1.0,
    )
    found = weigh(facts)
    assert _verdicts(found)["hang"] == "ruled out"
    assert conclude(found) == ("unexpected-exit", "high")


def test_bundle_segfault_with_a_dump_is_a_confident_native_crash() -> None:
    facts = DeathFacts(source="bundle", status_observed=True, signal="SIGSEGV", fault_dump=True)
    found = weigh(facts)
    assert conclude(found) == ("native-crash", "high")
    assert _verdicts(found)["hang"] == "ruled out"


def test_sigkill_named_by_the_kernel_is_oom_not_an_external_kill() -> None:
    facts = DeathFacts(
        source="bundle",
        status_observed=True,
        signal="SIGKILL",
        oom="Out of memory: Killed process 4242 (python)",
        oom_readable=True,
    )
    found = weigh(facts)
    verdicts = _verdicts(found)
    assert verdicts["oom-kill"] == "most likely"
    assert verdicts["external-kill"] == "ruled out"
    assert conclude(found) == ("oom-kill", "high")


def test_sigkill_without_oom_evidence_it_could_read_is_an_external_kill() -> None:
    facts = DeathFacts(source="bundle", status_observed=True, signal="SIGKILL")
    found = weigh(facts)
    assert _verdicts(found)["oom-kill"] == "not excluded"
    assert conclude(found) == ("external-kill", "medium")


def test_pytest_timeout_loaded_without_a_timeout_leaves_the_timer_open_only() -> None:
    # "plugins: xdist-3.8.0, timeout-2.4.0" but no "timeout:" line: no global timer.
    found = weigh(DeathFacts(source="log", timeout_plugin=True))
    assert _verdicts(found)["hang"] == "not excluded"
    assert _verdicts(found)["native-crash"] == "possible"


def test_a_bundle_death_without_any_record_rules_nothing_out() -> None:
    # A crash item xdist reported for a process the bundle has no record of.
    found = weigh(DeathFacts(source="bundle"))
    assert all(h.verdict == "not excluded" for h in found)
    assert conclude(found, prefer="unknown") == ("unknown", "low")
