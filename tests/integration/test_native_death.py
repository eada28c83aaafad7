"""Native frames at the moment of death: a C library built here crashes three ways under xdist.

Each crash kills its worker; the core the worker leaves is read by pystack while the run goes,
the shared object's owner is resolved, the core is deleted, and the incident names the library
and the faulting function, with what the library printed before it aborted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import PYTEST, clean_env, report_json, run

from forensics.collect.cores import read_core_pattern

pytestmark = pytest.mark.slow

LIBRARY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int widget_read(int *p) { return *p + 1; }

size_t widget_name_length(void) {
    const char *name = NULL;
    return strlen(name);
}

void widget_check(int count) {
    if (count < 0) {
        fprintf(stderr, "widgetlib: invariant violated: widget count %d < 0\n", count);
        fflush(stderr);
        abort();
    }
}
"""

# Staggered: with core_pattern `core` (no pid in the name) two workers crashing in the same
# directory within milliseconds share one core file, and the earlier core is lost.
SUITE = """
import ctypes
import os
import time

LIB = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "libwidget.so"))


def test_segv_in_library():
    LIB.widget_read(None)


def test_null_into_libc():
    time.sleep(2)
    LIB.widget_name_length.restype = ctypes.c_size_t
    LIB.widget_name_length()


def test_abort_after_message():
    time.sleep(4)
    LIB.widget_check(-3)


def test_fine():
    assert True
"""


def _build(where: Path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc) to build the test library")
    (where / "widget.c").write_text(LIBRARY_C)
    subprocess.run(
        [cc, "-g", "-O0", "-shared", "-fPIC", "-o", str(where / "libwidget.so"), "widget.c"],
        cwd=where,
        check=True,
    )


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not read_core_pattern().collectable:
        pytest.skip(f"core_pattern {read_core_pattern().pattern!r} gives no core to read")
    suite = tmp_path_factory.mktemp("native")
    _build(suite)
    (suite / "test_widget.py").write_text(textwrap.dedent(SUITE))
    (suite / "pytest.ini").write_text("[pytest]\n")
    bundle = suite / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle)]
    argv += ["--hang-timeout", "0", "--", *PYTEST, "-n", "2", "-p", "no:randomly", "."]
    proc = run(argv, suite, env=clean_env())
    triage = report_json(bundle, suite)
    return {"suite": suite, "bundle": bundle, "proc": proc, "triage": triage}


def _incident(crashed: dict[str, Any], name: str) -> dict[str, Any]:
    found = [i for i in crashed["triage"]["incidents"] if i["test"] == f"test_widget.py::{name}"]
    assert len(found) == 1, [(i["test"], i["summary"]) for i in crashed["triage"]["incidents"]]
    incident: dict[str, Any] = found[0]
    assert incident["cause"] == "native-crash"
    return incident


def test_segfault_inside_the_library_names_it(crashed: dict[str, Any]) -> None:
    incident = _incident(crashed, "test_segv_in_library")
    assert incident["signal"] == "SIGSEGV"
    assert "libwidget.so" in incident["native_library"]
    assert incident["extra"]["native"]["function"] == "widget_read"
    assert "widget_read (libwidget.so)" in incident["summary"]
    # Native frames of the crashing thread first, the Python test frame in the same stack.
    first = incident["stacks"][0]
    assert first["method"] == "pystack" and first["state"] == "crashed"
    names = [f["name"] for f in first["frames"]]
    assert names.index("widget_read") < names.index("test_segv_in_library")


def test_null_passed_to_libc_names_libc_and_the_caller(crashed: dict[str, Any]) -> None:
    incident = _incident(crashed, "test_null_into_libc")
    native = incident["extra"]["native"]
    assert "strlen" in native["function"] and native["object"] == "libc.so.6"
    assert native["suspect_function"] == "widget_name_length"
    assert "libwidget.so" in incident["native_library"]
    assert "called from widget_name_length (libwidget.so)" in incident["summary"]


def test_abort_message_is_evidence(crashed: dict[str, Any]) -> None:
    incident = _incident(crashed, "test_abort_after_message")
    assert incident["signal"] == "SIGABRT"
    assert incident["extra"]["native"]["function"] == "widget_check"
    excerpts = "\n".join(e["excerpt"] for e in incident["evidence"])
    assert "widgetlib: invariant violated: widget count -3 < 0" in excerpts


def test_cores_are_read_then_deleted(crashed: dict[str, Any]) -> None:
    leftovers = [p.name for p in crashed["suite"].rglob("core*") if p.is_file()]
    assert leftovers == []
    natives = sorted((crashed["bundle"] / "stacks").glob("*.native.json"))
    assert len(natives) == 3
    for incident in crashed["triage"]["incidents"]:
        core = incident["extra"]["native"]["core"]
        assert core["kept"] is False and core["bytes"] > 0
        assert incident["extra"]["native"]["stack_s"] < 30


def test_keep_cores_keeps_them(tmp_path: Path) -> None:
    if not read_core_pattern().collectable:
        pytest.skip("core_pattern gives no core to read")
    _build(tmp_path)
    (tmp_path / "test_one.py").write_text(
        "import ctypes, os\n"
        "LIB = os.path.join(os.path.dirname(__file__), 'libwidget.so')\n"
        "def test_crash():\n"
        "    ctypes.CDLL(LIB).widget_read(None)\n"
    )
    bundle = tmp_path / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--keep-cores", "--bundle", str(bundle)]
    proc = run([*argv, "--", *PYTEST, "-p", "no:randomly", "test_one.py"], tmp_path)
    assert proc.returncode == 139, proc.stderr
    incident = report_json(bundle, tmp_path)["incidents"][0]
    core = incident["extra"]["native"]["core"]
    assert core["kept"] is True and Path(core["path"]).is_file()


RUST_LIB = """
#[unsafe(no_mangle)]
pub extern "C" fn rustwidget_lookup(index: usize) -> u32 {
    let items = [1u32, 2, 3];
    items[index]
}
"""

RUST_SUITE = """
import ctypes
import os
import time

LIB = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "librustwidget.so"))


def test_rust_panic_aborts():
    # The supervisor finds pytest's capture file (where the panic message goes) by looking at
    # the process every 0.25 s; a crash sooner than that is a documented limit, not this test.
    time.sleep(1.0)
    LIB.rustwidget_lookup(7)
"""


def test_rust_panic_names_the_extension(tmp_path: Path) -> None:
    """A panic in an `extern "C"` function cannot unwind: Rust aborts the process."""
    if not read_core_pattern().collectable:
        pytest.skip("core_pattern gives no core to read")
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("no cargo to build the Rust library")
    crate = tmp_path / "rustwidget"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "rustwidget"\nversion = "0.1.0"\nedition = "2024"\n\n'
        '[lib]\ncrate-type = ["cdylib"]\n'
    )
    (crate / "src" / "lib.rs").write_text(RUST_LIB)
    built = subprocess.run(
        [cargo, "build", "--offline", "-q"], cwd=crate, capture_output=True, text=True
    )
    if built.returncode != 0:
        pytest.skip(f"cargo could not build a std-only cdylib here: {built.stderr[-500:]}")
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(crate / "target" / "debug" / "librustwidget.so", suite)
    (suite / "test_rust.py").write_text(textwrap.dedent(RUST_SUITE))
    (suite / "pytest.ini").write_text("[pytest]\n")
    bundle = suite / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--"]
    proc = run([*argv, *PYTEST, "-p", "no:randomly", "test_rust.py"], suite)
    assert proc.returncode == 134, proc.stderr
    incident = report_json(bundle, suite)["incidents"][0]
    assert incident["cause"] == "native-crash" and incident["signal"] == "SIGABRT"
    assert "librustwidget.so" in incident["native_library"]
    assert incident["extra"]["native"]["suspect_function"] == "rustwidget_lookup"
    excerpts = "\n".join(e["excerpt"] for e in incident["evidence"])
    assert re.search(r"thread '[^']*'( \(\d+\))? panicked at src/lib.rs", excerpts), excerpts


def test_without_cores_the_kernel_fault_line_names_the_library(tmp_path: Path) -> None:
    """No core (hard limit 0) and no faulthandler in the child (`python -I`): the kernel's
    `segfault at ... in libwidget.so[...]` line still names the library."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("no prlimit to set a hard core limit of 0")
    _build(tmp_path)
    (tmp_path / "test_child.py").write_text(
        textwrap.dedent(
            """
            import os, subprocess, sys
            LIB = os.path.join(os.path.dirname(__file__), "libwidget.so")
            def test_child_segv():
                code = f"import ctypes; ctypes.CDLL({LIB!r}).widget_read(None)"
                # The test fails because its child crashed: the crash is the incident (a
                # crash during a passing test would be an expected death).
                assert subprocess.run([sys.executable, "-I", "-c", code]).returncode == 0
            """
        )
    )
    bundle = tmp_path / "bundle"
    argv = [prlimit, "--core=0:0", sys.executable, "-m", "forensics", "wrap", "--bundle"]
    argv += [str(bundle), "--", *PYTEST, "-p", "no:randomly", "test_child.py"]
    run(argv, tmp_path)
    triage = report_json(bundle, tmp_path)
    [incident] = [i for i in triage["incidents"] if i["cause"] == "native-crash"]
    native = incident["extra"]["native"]
    if native["method"] != "kernel":
        pytest.skip("the kernel log is not readable here, or printed no fault line")
    assert native["object"] == "libwidget.so"
    assert incident["native_library"].endswith("libwidget.so")
    assert any("hard core size limit is 0" in note for note in triage["notes"])
