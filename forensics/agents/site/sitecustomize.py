"""Loaded by every Python process of a wrapped run: ``forensics wrap`` puts this directory first
on ``PYTHONPATH``.  It starts the forensics agent, then runs the ``sitecustomize`` that this one
shadows, if there is one, so the user's own start-up code still runs.
"""

from __future__ import annotations


def _forensics_start() -> None:
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        try:
            from forensics.agents import bootstrap
        except ImportError:
            # Another interpreter (a tox env, a venv) without forensics installed: load the
            # agent from this checkout, and have pytest load the plugin the entry point would.
            import importlib.util

            package_dir = os.path.dirname(os.path.dirname(here))
            spec = importlib.util.spec_from_file_location(
                "forensics",
                os.path.join(package_dir, "__init__.py"),
                submodule_search_locations=[package_dir],
            )
            if spec is None or spec.loader is None:
                raise
            module = importlib.util.module_from_spec(spec)
            sys.modules["forensics"] = module
            spec.loader.exec_module(module)
            from forensics.agents import bootstrap

            plugins = os.environ.get("PYTEST_PLUGINS", "")
            if "forensics.agents.pytest_plugin" not in plugins:
                os.environ["PYTEST_PLUGINS"] = ",".join(
                    p for p in (plugins, "forensics.agents.pytest_plugin") if p
                )
        bootstrap.activate()
    except Exception:  # the agent must never break the user's interpreter
        pass
    # Chain to the sitecustomize we shadow: find the next one on sys.path.
    import importlib.util

    for entry in sys.path:
        try:
            if not entry or os.path.abspath(entry) == here:
                continue
        except (TypeError, ValueError):
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location(
                "_forensics_chained_sitecustomize", candidate
            )
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(module)
                except Exception:  # the user's sitecustomize failing is theirs
                    import traceback

                    traceback.print_exc()
            break


_forensics_start()
del _forensics_start
