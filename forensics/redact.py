"""Redaction of secrets in everything forensics shows or writes: on by default, in every view.

Two kinds of secret are scrubbed:

* the *values* of environment variables whose names look secret (``GITHUB_TOKEN``,
  ``PGPASSWORD``, ``SENTRY_DSN``...), wherever those values appear — a token echoed by a test
  has no recognisable shape, only its value identifies it;
* well-known token formats and secret-bearing syntax (``ghp_...``, ``AKIA...``, JWTs,
  ``scheme://user:pass@host``, ``--password=x``, ``API_KEY=x``...), which catch secrets
  that were never in the environment we can see.

The user's home directory becomes ``~`` (it names the user and is noise in an upstream issue).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from forensics.model import ProcessTimeline, TimelineTest, Triage

MARK = "<redacted>"
# Set on a triage that went through :meth:`Redactor.triage`; a renderer that does not find it
# tells its reader that the view is NOT redacted.
REDACTED_FLAG = "redacted"

# Parts of a variable name that make its value a secret.
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIAL|AUTH|DSN|PRIVATE|SESSION|COOKIE|"
    r"SIGNATURE|SALT|_PASS$|^PASS",
    re.IGNORECASE,
)
# Names that match the pattern above but hold paths, sockets or desktop facts: scrubbing their
# values would mangle ordinary paths and words ("ubuntu", "/run/user/1000/bus") everywhere.
_NOT_SECRET_NAME = re.compile(
    r"^(?:PWD|OLDPWD|XAUTHORITY|SSH_AUTH_SOCK|GPG_AGENT_INFO|DESKTOP_SESSION|KEYRING_BACKEND)$"
    r"|^(?:XDG_|DBUS_|GIT_AUTHOR_|GIT_COMMITTER_)"
    r"|(?:_DIR|_PATH|_FILE|_SOCK|_HOME|_ID_TOKEN_REQUEST_URL)$|AUTHOR|MONKEY|KEYBOARD|KEYMAP",
    re.IGNORECASE,
)
# A secret-named variable's value is replaced *wherever it appears* only when it could not be
# part of an ordinary name: CI services set POSTGRES_PASSWORD=postgres, and scrubbing "postgres"
# everywhere would turn tests/test_postgres.py into an unusable path.  Short or word-like values
# are still scrubbed where the syntax says they are secrets (PASSWORD=x, a URL's password...).
_MIN_SECRET_LEN = 8
_WORD_LIKE = re.compile(r"(?:[a-z]+|[A-Z]+|[A-Z][a-z]+)(?:[-_. ]+(?:[a-z]+|[A-Z]+|[A-Z][a-z]+))*")
_LONG_ENOUGH_ANYWAY = 20

_SECRET_WORD = (
    r"(?:password|passwd|passphrase|pwd|token|secret|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|secret[-_]?key|client[-_]?secret|credentials?|auth[-_]?token|dsn)"
)

# (kind, pattern). A pattern may hold a group named ``<kind>_keep``: its text is kept in front
# of the marker (the option or variable name, the URL's user), so the output stays readable.
_FORMATS: tuple[tuple[str, str], ...] = (
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("aws-access-key-id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|None-)?[A-Za-z0-9_-]{20,}"),
    ("stripe-key", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    (
        "bearer",
        r"(?P<bearer_keep>\b(?:authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:basic|bearer|token)"
        r"[ \t]+|(?-i:Bearer)[ \t]+))[A-Za-z0-9._~+/=-]{12,}",
    ),
    # The user may be empty: redis://:pw@host.
    (
        "url-password",
        r"(?P<url_keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"'<>]*:)[^\s@/\"'<>]+(?=@)",
    ),
    # --password=x, --token x, -p? (no: too ambiguous)
    (
        "cli",
        r"(?P<cli_keep>(?<![\w-])--?(?:[A-Za-z0-9]+[-_])*" + _SECRET_WORD + r"(?:=|[ \t]+))"
        r"(?![-<])[^\s\"']+",
    ),
    # API_KEY=x, password: x, "token": "x". Any name=value matches (possessively: a pattern that
    # looked for the secret word inside the name backtracks through every word, 10x slower);
    # _replace keeps the value of a name that is not secret, after scrubbing it.
    (
        "assignment",
        r"(?P<assignment_keep>(?<![A-Za-z0-9_.-])(?P<assignment_name>[A-Za-z0-9_.-]++)[\"']?"
        r"[ \t]*[=:][ \t]*[\"']?)(?![=<\s:])(?P<assignment_value>[^\s\"',;)}\]]{3,})",
    ),
)

# Shapes that the formats above would let through (a name=value of an ordinary-looking name).
# Scanned in a second pass, only over text holding one of their triggers: as alternatives of
# the one pattern they made every scan ~80% slower.
_SHAPES: tuple[tuple[str, str], ...] = (
    (
        "slack-webhook",
        r"(?P<slack_keep>hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/-]{8,}",
    ),
    (
        "discord-webhook",
        r"(?P<discord_keep>(?:discord|discordapp)\.com/api/webhooks/)[0-9]+/[A-Za-z0-9_-]+",
    ),
    # An Azure SAS token's signature (also S3-style presigned URLs' "Signature=").
    ("sas-signature", r"(?P<sas_keep>(?<=[?&])(?:sig|signature)=)[A-Za-z0-9%+/=_-]{8,}"),
    # Cookie: a=b; c=d and Set-Cookie: ... (to the end of the header or of the quoted value).
    ("cookie", r"(?P<cookie_keep>\b(?:set-)?cookie[\"']?[ \t]*:[ \t]*[\"']?)[^\s\"'][^\r\n\"']*"),
    # curl -u user:pw, --user user:pw (the user is kept; uid:gid pairs are not passwords).
    (
        "user-password",
        r"(?P<user_keep>(?<![\w-])(?:-u|--user)(?:=|[ \t]+)[\"']?[^\s:\"'-][^\s:\"']*:)"
        r"(?!\d+(?:[\s\"']|$))[^\s\"']+",
    ),
    # mysql -pSECRET (the password glued to -p; only after a MySQL client, where -p means it).
    (
        "mysql-password",
        r"(?P<mysql_keep>\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|"
        r"mariadb|mariadb-dump|mariadb-admin)\b[^\r\n|;&]*?[ \t]-p)[^\s\"']+",
    ),
)
_SHAPE_TRIGGERS = (
    "hooks.slack.com", "/api/webhooks/", "sig=", "signature=", "cookie", "-u ", "-u=", "--user",
    "mysql", "mariadb",
)  # fmt: skip

_SECRET_WORD_RE = re.compile(_SECRET_WORD.replace("pwd|", ""), re.IGNORECASE)
# PEM keys and PGP private key blocks; a block cut short (no END line) loses its armored lines.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,65536}?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:\r?\n(?:[A-Za-z0-9+/=]*|[A-Za-z-]+: [^\r\n]*)(?=\r?\n|$))*)"
)
# Every format above contains one of these (lower-cased). A long text is searched for them with
# str.find, and only the lines that hold one go through the combined pattern: scanning 10 MB
# with the pattern itself takes ~10 s, with find ~0.2 s.
_TRIGGERS = (
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "akia", "asia", "agpa", "aida",
    "aroa", "sk-", "k_live_", "k_test_", "hf_", "xox", "aiza", "glpat-", "npm_", "eyj",
    "bearer", "authorization", "://", "passw", "passphrase", "pwd", "token", "secret", "private",
    "api_key", "api-key", "apikey", "access_key", "access-key", "accesskey", "credential", "dsn",
    *_SHAPE_TRIGGERS,
)  # fmt: skip
_LONG = 8192

# Kinds whose marker says only "secret": the syntax around it already says what it was.
_SYNTAX_KINDS = frozenset(
    {"cli", "assignment", "bearer", "url-password", "user-password", "mysql-password"}
)
_MYSQL_CLIENT = re.compile(r"^(?:mysql\w*|mariadb(?:-\w+)?)$")
_USER_FLAG = ("-u", "--user")
_UID_GID = re.compile(r"^\d+:\d+$")

_CLI_FLAG = re.compile(r"^--?(?:[A-Za-z0-9]+[-_])*" + _SECRET_WORD + r"$", re.IGNORECASE)

T = TypeVar("T")


def is_distinctive_value(value: str) -> bool:
    """Whether a secret's value is safe to replace everywhere: long, and not words or a number."""
    if len(value) < _MIN_SECRET_LEN or value == MARK or value.startswith("<redacted"):
        return False
    if value.isdigit() and len(value) < _LONG_ENOUGH_ANYWAY:
        return False
    if value.startswith("/") and os.path.exists(value):
        return False  # a path (a socket, a config file): replacing it mangles paths
    return len(value) >= _LONG_ENOUGH_ANYWAY or not _WORD_LIKE.fullmatch(value)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret."""
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.search(name)


def _group_name(kind: str) -> str:
    return "k_" + kind.replace("-", "_")


class Redactor:
    """Scrubs secrets from strings, argv lists, environments and whole triages."""

    def __init__(
        self,
        secrets: Mapping[str, str] | None = None,
        home: str | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        # What was replaced, by marker label: the report tells its reader.
        self.counts: Counter[str] = Counter()
        # Longest first, so a secret that contains another is replaced whole.
        self._literals = sorted((secrets or {}).items(), key=lambda kv: -len(kv[1]))
        self.home = home.rstrip("/") if home and home.rstrip("/") else None
        alternatives = [f"(?P<{_group_name(kind)}>{pattern})" for kind, pattern in _FORMATS]
        if self.home:
            alternatives.append(r"(?P<k_home>(?<![\w/.-])" + re.escape(self.home) + r"(?![\w.-]))")
        self._triggers = (*_TRIGGERS, self.home.lower()) if self.home else _TRIGGERS
        # One combined pattern: a line is scanned once, not once per format.
        # Every secret starts a word; the lookbehind rejects mid-word positions before the
        # alternatives are tried, which makes the scan three times faster.
        self._pattern = re.compile(
            r"(?<![A-Za-z0-9_])(?:" + "|".join(alternatives) + ")", re.IGNORECASE
        )
        shapes = [f"(?P<{_group_name(kind)}>{pattern})" for kind, pattern in _SHAPES]
        self._shapes = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(shapes) + ")", re.IGNORECASE)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, home: str | None = None
    ) -> Redactor:
        """A redactor for the secrets in ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        secrets = {
            name: value
            for name, value in env.items()
            if is_secret_name(name) and is_distinctive_value(value)
        }
        if home is None:
            home = env.get("HOME") or os.path.expanduser("~")
        return cls(secrets, home)

    @classmethod
    def for_run(cls, run_env: Mapping[str, str] | None = None) -> Redactor:
        """The run's environment (where known) merged with this process's: both may hold secrets."""
        merged = dict(os.environ)
        # A manifest's placeholders must not hide the live value this process can still see.
        merged.update({k: v for k, v in (run_env or {}).items() if not v.startswith("<redacted")})
        return cls.from_environ(merged, home=os.environ.get("HOME") or os.path.expanduser("~"))

    @classmethod
    def disabled(cls) -> Redactor:
        """For ``--no-redact``: changes nothing; the triage it returns is not marked redacted."""
        return cls(enabled=False)

    # -- strings -------------------------------------------------------------------------------

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        if kind == "k_home":
            return "~"
        if kind == "k_assignment" and not _SECRET_WORD_RE.search(match["assignment_name"]):
            return match["assignment_keep"] + self._pattern.sub(
                self._replace, match["assignment_value"]
            )
        keep_group = kind[2:].split("_")[0] + "_keep"
        keep = match.group(keep_group) if keep_group in match.re.groupindex else None
        label = kind[2:].replace("_", "-")
        if label in _SYNTAX_KINDS:
            label = "secret"
        self.counts[label] += 1
        return (keep or "") + f"<redacted:{label}>"

    def _private_key(self, match: re.Match[str]) -> str:
        del match
        self.counts["private-key"] += 1
        return "<redacted:private-key>"

    def text(self, s: str) -> str:
        if not self.enabled or not s:
            return s
        for name, value in self._literals:
            if value in s:
                self.counts[f"${name}"] += s.count(value)
                s = s.replace(value, f"<redacted:${name}>")
        if "PRIVATE KEY" in s:
            s = _PRIVATE_KEY.sub(self._private_key, s)
        low = s.lower()
        if len(low) != len(s):  # a few non-ASCII letters change length when lowered
            return self._sub(s)
        if len(s) < _LONG:
            if any(trigger in low for trigger in self._triggers):
                return self._sub(s)
            return s
        return self._long_text(s, low)

    def _sub(self, s: str) -> str:
        s = self._pattern.sub(self._replace, s)
        low = s.lower()
        if any(trigger in low for trigger in _SHAPE_TRIGGERS):
            s = self._shapes.sub(self._replace, s)
        return s

    def _long_text(self, s: str, low: str) -> str:
        spans: list[tuple[int, int]] = []
        for trigger in self._triggers:
            i = low.find(trigger)
            while i >= 0:
                start = s.rfind("\n", 0, i) + 1
                end = s.find("\n", i)
                end = len(s) if end < 0 else end
                spans.append((start, end))
                i = low.find(trigger, end)
        if not spans:
            return s
        out: list[str] = []
        pos = 0
        for start, end in sorted(spans):
            if end <= pos:
                continue
            start = max(start, pos)
            out.append(s[pos:start])
            out.append(self._sub(s[start:end]))
            pos = end
        out.append(s[pos:])
        return "".join(out)

    def argv(self, argv: Iterable[str]) -> list[str]:
        """Scrub a command line; ``--token VALUE`` as two words loses VALUE too, as do
        ``mysql -pVALUE`` and the password of ``curl -u USER:VALUE``."""
        words = list(argv)
        if not self.enabled:
            return words
        mysql = bool(words) and bool(_MYSQL_CLIENT.match(os.path.basename(words[0])))
        out: list[str] = []
        previous = ""
        for word in words:
            if _CLI_FLAG.match(previous):
                self.counts["secret"] += 1
                out.append("<redacted:secret>")
            elif mysql and word.startswith("-p") and len(word) > 2:
                self.counts["secret"] += 1
                out.append("-p<redacted:secret>")
            elif previous in _USER_FLAG and ":" in word.lstrip(":") and not _UID_GID.match(word):
                self.counts["secret"] += 1
                out.append(word.split(":", 1)[0] + ":<redacted:secret>")
            else:
                out.append(self.text(word))
            previous = word
        return out

    def env(self, d: Mapping[str, str]) -> dict[str, str]:
        """For the manifest: secret-named variables become ``<redacted>``, the rest are scrubbed."""
        if not self.enabled:
            return dict(d)
        return {k: (MARK if is_secret_name(k) else self.text(v)) for k, v in d.items()}

    # -- the model -----------------------------------------------------------------------------

    def triage(self, t: Triage) -> Triage:
        """A redacted deep copy of ``t``: every string in it goes through :meth:`text`."""
        if not self.enabled:
            return copy.deepcopy(t)
        self.counts.clear()
        out = self._walk(dataclasses.replace(t, timelines=[]))
        if t.run.command is not None:
            out.run.command = self.argv(t.run.command)
        out.timelines = [self._timeline(tl) for tl in t.timelines]
        out.environment[REDACTED_FLAG] = True
        if self.counts:
            out.notes.append(self.summary())
        return out

    def summary(self) -> str:
        """One line for the reader: what was replaced, and how to see it."""
        found = ", ".join(f"{n} x {label}" for label, n in sorted(self.counts.items()))
        return (
            f"redacted: {found} (shown as <redacted:...>); `--no-redact` shows them, "
            "in a report not to be shared"
        )

    def lines(self, items: list[str]) -> list[str]:
        """``text`` of each item, scanned as one text: 20,000 test ids per worker are common."""
        if any("\n" in x for x in items):
            return [self.text(x) for x in items]
        out = self.text("\n".join(items)).split("\n")
        # A multi-line secret format could merge lines; then do it one by one.
        return out if len(out) == len(items) else [self.text(x) for x in items]

    def _timeline(self, tl: ProcessTimeline) -> ProcessTimeline:
        names = self.lines([x.test for x in tl.tests])
        outcomes = self.lines([x.outcome or "" for x in tl.tests])
        tests = [
            TimelineTest(name, x.start, x.end, outcome if x.outcome is not None else None)
            for x, name, outcome in zip(tl.tests, names, outcomes, strict=True)
        ]
        return dataclasses.replace(
            tl,
            worker=None if tl.worker is None else self.text(tl.worker),
            argv=self.argv(tl.argv),
            end_reason=None if tl.end_reason is None else self.text(tl.end_reason),
            tests=tests,
            memory=list(tl.memory),
        )

    def _walk(self, obj: T) -> T:
        return self._scrub(obj)  # type: ignore[no-any-return]

    def _scrub(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if obj is None or isinstance(obj, (int, float)):
            return obj
        if isinstance(obj, list):
            return [self._scrub(x) for x in obj]
        if isinstance(obj, tuple):
            return tuple(self._scrub(x) for x in obj)
        if isinstance(obj, dict):
            return {
                k: (
                    MARK
                    if isinstance(k, str) and is_secret_name(k) and isinstance(v, str)
                    else self._scrub(v)
                )
                for k, v in obj.items()
            }
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            # copy + setattr, not dataclasses.replace: a big run has 240,000 timeline tests,
            # and replace() re-runs __init__ for each (3x slower).
            new = copy.copy(obj)
            for name in _field_names(type(obj)):
                setattr(new, name, self._scrub(getattr(obj, name)))
            return new
        return copy.deepcopy(obj)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def is_redacted(t: Triage) -> bool:
    """Whether ``t`` went through a redactor (renderers label views that did not)."""
    return bool(t.environment.get(REDACTED_FLAG))
