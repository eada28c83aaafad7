"""Secrets planted everywhere a real run can carry them never reach a report or the manifest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from forensics_testkit import clean_env

pytestmark = pytest.mark.slow

GITHUB = "ghp_" + "Zq8Lr2Nw5Xc7Vb9Mk1Jh3Gf6Ds4Ap0Ty2Ue8"
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CUSTOM = "corp-internal-" + "7f3a9b2c4d5e6f70"
PASSWORD = "hunter2-" + "but-longer-9431"

SUITE = textwrap.dedent(
    f"""
    import ctypes, os

    def test_prints_secrets():
        print("token is", os.environ["GITHUB_TOKEN"], "and", os.environ["MY_SERVICE_SECRET"])
        print("db: postgres://app:{PASSWORD}@db.internal:5432/app")
        # Failing makes pytest show the captured output, as CI logs do.
        assert False, "see the output"

    def test_asserts_with_secret():
        assert os.environ["AWS_SECRET_ACCESS_KEY"] == "nope", os.environ["AWS_SECRET_ACCESS_KEY"]

    def test_crashes_after_printing():
        print(os.environ["MY_SERVICE_SECRET"], flush=True)
        ctypes.string_at(8)

    def test_evil_name_<script>alert(1)</script>():
        pass
    """
).replace("test_evil_name_<script>alert(1)</script>", "test_evil")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("secrets")
    (tmp / "test_secrets.py").write_text(SUITE)
    env = clean_env(GITHUB_TOKEN=GITHUB, AWS_SECRET_ACCESS_KEY=AWS, MY_SERVICE_SECRET=CUSTOM)
    env.pop("GITHUB_STEP_SUMMARY", None)
    bundle = tmp / "bundle"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "forensics",
            "wrap",
            "--bundle",
            str(bundle),
            "--",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            f"--basetemp={tmp / 'base'}",
            "-o",
            f"markers=db(postgres://app:{PASSWORD}@h/x)",
            "test_secrets.py",
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return bundle


def _views(bundle: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    views = {
        "manifest.json": (bundle / "manifest.json").read_text(),
        "report.html (wrap)": (bundle / "report.html").read_text(),
    }
    for fmt in ("json", "text", "markdown", "html"):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "forensics",
                "report",
                str(bundle),
                "--format",
                fmt,
                "-o",
                str(bundle.parent / f"view.{fmt}"),
            ],
            capture_output=True,
            text=True,
            env=env or clean_env(),
            check=True,
        )
        assert out.returncode == 0
        views[fmt] = (bundle.parent / f"view.{fmt}").read_text()
    return views


@pytest.mark.parametrize("secret", [GITHUB, AWS, CUSTOM, PASSWORD])
def test_no_view_carries_a_secret(run: Path, secret: str) -> None:
    # Reports made later, in the same job, where the run's environment is still set.
    env = clean_env(GITHUB_TOKEN=GITHUB, AWS_SECRET_ACCESS_KEY=AWS, MY_SERVICE_SECRET=CUSTOM)
    for name, text in _views(run, env).items():
        assert secret not in text, f"{secret[:8]}... leaked into {name}"


def test_the_secrets_were_really_there(run: Path) -> None:
    """The raw output holds them, so the test above proves redaction, not absence."""
    raw = (run / "output.log").read_text()
    assert CUSTOM in raw and GITHUB in raw
    assert (run / "manifest.json").read_text().count("<redacted") >= 3


def test_known_token_formats_are_scrubbed_even_without_the_environment(run: Path) -> None:
    views = _views(run)
    for name, text in views.items():
        assert GITHUB not in text, name
        assert PASSWORD not in text, name


def test_the_crash_is_still_reported(run: Path) -> None:
    text = (run.parent / "view.text").read_text() if (run.parent / "view.text").exists() else ""
    if not text:
        text = _views(run)["text"]
    assert "native-crash" in text and "test_crashes_after_printing" in text
