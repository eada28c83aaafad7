"""Loaded by every Python process of a wrapped run: ``forensics wrap`` puts this directory first
on ``PYTHONPATH``.  It starts the agent (``_forensics_agent`` beside it), then runs the
``sitecustomize`` this one shadows, if there is one, under its own name, so the user's start-up
code runs as it would without forensics.  PYTEST_DONT_REWRITE
"""


def _forensics_start() -> None:
    import os
    import sys

    try:
        import _forensics_agent  # type: ignore[import-not-found]

        _forensics_agent.activate()
    except Exception:  # the agent must never break the user's interpreter
        pass
    # The next sitecustomize on sys.path after this directory: a module, a package or compiled.
    import importlib.machinery

    here = os.path.dirname(os.path.abspath(__file__))
    rest = []
    for entry in sys.path:
        try:
            if entry and os.path.abspath(entry) != here:
                rest.append(entry)
        except (TypeError, ValueError):
            continue
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    import importlib.util

    module = importlib.util.module_from_spec(spec)
    ours = sys.modules.get("sitecustomize")
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        # site.py prints a failing sitecustomize's error and goes on; so do we.
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        import traceback

        traceback.print_exc()


_forensics_start()
del _forensics_start
