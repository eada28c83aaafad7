"""The arrows between the packages: collectors and the supervisor record facts and never need
the analyzer or the views; the analyzer reads bundles and never runs collectors (a bundle is
often read on another machine than the one that ran the tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import forensics

ROOT = Path(forensics.__file__).parent

# Modules of forensics.collect the analyzer may import, and why: pure readers of a data format.
ANALYZE_MAY_IMPORT_FROM_COLLECT: dict[str, str] = {}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from forensics.analyze import hangs` imports forensics.analyze.hangs.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> dict[str, set[str]]:
    folder = ROOT / package.replace(".", "/")
    return {
        ".".join(("forensics", *p.relative_to(ROOT).with_suffix("").parts)): _imports(p)
        for p in sorted(folder.rglob("*.py"))
    }


def _violations(packages: tuple[str, ...], banned: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for package in packages
        for module, names in _modules(package).items()
        for name in sorted(names)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_the_scan_sees_real_imports() -> None:
    # A parser that found nothing would pass every rule below.
    assert "forensics.collect.nativelib" in _modules("supervise")["forensics.supervise.owners"]
    assert "forensics.blame" in _modules("analyze")["forensics.analyze.attribution"]


def test_collectors_and_supervisor_never_import_the_analyzer_or_views() -> None:
    banned = ("forensics.analyze", "forensics.render", "forensics.commands")
    assert _violations(("collect", "supervise"), banned) == []


def test_analyzer_never_runs_collectors_or_the_supervisor() -> None:
    collectors = [
        name
        for name in _modules("collect")
        if name not in ANALYZE_MAY_IMPORT_FROM_COLLECT and name != "forensics.collect.__init__"
    ]
    banned = (*collectors, "forensics.supervise", "forensics.agents", "forensics.commands")
    assert _violations(("analyze", "render"), banned) == []


def test_neutral_modules_import_only_neutral_modules() -> None:
    # Shared by every side, so they may import none of them.
    neutral = [
        "blame",
        "faultparse",
        "kernel_lines",
        "owners",
        "rules",
        "stackrecords",
        "model",
        "bundle",
    ]
    sides = ("forensics.analyze", "forensics.collect", "forensics.supervise", "forensics.render")
    for name in neutral:
        imports = _imports(ROOT / f"{name}.py")
        assert [i for i in imports if i.startswith(sides)] == [], name


def test_collectors_and_supervisor_take_from_the_agent_only_its_shared_copy() -> None:
    # agents.ptracer hands the supervisor the agent's own Yama functions and variable name, so
    # both sides agree; the rest of the agent runs inside the user's processes only.
    imported = {
        name
        for package in ("collect", "supervise")
        for names in _modules(package).values()
        for name in names
        if name.startswith("forensics.agents")
    }
    shared = "forensics.agents.ptracer"
    assert shared in imported
    assert [n for n in imported if n != shared and not n.startswith(shared + ".")] == []


def test_agents_import_only_what_runs_inside_the_test_process() -> None:
    banned = ("forensics.analyze", "forensics.render", "forensics.collect", "forensics.supervise")
    assert _violations(("agents",), banned) == []
