"""setup.py's OpenMP probe compiles and links the way the extensions do (with the user's flags)."""
import os
import runpy
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = os.path.join(ROOT, "setup.py")


def _setup_namespace(monkeypatch):
    """setup.py's module namespace, without cythonizing or calling setup()."""
    import Cython.Build
    import setuptools
    monkeypatch.setattr(setuptools, "setup", lambda **kw: None)
    monkeypatch.setattr(Cython.Build, "cythonize", lambda *a, **k: [])
    return runpy.run_path(SETUP, run_name="cydrop_setup")


def _compiler():
    # customize_compiler reads CC/CFLAGS/LDFLAGS/CPPFLAGS now, as build_ext does
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    cc = new_compiler()
    customize_compiler(cc)
    return cc


def _gcc_links_asan(tmp_path):
    src = tmp_path / "a.c"
    src.write_text("int main(void) { return 0; }\n")
    r = subprocess.run(["gcc", "-fsanitize=address", str(src), "-o", str(tmp_path / "a")],
                       capture_output=True)
    return r.returncode == 0


pytestmark = [
    pytest.mark.skipif(not os.path.exists(SETUP), reason="needs the source tree's setup.py"),
    pytest.mark.skipif(sys.platform != "linux" or shutil.which("gcc") is None,
                       reason="needs gcc on Linux"),
]


def _clear_flags(monkeypatch):
    for name in ("CFLAGS", "LDFLAGS", "CPPFLAGS", "LDSHARED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CC", "gcc")


def test_openmp_probe_links_with_the_users_sanitizer_cflags(monkeypatch, tmp_path):
    if not _gcc_links_asan(tmp_path):
        pytest.skip("gcc cannot link -fsanitize=address programs here")
    _clear_flags(monkeypatch)
    monkeypatch.setenv("CFLAGS", "-fsanitize=address,undefined -fno-omit-frame-pointer")
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert ns["probe_openmp"](cc, *ns["openmp_flags"](cc))


def test_openmp_probe_link_sees_the_users_ldflags(monkeypatch):
    # a linker flag that cannot work must make the probe fail: proof LDFLAGS reach the link
    _clear_flags(monkeypatch)
    monkeypatch.setenv("LDFLAGS", "-Wl,--cydrop-no-such-linker-option")
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert not ns["probe_openmp"](cc, *ns["openmp_flags"](cc))


def test_openmp_probe_passes_without_user_flags(monkeypatch):
    _clear_flags(monkeypatch)
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert ns["probe_openmp"](cc, *ns["openmp_flags"](cc))
