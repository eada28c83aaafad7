import faulthandler
import os
import sys


def test_no_forensics_environment():
    assert not [k for k in os.environ if k.startswith("FORENSICS_")]


def test_faulthandler_untouched():
    # pytest's own faulthandler plugin points it at stderr; the agent must not re-point it.
    assert faulthandler.is_enabled()
    agent = sys.modules.get("_forensics_agent")
    assert agent is None or agent.state.bundle is None


def test_fails():
    assert 1 == 2
