"""Whether two names are the same test, as different sources name it.

A bundle's agent and pytest's ``-v`` lines give node ids (``tests/x.py::test_a[1]``); a log may
name the same test from another rootdir (``x.py::test_a[1]``), with Windows separators, by its
file only (a dots line) or by its function only (a section title, a hang dump's frame).
"""

from __future__ import annotations


def _norm(name: str) -> str:
    return name.replace("\\", "/")


def same_node(one: str | None, other: str | None) -> bool:
    """The same test: equal node ids up to a rootdir prefix, or one is the other's function."""
    if not one or not other:
        return False
    a, b = _norm(one), _norm(other)
    if a == b or a.endswith(("/" + b, "::" + b)) or b.endswith(("/" + a, "::" + a)):
        return True
    return ("::" not in a and a == b.rsplit("::", 1)[-1]) or (
        "::" not in b and b == a.rsplit("::", 1)[-1]
    )


def same_test(one: str, other: str) -> bool:
    """:func:`same_node`, or one names only the file of the other (a dots line's test)."""
    a, b = _norm(one), _norm(other)
    if "::" in a and "::" in b:
        (fa, ta), (fb, tb) = a.split("::", 1), b.split("::", 1)
        return ta == tb and (fa.endswith("/" + fb) or fb.endswith("/" + fa) or fa == fb)
    fa, fb = a.split("::", 1)[0], b.split("::", 1)[0]
    return fa == fb or fa.endswith("/" + fb) or fb.endswith("/" + fa)


def last_name(name: str) -> str:
    """The last part of a name, path and class dropped: ``test_a[1]`` of
    ``tests/x.py::Class::test_a[1]``, ``x.py`` of ``tests/x.py``.  Names :func:`same_node` calls
    the same share it, so it keys a lookup (``logs/frames.function_of`` also drops the id)."""
    return _norm(name).rsplit("::", 1)[-1].rsplit("/", 1)[-1]
