import faulthandler
import os
import sys


def test_no_forensics_environment():
    assert not [k for k in os.environ if k.startswith("FORENSICS_")]


def test_faulthandler_untouched():
    # pytest's own faulthandler plugin points it at stderr; the agent must not re-point it.
    assert faulthandler.is_enabled()
    assert "forensics.agents.bootstrap" not in sys.modules or not __import__(
        "forensics.agents.bootstrap", fromlist=["state"]
    ).state.bundle


def test_fails():
    assert 1 == 2
