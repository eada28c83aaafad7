"""The HTML report in a real browser: it renders, its script runs without errors, and data
stays text.  Needs Debian's ``chromium`` (CI installs it); skipped, saying so, without it."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

from forensics.render.html import render_html

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = _load(REPO / "tests/unit/test_render_html.py", "_render_samples")


def chromium(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="forensics-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1400,2000",
                *args,
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def script_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or "SyntaxError" in line]


def test_error_detection_works(tmp_path: Path) -> None:
    # Without this, a Chromium that logs differently would make the real test pass vacuously.
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>undefinedFunction();</script>")
    result = chromium(page, "--dump-dom")
    assert script_errors(result.stderr), result.stderr[-2000:]


def test_report_renders_without_script_errors(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(samples.sample_triage()))
    result = chromium(page, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert script_errors(result.stderr) == []
    dom = result.stdout
    # The timeline script ran to its end: it marks the canvas after drawing every row.
    assert re.search(r'<canvas id="timeline"[^>]*data-drawn="8"', dom), dom[-3000:]
    # Data stayed text: the test id is shown escaped, no element was made from it.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert '<img src="x"' not in dom
    assert 'id="incident-I1"' in dom


def test_screenshot_is_taken(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(samples.sample_triage()))
    shot = tmp_path / "report.png"
    result = chromium(page, f"--screenshot={shot}")
    assert script_errors(result.stderr) == []
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KB


@pytest.mark.slow
def test_twelve_workers_by_twenty_thousand_tests(tmp_path: Path) -> None:
    bench = _load(REPO / "benchmarks/html_bench.py", "_html_bench")
    html = render_html(bench.synthetic_triage(workers=12, tests_per_worker=20_000))
    assert len(html.encode()) <= 10 * 1024 * 1024
    page = tmp_path / "big.html"
    page.write_text(html)
    result = chromium(page, "--dump-dom", timeout=300)
    assert script_errors(result.stderr) == []
    assert re.search(r'<canvas id="timeline"[^>]*data-drawn="12"', result.stdout)
