"""The one rule set that bundles and logs are classified by.

Infrastructure patterns decide that a failure is the network's, a registry's or a service's
fault rather than the code's; harness frames are the test machinery's own code, never the
suspect.  ``triage.py`` (bundles) and ``logs/`` (raw CI logs) both read them from here, so a
message means the same thing whichever way it arrived.

This module imports nothing from forensics: the model and every analyzer can depend on it.
"""

from __future__ import annotations

import re

# Case-insensitive: drivers and CI tools disagree on capitals ("Connection refused",
# "could not connect to server", "CONNECTION REFUSED").
INFRASTRUCTURE = re.compile(
    "|".join(
        (
            # sockets and the exceptions Python raises for them
            r"Connection refused|Connection reset|Connection(?:Refused|Reset|Aborted)Error",
            r"RemoteDisconnected|Max retries exceeded|error sending request for url",
            # name resolution
            r"Name or service not known|Temporary failure in name resolution",
            # socket.gaierror is raised only by getaddrinfo/getnameinfo: a name that did not
            # resolve (pytest's last entry line names it bare: "socket.py:955: gaierror").
            r"Could not resolve host|getaddrinfo failed|\bgaierror\b",
            # Only a network operation's time-out: the bundle side used to count any "timed
            # out", which also matches a subprocess or a test that timed out - a hang or a bug
            # in the code under test, not the network's fault.
            r"(?:Read|Connect(?:ion)?) ?timed out|ReadTimeout|ConnectTimeout|socket\.timeout",
            # HTTP from a registry or a service.  429 counts on both sides now (it used to count
            # for logs only): a rate-limited registry or API fails the run whatever the code.
            r"HTTP Error 5\d\d|\b50[234] (?:Bad Gateway|Service Unavailable|Gateway Time-?out)",
            r"\b429 Too Many Requests|Too Many Requests for url",
            r"Failed to (?:fetch|download|resolve) |Could not connect to",
            # A database or cache that is not up: every test that needs it fails in setUp the
            # same way; the code under test never ran.
            r"could not connect to server|Can't connect to (?:local )?MySQL server",
            # libpq's hint, on a line of its own when pytest splits the message over "E" lines
            r"TCP/IP connections on port \d+\?",
            r"Error \d+ connecting to \S+\. Connection refused",
        )
    ),
    re.IGNORECASE,
)

# Packages of the test machinery: a frame in them is never where a crash is blamed, and a view
# dims it.  The log side used to add "faulthandler" and the bundle side "forensics" and
# "_distutils_hack"; both lists together are right for both.
HARNESS_PACKAGES = (
    "_pytest",
    "pytest",
    "pluggy",
    "xdist",
    "execnet",
    "pytest_timeout",
    "faulthandler",
    "forensics",
    "_distutils_hack",
)
# A package directory, or a single-module plugin ("site-packages/pytest_timeout.py").
HARNESS_PATH = re.compile(
    r"/(?:" + "|".join(HARNESS_PACKAGES) + r")/|/(?:pytest_[a-z_]+|faulthandler)\.py$"
)


def is_harness_path(path: str | None) -> bool:
    """True for a file of the test machinery (Windows separators too)."""
    return bool(path) and bool(HARNESS_PATH.search((path or "").replace("\\", "/")))
