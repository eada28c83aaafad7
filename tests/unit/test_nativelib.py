from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from forensics.collect import nativelib
from forensics.collect.nativelib import attribute_library, parse_maps, resolve_address


@pytest.fixture
def fresh_index() -> Iterator[None]:
    nativelib._index.cache_clear()
    yield
    nativelib._index.cache_clear()


def test_psutil_extension_belongs_to_psutil() -> None:
    so = glob.glob(os.path.join(os.path.dirname(psutil.__file__), "_psutil_linux*.so"))[0]
    lib = attribute_library(so)
    assert lib is not None
    assert (lib.distribution, lib.version) == ("psutil", psutil.__version__)
    assert lib.owner() == f"psutil {psutil.__version__}"
    assert not lib.system


def test_bare_soname_is_found_by_its_name() -> None:
    so = glob.glob(os.path.join(os.path.dirname(psutil.__file__), "_psutil_linux*.so"))[0]
    lib = attribute_library(os.path.basename(so))
    assert lib is not None
    assert lib.distribution == "psutil"


@pytest.fixture
def installed_extension(tmp_path: Path, fresh_index: None) -> Iterator[Path]:
    """A compiled library installed the way pip lays out a wheel: package, dist-info, RECORD."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build a shared object")
    site = tmp_path / "site"
    pkg = site / "crashy"
    pkg.mkdir(parents=True)
    src = tmp_path / "crashy.c"
    src.write_text("int crashy_answer(void) { return 42; }\n")
    so = pkg / "_native.cpython-311-x86_64-linux-gnu.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    (pkg / "__init__.py").write_text("")
    info = site / "crashy_native-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crashy-native\nVersion: 0.3.1\n")
    (info / "RECORD").write_text(
        f"crashy/__init__.py,,\ncrashy/{so.name},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
    )
    sys.path.insert(0, str(site))
    try:
        yield so
    finally:
        sys.path.remove(str(site))


def test_fault_address_resolves_to_the_distribution(installed_extension: Path) -> None:
    lib = ctypes.CDLL(str(installed_extension))
    address = ctypes.cast(lib.crashy_answer, ctypes.c_void_p).value
    assert address is not None
    maps = Path("/proc/self/maps").read_text()
    path = resolve_address(os.getpid(), address, maps)
    assert path == str(installed_extension)
    owner = attribute_library(path)
    assert owner is not None
    assert str(owner) == f"{installed_extension} (crashy-native 0.3.1)"


def test_unlisted_object_in_a_package_directory_is_attributed_by_directory(
    installed_extension: Path,
) -> None:
    stray = installed_extension.parent / "_built_in_place.so"
    owner = attribute_library(str(stray))
    assert owner is not None
    assert owner.owner() == "crashy-native 0.3.1"


@pytest.mark.skipif(not shutil.which("dpkg"), reason="needs dpkg (Debian/Ubuntu)")
def test_libc_is_a_system_library() -> None:
    libc = next(
        (
            p
            for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6")
            if os.path.exists(p)
        ),
        None,
    )
    if libc is None:
        pytest.skip("no x86_64 libc at the Debian path")
    lib = attribute_library(libc)
    assert lib is not None
    assert lib.system
    assert lib.distribution == "glibc"
    assert lib.owner().startswith("system glibc 2.")


def test_unknown_object_is_none() -> None:
    assert attribute_library("/nonexistent/dir/libnothing.so") is None
    assert attribute_library("") is None


MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 131 /usr/bin/python3.11
7f3a10000000-7f3a10200000 r-xp 00010000 08:01 777 /venv/lib/robin_sparkless/_native.abi3.so
7f3a10200000-7f3a10300000 rw-p 00000000 00:00 0
7f3a20000000-7f3a20100000 r-xp 00000000 08:01 778 /tmp/gone.so (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_resolve_address_from_captured_maps() -> None:
    assert resolve_address(1, 0x7F3A10001234, MAPS) == "/venv/lib/robin_sparkless/_native.abi3.so"
    assert resolve_address(1, 0x7F3A20000010, MAPS) == "/tmp/gone.so"
    assert resolve_address(1, 0x7F3A10250000, MAPS) is None  # anonymous
    assert resolve_address(1, 0x7FFD00000010, MAPS) is None  # [stack]
    assert resolve_address(1, 0x10, MAPS) is None
    assert len(parse_maps(MAPS)) == 3
