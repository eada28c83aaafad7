"""The one copy of the in-process agent, whoever asks for it.

Under ``forensics wrap`` the ``sitecustomize`` has already imported the agent as
``_forensics_agent``; with ``pytest --forensics-bundle DIR`` (no wrap) it is loaded here from the
package, under the same name, so the pytest plugin and the process start-up share one state.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

AGENT_MODULE = "_forensics_agent"
SITE_DIR = Path(__file__).resolve().parent / "site"


def agent() -> ModuleType:
    module = sys.modules.get(AGENT_MODULE)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(AGENT_MODULE, SITE_DIR / f"{AGENT_MODULE}.py")
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships in the wheel
        raise ImportError(f"cannot load the forensics agent from {SITE_DIR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[AGENT_MODULE] = module
    spec.loader.exec_module(module)
    return module
