from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from test_render_html import XSS, sample_triage

from forensics.model import Evidence, Frame
from forensics.redact import Redactor
from forensics.render.ci import github_annotations, report_to_github
from forensics.render.markdown import (
    GITHUB_BODY_LIMIT,
    code,
    markdown_lines,
    md_escape,
    render_markdown,
    title_suggestion,
)


def test_sections_in_the_order_an_upstream_maintainer_reads() -> None:
    lines = list(markdown_lines(sample_triage()))
    headings = [line for line in lines if line.startswith("### ")]
    assert headings[:3] == ["### What happened", "### Environment", "### Reproduce"]
    assert "### Crash excerpt (I1)" in headings
    assert "### Stacks (I1)" in headings
    assert lines[0].startswith("**Suggested title:** SIGSEGV in native code in robin")


def test_title_names_the_signal_library_and_test() -> None:
    title = title_suggestion(sample_triage())
    assert title == (
        "SIGSEGV in native code in robin_sparkless/_native.abi3.so (robin-sparkless 0.11.0) "
        "during test_upper_case under pytest-xdist"
    )


def test_environment_lists_packages_with_versions() -> None:
    lines = list(markdown_lines(sample_triage()))
    assert "| robin-sparkless | 0.11.0 |" in lines
    assert "- python: `3.11.7`" in lines


def test_incident_bullets_carry_facts_and_the_xdist_reference() -> None:
    text = render_markdown(sample_triage())
    assert "- **I1 native-crash** (high): gw3 died of SIGSEGV" in text
    assert "signal `SIGSEGV`" in text
    assert "(see pytest-dev/pytest-xdist#714)" in text
    assert "```sh\npytest -p no:randomly" in text


def test_native_frames_name_their_library() -> None:
    text = render_markdown(sample_triage())
    assert "  native  rs_sparkless_collect [robin_sparkless/_native.abi3.so]" in text


def test_markup_in_data_is_escaped() -> None:
    text = render_markdown(sample_triage())
    assert "<script>" not in text.replace(code(XSS), "")
    assert "\\<b\\>Queue is closed\\</b\\> &amp; friends" in text
    assert md_escape("a*b_[c](d)") == "a\\*b\\_\\[c\\](d)"
    assert code("x `y` z") == "``x `y` z``"


def test_fences_survive_backticks_in_excerpts() -> None:
    t = sample_triage()
    t.incidents[0].evidence = [Evidence("output.log:1", "```\nnot the end\n```")]
    lines = list(markdown_lines(t))
    i = lines.index("From `output.log:1`:")
    assert lines[i + 2] == "````"
    assert lines[i + 6] == "````"


def test_ten_megabytes_of_output_still_fits_an_issue_body() -> None:
    t = sample_triage()
    flood = "".join(f"line {i} of noisy output before the crash\n" for i in range(250_000))
    assert len(flood) > 10_000_000
    t.incidents[0].evidence = [Evidence("output.log:1", flood + "Fatal Python error: Aborted")]
    t.incidents[0].prior_tests = [f"tests/test_{i}.py::test_{i}" for i in range(20_000)]
    many = [dataclasses.replace(t.incidents[1], id=f"I{n}") for n in range(5, 400)]
    for inc in many:
        inc.evidence = [Evidence("output.log:2", flood[:100_000])]
    t.incidents += many
    text = render_markdown(t)
    assert len(text) <= GITHUB_BODY_LIMIT
    # The primary crash keeps its last line and the cut is announced.
    assert "Fatal Python error: Aborted" in text
    assert "earlier characters" in text
    assert "_Cut to fit a GitHub issue: " in text
    assert "### Reproduce" in text


def test_limit_is_respected_even_when_tiny() -> None:
    assert len(render_markdown(sample_triage(), limit=3000)) <= 3000


def test_unredacted_report_says_so() -> None:
    t = sample_triage()
    t.environment.pop("redacted")
    assert "> NOT REDACTED: " in render_markdown(t).replace("\n> [!WARNING]", "")
    assert "NOT REDACTED" not in render_markdown(Redactor.from_environ({}).triage(t))


# GitHub Actions output (forensics.render.ci) is the Markdown view plus annotation lines.


def test_annotations_point_at_the_test_line() -> None:
    lines = github_annotations(sample_triage(), root="/work/repo")
    assert lines[0].startswith(
        "::error file=tests/parity/functions/test_string.py,line=48,"
        "title=native-crash (high confidence)::gw3 died of SIGSEGV"
    )
    assert "%0Anative library: robin_sparkless/_native.abi3.so (robin-sparkless 0.11.0)" in lines[0]
    assert lines[1].startswith("::error file=tests/test_pool.py,line=30,title=hang (medium")
    assert len(lines) == 2  # the OOM and the exception have no line in the repository
    assert all("\n" not in line for line in lines)


def test_annotation_properties_are_escaped() -> None:
    t = sample_triage()
    inc = t.incidents[0]
    inc.stacks[0].frames[2] = Frame("f", "/work/repo/tests/a,b:c.py", 7)
    inc.test = "tests/a,b:c.py::test_x"
    inc.summary = "100% broken\nsecond line"
    line = github_annotations(t, root="/work/repo")[0]
    assert line.startswith("::error file=tests/a%2Cb%3Ac.py,line=7,")
    assert line.endswith(
        "::100%25 broken%0Asecond line%0Anative library: "
        + inc.native_library
        + "%0Areproduce: "
        + (inc.repro or "")
    )


def test_frames_outside_the_repository_are_not_annotated() -> None:
    t = sample_triage()
    t.incidents = [t.incidents[0]]
    t.incidents[0].stacks[0].frames = [
        Frame("collect", "/venv/lib/python3.11/site-packages/x.py", 3),
        Frame("run", "/usr/lib/python3.11/threading.py", 9),
    ]
    assert github_annotations(t, root="/work/repo") == []


def test_step_summary_is_appended(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    out = io.StringIO()
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"}
    assert report_to_github(sample_triage(), env, out)
    text = summary.read_text()
    assert text.startswith("previous step\n**Suggested title:** SIGSEGV")
    assert out.getvalue().count("::error ") == 2
    assert not report_to_github(sample_triage(), {}, io.StringIO())


def test_a_stack_read_from_a_log_is_not_labelled_pid_none() -> None:
    from forensics.analyze.logs import analyze_logs
    from forensics.render.html import render_html

    log = Path(__file__).parent.parent / "fixtures" / "logs" / "real_facts_signal.log"
    triage = analyze_logs([str(log)])
    assert any(s.pid is None for i in triage.incidents for s in i.stacks)
    for text in (render_html(triage), render_markdown(triage)):
        assert "pid None" not in text
        assert "thread &lt;unknown&gt;" in text or "thread <unknown>" in text
