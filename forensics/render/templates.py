"""The one jinja2 environment every templated view uses.

Templates live at the repository's top-level ``templates/``; the wheel carries them as
``forensics/templates`` (``force-include`` in pyproject.toml).  The installed location is tried
first, so an installed package never reads a stray checkout's templates.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

import forensics

_PACKAGE_DIR = Path(forensics.__file__).resolve().parent


def template_dirs() -> list[Path]:
    """Where templates are looked up, installed package first, then an editable checkout."""
    candidates = [_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"]
    return [d for d in candidates if (d / "report.html").is_file()]


@cache
def environment() -> jinja2.Environment:
    dirs = template_dirs()
    if not dirs:
        raise RuntimeError(
            f"forensics templates not found in {_PACKAGE_DIR / 'templates'} or "
            f"{_PACKAGE_DIR.parent / 'templates'}; reinstall forensics"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        # Every value from a triage is data from the run (test ids, output): escape it all,
        # whatever the file name, rather than trusting an extension list.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Compact JSON: the timeline block of a 240,000-test run is most of the report's size.
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "sort_keys": False}
    return env


def render_report(kind: str, **context: Any) -> str:
    """Render ``templates/<kind>.html`` with ``context``."""
    return environment().get_template(f"{kind}.html").render(**context)
