from __future__ import annotations

import json
import time

import pytest

from forensics.model import (
    Evidence,
    Frame,
    Incident,
    ProcessTimeline,
    Run,
    Source,
    Stack,
    TimelineTest,
    Triage,
)
from forensics.redact import Redactor, is_redacted, is_secret_name

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
GH = "ghp_" + "A1b2C3d4E5" * 4
ENV = {
    "HOME": "/home/alice",
    "GITHUB_TOKEN": "plain-looking-value-42",
    "PGPASSWORD": "hunter2hunter2",
    "SENTRY_DSN": "https://abc123@o1.ingest.example/7",
    "PATH": "/usr/bin:/bin",
    "XDG_SESSION_TYPE": "wayland",
    "PWD": "/home/alice/proj",
    "SHORT_TOKEN": "abc",
}


@pytest.fixture
def r() -> Redactor:
    return Redactor.from_environ(ENV)


@pytest.mark.parametrize(
    ("secret", "marker"),
    [
        (GH, "<redacted:github-token>"),
        ("github_pat_" + "x" * 40, "<redacted:github-token>"),
        ("AKIAIOSFODNN7EXAMPLE", "<redacted:aws-access-key-id>"),
        ("sk-ant-api03-" + "q" * 40, "<redacted:anthropic-key>"),
        ("sk-proj-" + "Z" * 48, "<redacted:openai-key>"),
        ("hf_" + "k" * 34, "<redacted:huggingface-token>"),
        ("xoxb-123456789012-abcdefABCDEF", "<redacted:slack-token>"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "<redacted:jwt>",
        ),
    ],
)
def test_token_formats_are_replaced_by_a_labelled_marker(
    r: Redactor, secret: str, marker: str
) -> None:
    out = r.text(f"E   AssertionError: bad credentials {secret} (status 401)")
    assert secret not in out
    assert marker in out
    assert out.startswith("E   AssertionError: bad credentials ")


def test_secret_env_values_are_scrubbed_anywhere(r: Redactor) -> None:
    out = r.text("connecting with plain-looking-value-42 and pw=hunter2hunter2!")
    assert "plain-looking-value-42" not in out
    assert "hunter2hunter2" not in out
    assert "<redacted:$GITHUB_TOKEN>" in out


def test_values_of_path_like_or_short_secret_names_are_left_alone(r: Redactor) -> None:
    text = "session wayland on /usr/bin:/bin abc"
    assert r.text(text) == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://bob:s3cretpw@db:5432/x", "postgres://bob:<redacted:secret>@db:5432/x"),
        ("--password=hunter99 --tb=short", "--password=<redacted:secret> --tb=short"),
        ("run --token abcdef123 -x", "run --token <redacted:secret> -x"),
        ("OPENAI_API_KEY=abc123xyz OTHER=1", "OPENAI_API_KEY=<redacted:secret> OTHER=1"),
        ('{"password": "pa55word"}', '{"password": "<redacted:secret>"}'),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer <redacted:secret>"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG",
            "aws_secret_access_key = <redacted:secret>",
        ),
    ],
)
def test_secret_syntax_keeps_the_name_and_drops_the_value(
    r: Redactor, raw: str, expected: str
) -> None:
    assert r.text(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tests/test_secret.py::test_token_refresh PASSED",
        "KeyError: <WorkerController gw3>",
        'File "/usr/lib/python3.11/tokenize.py", line 537, in _tokenize',
        "Basic functionality works as expected",
        "x == y",
    ],
)
def test_ordinary_text_is_unchanged(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def test_token_after_an_ordinary_assignment_is_still_caught(r: Redactor) -> None:
    assert r.text(f"header={GH}") == "header=<redacted:github-token>"


def test_home_is_shortened_only_as_a_whole_path_component(r: Redactor) -> None:
    assert r.text("/home/alice/proj/x.py and /home/alicex") == "~/proj/x.py and /home/alicex"


def test_argv_hides_the_word_after_a_secret_flag(r: Redactor) -> None:
    argv = ["pytest", "--token", "abc", "-k", "login", f"--api-key={GH}", "tests/"]
    assert r.argv(argv) == [
        "pytest",
        "--token",
        "<redacted:secret>",
        "-k",
        "login",
        "--api-key=<redacted:secret>",
        "tests/",
    ]


def test_env_for_the_manifest_blanks_secret_names(r: Redactor) -> None:
    env = r.env(ENV)
    assert env["GITHUB_TOKEN"] == "<redacted>"
    assert env["SHORT_TOKEN"] == "<redacted>"
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["PWD"] == "~/proj"


def test_no_redact_changes_nothing() -> None:
    off = Redactor.disabled()
    assert off.text(GH) == GH
    assert off.env({"GITHUB_TOKEN": "x"}) == {"GITHUB_TOKEN": "x"}


def test_long_output_is_scrubbed_fast(r: Redactor) -> None:
    filler = "tests/test_a.py::test_b PASSED KeyError token count 12345 " * 2 + "\n"
    big = f"Authorization: Bearer abcdefghijklmnopq\n{filler * 90_000}{GH}\n/home/alice/x\n"
    assert len(big) > 10_000_000
    # CPU time, not wall time: a loaded machine (other jobs on the same cores) stretches the
    # wall clock, not the work this process does.
    started = time.process_time()
    out = r.text(big)
    elapsed = time.process_time() - started
    assert GH not in out
    assert "abcdefghijklmnopq" not in out
    assert out.endswith("<redacted:github-token>\n~/x\n")
    # Generous; the line filter makes this ~0.5 s of CPU, a scrub of every line many times that.
    assert elapsed < 8


def test_secret_names() -> None:
    assert is_secret_name("AWS_SECRET_ACCESS_KEY")
    assert is_secret_name("pgpassword")
    assert not is_secret_name("SSH_AUTH_SOCK")
    assert not is_secret_name("XDG_SESSION_ID")
    assert not is_secret_name("PATH")


def _triage() -> Triage:
    return Triage(
        source=Source("bundle", ["/home/alice/b"]),
        run=Run(command=["pytest", "-n", "4", "--token", "tok-value-1", f"--x={GH}"]),
        incidents=[
            Incident(
                id="I1",
                cause="native-crash",
                confidence="high",
                summary=f"worker crashed printing {GH}",
                test="tests/test_x.py::test_y",
                evidence=[
                    Evidence("output.log:3", "password=hunter2hunter2 plain-looking-value-42")
                ],
                stacks=[Stack(1, "t", [Frame("f", "/home/alice/proj/m.py", 3)])],
                repro="GITHUB_TOKEN=plain-looking-value-42 pytest tests/test_x.py",
                extra={"memory": {"limit_bytes": 10}, "note": f"see {GH}"},
            )
        ],
        timelines=[
            ProcessTimeline(
                pid=1,
                worker="gw0",
                argv=["python", "--password", "pw-in-argv"],
                tests=[TimelineTest(f"tests/t.py::test[{GH}]", 1.0, 2.0, "passed")],
                memory=[(1.0, 100)],
            )
        ],
        notes=[f"py-spy failed with {GH}"],
        environment={"packages": {"psutil": "7.0"}, "GITHUB_TOKEN": "plain-looking-value-42"},
    )


def test_triage_is_a_redacted_deep_copy(r: Redactor) -> None:
    t = _triage()
    before = json.dumps(t.to_dict())
    out = r.triage(t)
    dumped = json.dumps(out.to_dict())
    for secret in (GH, "hunter2hunter2", "plain-looking-value-42", "pw-in-argv", "tok-value-1"):
        assert secret not in dumped
    assert "/home/alice" not in dumped
    assert out.incidents[0].stacks[0].frames[0].file == "~/proj/m.py"
    assert out.timelines[0].memory == [(1.0, 100)]
    assert out.incidents[0].extra["memory"] == {"limit_bytes": 10}
    assert is_redacted(out)
    assert not is_redacted(t)
    assert json.dumps(t.to_dict()) == before


def test_disabled_triage_is_not_marked_redacted() -> None:
    out = Redactor.disabled().triage(_triage())
    assert not is_redacted(out)
    assert GH in json.dumps(out.to_dict())


def test_planted_secrets_reach_no_view() -> None:
    """The issue's acceptance check, at the view level: env, argv, output and assertion text."""
    from forensics.render import render

    env = {"HOME": "/home/alice", "MY_SERVICE_TOKEN": "planted-env-secret-1", "CI": "true"}
    planted = ["planted-env-secret-1", GH, "argv-pass-77", "hunter2hunter2", "/home/alice"]
    t = _triage()
    t.run.command = ["pytest", "--password", "argv-pass-77", "tests/"]
    t.incidents[0].evidence.append(
        Evidence("output.log:40", "E   AssertionError: token planted-env-secret-1 != ''")
    )
    t.incidents[0].summary = f"died printing {GH}"
    redacted = Redactor.from_environ({**ENV, **env}).triage(t)
    for fmt in ("json", "text", "markdown", "html"):
        out = render(redacted, fmt)
        for secret in planted:
            assert secret not in out, (fmt, secret)
    manifest_env = json.dumps(Redactor.from_environ(env).env(env))
    assert "planted-env-secret-1" not in manifest_env
    assert "/home/alice" not in manifest_env


def test_manifest_placeholders_do_not_hide_live_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", value)
    redactor = Redactor.for_run({"AWS_SECRET_ACCESS_KEY": "<redacted>"})
    assert value not in redactor.text(f"AssertionError: {value}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mysql -u root -pS3cretPw db < x.sql", "mysql -u root -p<redacted:secret> db < x.sql"),
        ("redis://:pw123@cache:6379/0", "redis://:<redacted:secret>@cache:6379/0"),
        ("Cookie: sessionid=abc123; csrftoken=xyz", "Cookie: <redacted:cookie>"),
        ("{'Set-Cookie': 'sid=abcd; HttpOnly'}", "{'Set-Cookie': '<redacted:cookie>'}"),
        ("curl -u alice:wonderland https://x", "curl -u alice:<redacted:secret> https://x"),
        (
            "post to https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX failed",
            "post to https://hooks.slack.com/services/<redacted:slack-webhook> failed",
        ),
        (
            "https://discord.com/api/webhooks/123456789/abcDEF-_x9",
            "https://discord.com/api/webhooks/<redacted:discord-webhook>",
        ),
        (
            "GET https://a.blob.core.windows.net/f?sv=2022-11-02&sig=abcDEF%2Bghi%3D 403",
            "GET https://a.blob.core.windows.net/f?sv=2022-11-02&sig=<redacted:sas-signature> 403",
        ),
        (
            "key:\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0abc\n=abcd\n"
            "-----END PGP PRIVATE KEY BLOCK-----\nafter",
            "key:\n<redacted:private-key>\nafter",
        ),
        # A block cut short (a truncated log) loses its armored lines all the same.
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: x\n\nlQOYBF0abc\nlQOYBF0\nnext line",
            "<redacted:private-key>\nnext line",
        ),
    ],
)
def test_more_secret_shapes(r: Redactor, raw: str, expected: str) -> None:
    assert r.text(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "python -m pytest -pno:randomly -p no:cacheprovider tests/",
        "docker run -u 1000:1000 image",
        "python -u script.py",
        "cd /src && python -m pytest -n 0 -- tests/test_a.py::test_b[x-1]",
    ],
)
def test_commands_that_look_close_are_unchanged(r: Redactor, text: str) -> None:
    assert r.text(text) == text


def test_argv_forms_of_the_new_shapes(r: Redactor) -> None:
    assert r.argv(["mysql", "-uroot", "-pS3cret", "db"]) == [
        "mysql",
        "-uroot",
        "-p<redacted:secret>",
        "db",
    ]
    assert r.argv(["curl", "-u", "bob:pw1", "u"]) == ["curl", "-u", "bob:<redacted:secret>", "u"]
    assert r.argv(["pytest", "-pxdist", "-u", "1:2"]) == ["pytest", "-pxdist", "-u", "1:2"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POSTGRES_PASSWORD", "postgres"),
        ("MYSQL_ROOT_PASSWORD", "root"),
        ("DB_PASSWORD", "test_password"),
        ("API_TOKEN", "12345678"),
        ("REDIS_PASSWORD", "Testing"),
    ],
)
def test_word_like_secret_values_are_not_replaced_everywhere(name: str, value: str) -> None:
    r = Redactor.from_environ({name: value})
    path = f"tests/test_{value.lower()}.py::test_connect[{value}]"
    repro = f"cd /src && python -m pytest -n 0 -- {path}"
    assert r.text(path) == path
    assert r.text(repro) == repro
    # ...but still where the syntax says it is a secret.
    out = r.text(f"{name}={value} redis://u:{value}@db/x")
    assert out == f"{name}=<redacted:secret> redis://u:<redacted:secret>@db/x"


def test_distinctive_secret_values_are_still_replaced_everywhere() -> None:
    for value in ("hunter2hunter2", "plain-looking-value-42", "correct-horse-battery-staple"):
        r = Redactor.from_environ({"SOME_TOKEN": value})
        assert value not in r.text(f"echoed {value} here")


def test_the_triage_says_what_was_redacted_and_how_to_see_it(r: Redactor) -> None:
    out = r.triage(_triage())
    note = out.notes[-1]
    assert note.startswith("redacted: ") and "$GITHUB_TOKEN" in note and "--no-redact" in note
    assert not any(n.startswith("redacted: ") for n in Redactor.disabled().triage(_triage()).notes)
