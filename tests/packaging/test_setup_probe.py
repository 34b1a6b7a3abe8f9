"""setup.py: the OpenMP probe compiles and links the way the extensions do (with the user's flags),
no C compiler is reported on its own, release builds drop debug info, and Cython < 3.1 is refused.

These read setup.py from a checkout or an unpacked sdist; against an installed cydrop alone (a copy
of tests/ without the sources) they skip."""
import os
import runpy
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

ROOT = REPO_ROOT
SETUP = os.path.join(ROOT, "setup.py")


def _setup_namespace(monkeypatch):
    """setup.py's module namespace, without cythonizing or calling setup()."""
    pytest.importorskip("Cython.Build")
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


pytestmark = pytest.mark.skipif(not os.path.exists(SETUP),
                                reason="needs the source tree's setup.py")
needs_gcc = pytest.mark.skipif(sys.platform != "linux" or shutil.which("gcc") is None,
                               reason="needs gcc on Linux")


def _clear_flags(monkeypatch):
    for name in ("CFLAGS", "LDFLAGS", "CPPFLAGS", "LDSHARED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CC", "gcc")


@needs_gcc
def test_openmp_probe_links_with_the_users_sanitizer_cflags(monkeypatch, tmp_path):
    if not _gcc_links_asan(tmp_path):
        pytest.skip("gcc cannot link -fsanitize=address programs here")
    _clear_flags(monkeypatch)
    monkeypatch.setenv("CFLAGS", "-fsanitize=address,undefined -fno-omit-frame-pointer")
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert ns["probe_openmp"](cc, *ns["openmp_flags"](cc))


@needs_gcc
def test_openmp_probe_link_sees_the_users_ldflags(monkeypatch):
    # a linker flag that cannot work must make the probe fail: proof LDFLAGS reach the link
    _clear_flags(monkeypatch)
    monkeypatch.setenv("LDFLAGS", "-Wl,--cydrop-no-such-linker-option")
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert not ns["probe_openmp"](cc, *ns["openmp_flags"](cc))


@needs_gcc
def test_openmp_probe_passes_without_user_flags(monkeypatch):
    _clear_flags(monkeypatch)
    ns = _setup_namespace(monkeypatch)
    cc = _compiler()
    assert ns["probe_openmp"](cc, *ns["openmp_flags"](cc))


# ------------------------------------------------------------------ no C compiler at all

@pytest.mark.skipif(sys.platform == "win32", reason="CC is not how MSVC is chosen")
@pytest.mark.parametrize("cc", ["false", "/nonexistent/cydrop-no-cc"])
def test_no_compiler_is_reported_as_such_not_as_a_failed_openmp_probe(monkeypatch, cc, capsys):
    from setuptools.dist import Distribution
    _clear_flags(monkeypatch)
    monkeypatch.setenv("CC", cc)
    monkeypatch.delenv("CYDROP_DISABLE_OPENMP", raising=False)
    ns = _setup_namespace(monkeypatch)
    compiler = _compiler()
    assert ns["probe_compiler"](compiler) is not None
    cmd = ns["BuildExt"](Distribution({"name": "cydrop"}))
    cmd.compiler = compiler
    cmd.extensions = []
    cmd.build_temp = "unused"
    with pytest.raises(SystemExit) as exc:
        cmd.build_extensions()
    message = str(exc.value)
    assert message.startswith("cydrop: no working C compiler:") and cc in message
    assert "OpenMP probe" not in message and "OpenMP probe" not in capsys.readouterr().out


@needs_gcc
def test_a_working_compiler_passes_the_compiler_probe(monkeypatch):
    _clear_flags(monkeypatch)
    ns = _setup_namespace(monkeypatch)
    assert ns["probe_compiler"](_compiler()) is None


# ------------------------------------------------------------------ debug info, Cython version

def test_release_builds_drop_debug_info_unless_asked(monkeypatch):
    _clear_flags(monkeypatch)
    monkeypatch.delenv("CYDROP_DEBUG_BUILD", raising=False)
    ns = _setup_namespace(monkeypatch)

    class Unix:
        compiler_type = "unix"

    compile_flags, link_flags = ns["debug_flags"](Unix())
    assert compile_flags == ["-g0"]  # after Python's own -g, so it wins
    assert link_flags == ([] if sys.platform == "darwin" else ["-Wl,--strip-debug"])
    monkeypatch.setenv("CYDROP_DEBUG_BUILD", "1")
    assert ns["debug_flags"](Unix()) == ([], [])
    monkeypatch.delenv("CYDROP_DEBUG_BUILD")
    monkeypatch.setenv("CFLAGS", "-O1 -g -fsanitize=address")  # the sanitizer job's -g stays
    assert ns["debug_flags"](Unix()) == ([], [])
    monkeypatch.setenv("CFLAGS", "-g0")
    assert ns["debug_flags"](Unix()) == (["-g0"], link_flags)


@pytest.mark.parametrize("version, ok", [
    ("3.0.0", False),
    ("3.0.12", False),
    ("0.29.37", False),
    ("3.1.0", True),
    ("3.1.0a1", True),
    ("3.1a1", True),
    ("3.0rc2", False),
    ("3.2.4", True),
    ("4.0", True),
])
def test_cython_older_than_3_1_is_refused(monkeypatch, version, ok):
    ns = _setup_namespace(monkeypatch)
    if ok:
        ns["check_cython"](version)
    else:
        with pytest.raises(SystemExit, match=r"Cython >= 3\.1 is required.*found Cython " +
                           version.replace(".", r"\.")):
            ns["check_cython"](version)
