"""Packaging: metadata, stubs, the sdist (sources only) and a wheel built from it.

Fast tests check the installed package (stubs, py.typed, the console script's name) and, in a
checkout or an unpacked sdist, pyproject.toml's metadata and cibuildwheel configuration; they read
package files from the installed module (``os.path.dirname(cydrop.__file__)``), never from the
checkout, so they also pass against an installed wheel from a copy of tests/.

The slow tests copy the working tree (without build products), make an sdist, check it holds the
.pyx/.pxd/.c/.h sources, the LICENSE and no Cython-generated C, build a wheel from the unpacked
sdist with ``pip wheel .``, check it (license, metadata, no debug info; ``auditwheel repair`` when
auditwheel is installed), then install it into a fresh virtual environment with ``--no-index``, no
compiler on PATH and ``CC=false``, and run a smoke test there against ``cydrop.reference``. The
release path users get (sdist -> wheel -> auditwheel repair -> fresh venv with the system libgomp
hidden -> the test suite) is ``.ci/release``, run by ``.ci/run``.

NumPy for the fresh environment comes from a wheelhouse when one is available offline
(``$CYDROP_WHEELHOUSE``, ``/opt/wheels``, or pip's download directory given there) and is
otherwise exposed read-only from the running interpreter through a ``.pth`` file pointing at a
directory that holds only NumPy, so cydrop can only be imported from the installed wheel.
"""

import ast
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile

import numpy as np
import pytest

import cydrop
from cydrop.apps import cli

from helpers import REPO_ROOT, python_env, run_python

try:
    import tomllib
except ImportError:  # Python < 3.11
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

# The package under test, wherever it is installed (site-packages, or a checkout built in place).
PKG = os.path.dirname(os.path.abspath(cydrop.__file__))
# The checkout (or unpacked sdist) this tests/ directory belongs to, if it is one.
ROOT = REPO_ROOT
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
needs_source = pytest.mark.skipif(
    not os.path.exists(PYPROJECT) or tomllib is None,
    reason="needs pyproject.toml of a checkout or an unpacked sdist (and tomllib)")


# ----------------------------------------------------------------- stubs (fast, always run)

def _stub_names(path):
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def _runtime_names(module):
    return {n for n in dir(module) if not n.startswith("_")
            and type(getattr(module, n)).__name__ != "module"}


@pytest.mark.parametrize("name", ["_kernels", "_openmp", "_variants"])
def test_stubs_cover_the_extension(name):
    module = __import__(f"cydrop.{name}", fromlist=["_"])
    stub = os.path.join(PKG, f"{name}.pyi")
    assert os.path.exists(stub)
    assert _stub_names(stub) == _runtime_names(module), \
        f"cydrop/{name}.pyi is out of date with the extension"


def test_py_typed_marker_present():
    assert os.path.exists(os.path.join(PKG, "py.typed"))


def test_every_extension_has_a_stub():
    extensions = {name.split(".")[0] for name in os.listdir(PKG)
                  if name.endswith((".so", ".pyd"))}
    assert extensions >= {"_kernels", "_openmp", "_variants"}
    assert all(os.path.exists(os.path.join(PKG, f"{name}.pyi")) for name in extensions)


# ------------------------------------------------- the name in usage lines (fast, always run)

@pytest.mark.parametrize("argv0, name", [
    ("/venv/bin/cydrop", "cydrop"), ("cydrop", "cydrop"), (r"C:\venv\Scripts\cydrop.exe", "cydrop"),
    (os.path.join(PKG, "__main__.py"), "python -m cydrop"), ("-c", "cydrop"), ("", "cydrop"),
])
def test_cli_usage_names_the_program_as_invoked(argv0, name):
    if argv0.startswith("C:") and os.sep != "\\":
        argv0 = argv0.replace("\\", "/")
    assert cli._invoked_as(argv0) == name


def _console_script():
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        for exe in ("cydrop", "cydrop.exe"):
            if d and os.path.exists(os.path.join(d, exe)):
                return os.path.join(d, exe)
    return None


@pytest.mark.skipif(_console_script() is None, reason="no `cydrop` console script installed")
def test_console_script_help_says_cydrop_and_python_m_says_python_m():
    proc = subprocess.run([_console_script(), "--help"], capture_output=True, text=True,
                          env=python_env(), timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: cydrop "), proc.stdout
    proc = subprocess.run([_console_script(), "train", "--epochs", "0"], capture_output=True,
                          text=True, env=python_env(), timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("cydrop train: "), proc.stderr
    proc = run_python(["-m", "cydrop", "--help"])
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m cydrop "), proc.stdout
    proc = subprocess.run([_console_script(), "bench", "--help"], capture_output=True, text=True,
                          env=python_env(), timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: cydrop bench "), proc.stdout
    proc = run_python(["-m", "cydrop", "bench", "--help"])
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m cydrop bench "), \
        proc.stdout


# ------------------------------------------ pyproject.toml: requirements, metadata, wheels to build

def _pyproject():
    with open(PYPROJECT, "rb") as fh:
        return tomllib.load(fh)


def _requirement(reqs, name):
    (req,) = [r for r in reqs if re.match(rf"{name}\b", r, re.I)]
    return req


@needs_source
def test_build_requires_cython_3_1_and_no_wheel_package():
    conf = _pyproject()
    build = conf["build-system"]["requires"]
    test = conf["project"]["optional-dependencies"]["test"]
    # Cython 3.0.x built a _kernels module that crashed on the first dropout() call
    assert _requirement(build, "cython").replace(" ", "") == "Cython>=3.1"
    assert _requirement(test, "cython").replace(" ", "") == "Cython>=3.1"
    assert not [r for r in build + test if re.match(r"wheel\b", r)]
    assert _requirement(build, "setuptools").replace(" ", "") == "setuptools>=77"


@needs_source
def test_license_file_is_declared_and_is_bsd_3_clause():
    project = _pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith("BSD 3-Clause License")
    assert "the cydrop developers" in text and "Neither the name of the copyright holder" in text


@needs_source
def test_metadata_is_complete():
    conf = _pyproject()
    project = conf["project"]
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(project["urls"])
    assert project["authors"] and all(a.get("name") for a in project["authors"])
    classifiers = project["classifiers"]
    assert len(set(classifiers)) == len(classifiers)
    assert "Typing :: Typed" in classifiers
    assert {"Operating System :: POSIX :: Linux", "Operating System :: MacOS",
            "Operating System :: Microsoft :: Windows"} <= set(classifiers)
    # every CPython minor version from requires-python up to the newest wheel that is built
    low = int(re.fullmatch(r">=3\.(\d+)", project["requires-python"]).group(1))
    built = [int(v) for v in re.findall(r"cp3(\d+)-", conf["tool"]["cibuildwheel"]["build"])]
    assert min(built) == low
    listed = {int(m.group(1)) for c in classifiers
              for m in [re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c)] if m}
    assert listed == set(range(low, max(built) + 1))
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression only
    # one version, in cydrop/__init__.py
    assert "version" not in project and project["dynamic"] == ["version"]
    assert conf["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cydrop.__version__"}


@needs_source
def test_version_is_read_statically_without_importing_cydrop(tmp_path):
    # only cydrop/__init__.py, no compiled extensions: importing it would fail, so setuptools
    # must take __version__ from the source text (as it does in an sdist before any build)
    (tmp_path / "cydrop").mkdir()
    shutil.copy(os.path.join(ROOT, "cydrop", "__init__.py"), tmp_path / "cydrop" / "__init__.py")
    code = ("import sys; from setuptools.config.expand import read_attr; "
            "v = read_attr('cydrop.__version__', root_dir='.'); "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'cydrop'], 'imported'; "
            "print(v)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == cydrop.__version__


@needs_source
def test_package_data_globs_each_match_a_file():
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        where = os.path.join(ROOT, *package.split("."))
        for pattern in patterns:
            assert glob.glob(os.path.join(where, pattern)), f"{package}: {pattern} matches nothing"


def _freethreading_safe(pyx):
    with open(pyx, encoding="utf-8") as fh:
        m = re.search(r"^#\s*cython:.*freethreading_compatible\s*=\s*(\w+)", fh.read(), re.M)
    return bool(m) and m.group(1) == "True"


@needs_source
def test_cibuildwheel_builds_current_pythons_and_musllinux():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    build, skip = cibw["build"].split(), cibw["skip"].split()
    assert "cp314-*" in build and "cp313-*" in build
    assert not [s for s in skip if "musllinux_*" in s and "i686" not in s]
    linux = cibw["linux"]
    assert linux["musllinux-x86_64-image"] and linux["musllinux-aarch64-image"]
    # free-threaded wheels exactly when every extension is declared safe without the GIL
    pyx = glob.glob(os.path.join(ROOT, "cydrop", "*.pyx"))
    assert pyx
    safe = all(_freethreading_safe(p) for p in pyx)
    assert ("cp314t-*" in build) == safe
    if not safe:
        assert "cp3??t-*" in skip


@needs_source
def test_ci_runs_the_release_job():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        run = fh.read()
    assert re.search(r"^[^#\n]*\.ci/release", run, re.M)
    assert os.access(os.path.join(ROOT, ".ci", "release"), os.X_OK) or "bash .ci/release" in run


# ------------------------------------------------------------- sdist, wheel, fresh venv (slow)

SMOKE = textwrap.dedent("""\
    import os, sys
    import numpy as np
    import cydrop, cydrop.reference as ref
    here = os.path.dirname(cydrop.__file__)
    assert here.startswith(sys.prefix), (here, sys.prefix)
    assert os.path.exists(os.path.join(here, "py.typed"))
    assert os.path.exists(os.path.join(here, "_kernels.pyi"))
    x = np.random.default_rng(0).standard_normal((37, 1000)).astype(np.float32)
    for n_threads in (1, 2):
        y, cache = cydrop.dropout(x, 0.3, seed=5, offset=9, n_threads=n_threads)
        expected = ref.dropout(x, 0.3, 5, 9)
        assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
        dx = cydrop.dropout_backward(np.ones_like(x), cache)
        assert np.array_equal(dx != 0, y != 0)
    print("OK", cydrop.__version__, cydrop.openmp_enabled(), cydrop.effective_n_threads())
    """)

SOURCES = ("cydrop/_kernels.pyx", "cydrop/_kernels.pxd", "cydrop/_openmp.pyx",
           "cydrop/_openmp.pxd", "cydrop/_parallel.pyx", "cydrop/_parallel.pxd",
           "cydrop/_variants.pyx", "cydrop/_floor.pyx", "src/cydrop_kernels.c",
           "src/cydrop_kernels.h", "src/cydrop_kernels_impl.h", "src/cydrop_variants_impl.h",
           "src/cydrop_half_impl.h",
           "src/cydrop_floor.h", "src/cydrop_rng.h", "cydrop/_kernels.pyi", "cydrop/_openmp.pyi",
           "cydrop/_parallel.pyi", "cydrop/_variants.pyi", "cydrop/_floor.pyi", "cydrop/py.typed",
           "setup.py",
           "pyproject.toml", "MANIFEST.in", "LICENSE", "README.md")
# The sources compress to ~470 KB (kernels, Cython, Python, tests, docs' Markdown); the C that
# Cython generates from the .pyx would add ~1 MB compressed, so the cap still catches it.
SDIST_MAX_BYTES = 700_000


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _numpy_wheelhouse():
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for d in (os.environ.get("CYDROP_WHEELHOUSE"), "/opt/wheels"):
        if d and glob.glob(os.path.join(d, f"numpy-{np.__version__}-{tag}-*.whl")):
            return d
    return None


def _has_module(name):
    """Whether the distribution ``name`` is installed (a build/ directory in the cwd is not)."""
    import importlib.metadata
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def elf_section_names(path):
    """The section names of an ELF file (None if it is not ELF): enough to see debug info."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"\x7fELF":
        return None
    is64, e = data[4] == 2, "<" if data[5] == 1 else ">"
    shoff = struct.unpack_from(e + ("Q" if is64 else "I"), data, 0x28 if is64 else 0x20)[0]
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A if is64 else 0x2E)

    def header(i):  # (sh_name, sh_offset)
        at = shoff + i * shentsize
        return (struct.unpack_from(e + "I", data, at)[0],
                struct.unpack_from(e + ("Q" if is64 else "I"), data,
                                   at + (0x18 if is64 else 0x10))[0])

    strtab = header(shstrndx)[1]
    names = []
    for i in range(shnum):
        start = strtab + header(i)[0]
        names.append(data[start:data.index(b"\0", start)].decode("ascii", "replace"))
    return names


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("needs the source tree to build from")
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    # Cython-generated cydrop/*.c in the tree are kept: the sdist must leave them out
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.so", "*.pyd", "__pycache__", "*.egg-info", ".pytest_cache",
        ".benchmarks", ".hypothesis", ".venv*"))
    sdist_dir = tmp / "sdist"
    if _has_module("build"):  # what .ci/release and a release manager run
        _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(sdist_dir)],
             cwd=tree)
    else:
        _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(sdist_dir)], cwd=tree)
    (sdist,) = glob.glob(str(sdist_dir / "cydrop-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = glob.glob(str(tmp / "unpacked" / "cydrop-*"))
    wheelhouse = tmp / "wheelhouse"
    env = {k: v for k, v in os.environ.items() if k not in ("CYDROP_DEBUG_BUILD", "CFLAGS")}
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
          "-w", str(wheelhouse)], cwd=unpacked, env=env)
    (wheel,) = glob.glob(str(wheelhouse / "cydrop-*.whl"))
    return dict(tmp=tmp, sdist=sdist, sdist_members=members, unpacked=unpacked, wheel=wheel,
                wheelhouse=wheelhouse)


@pytest.mark.slow
def test_sdist_carries_the_sources(built):
    names = {m.split("/", 1)[1] for m in built["sdist_members"] if "/" in m}
    missing = [s for s in SOURCES if s not in names]
    assert not missing
    assert {n for n in names if n.endswith((".pyx", ".pxd"))} >= {
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "cydrop", "*.p[yx][xd]"))}
    # src/ is C only
    assert not [n for n in names if n.startswith("src/") and not n.endswith((".c", ".h"))]
    assert not [n for n in names if n.endswith((".so", ".pyd", ".o"))]


@pytest.mark.slow
def test_sdist_ships_no_generated_c(built):
    names = {m.split("/", 1)[1] for m in built["sdist_members"] if "/" in m}
    # every module is compiled from C that the builder's Cython makes from the .pyx
    assert not [n for n in names if n.startswith("cydrop/") and n.endswith((".c", ".cpp"))]
    size = os.path.getsize(built["sdist"])
    assert size < SDIST_MAX_BYTES, f"sdist is {size} bytes"


@pytest.mark.slow
def test_wheel_is_binary_and_complete(built):
    wheel = os.path.basename(built["wheel"])
    assert "none-any" not in wheel and sysconfig.get_platform().replace("-", "_") in wheel
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for ext in ("_kernels", "_openmp", "_parallel", "_variants", "_floor"):
        assert any(n.startswith(f"cydrop/{ext}.") and n.endswith((".so", ".pyd")) for n in names)
    assert {"cydrop/py.typed", "cydrop/_kernels.pyi", "cydrop/_openmp.pyi",
            "cydrop/_parallel.pyi", "cydrop/_variants.pyi", "cydrop/_floor.pyi",
            "cydrop/torch.py", "cydrop/dask.py"} <= set(names)
    # the .pxd declarations ship (other Cython code may cimport them); sources do not
    assert {"cydrop/_kernels.pxd", "cydrop/_openmp.pxd", "cydrop/_parallel.pxd"} <= set(names)
    assert not [n for n in names if n.endswith((".pyx", ".c", ".cpp"))]


@pytest.mark.slow
def test_wheel_carries_license_and_metadata(built):
    with zipfile.ZipFile(built["wheel"]) as zf:
        names = zf.namelist()
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert f"{dist_info}/licenses/LICENSE" in names
        assert zf.read(f"{dist_info}/licenses/LICENSE").startswith(b"BSD 3-Clause License")
        meta = zf.read(f"{dist_info}/METADATA").decode()
    assert f"\nVersion: {cydrop.__version__}\n" in meta
    assert "\nLicense-Expression: BSD-3-Clause\n" in meta
    assert "\nLicense-File: LICENSE\n" in meta
    assert "\nClassifier: Typing :: Typed\n" in meta
    assert "\nProject-URL: Source, " in meta and "\nAuthor: the cydrop developers\n" in meta
    assert "\nProvides-Extra: test\n" in meta


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ELF sections: Linux")
def test_wheel_extensions_carry_no_debug_info(built, tmp_path):
    with zipfile.ZipFile(built["wheel"]) as zf:
        sos = [n for n in zf.namelist() if n.endswith(".so")]
        assert sos
        for name in sos:
            path = zf.extract(name, tmp_path)
            sections = elf_section_names(path)
            assert sections and ".text" in sections
            debug = [s for s in sections if s.startswith((".debug_", ".zdebug_"))]
            assert not debug, (name, debug)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or shutil.which("auditwheel") is None
                    and not _has_module("auditwheel"), reason="needs auditwheel on Linux")
def test_auditwheel_repair_gives_manylinux_with_libgomp_vendored(built, tmp_path):
    cmd = ([shutil.which("auditwheel")] if shutil.which("auditwheel")
           else [sys.executable, "-m", "auditwheel"])
    _run(cmd + ["repair", "-w", str(tmp_path), built["wheel"]])
    (repaired,) = glob.glob(str(tmp_path / "cydrop-*.whl"))
    assert re.search(r"-manylinux_2_\d+_\w+\.whl$", repaired), repaired
    names = zipfile.ZipFile(repaired).namelist()
    if cydrop.openmp_enabled():
        assert [n for n in names if re.match(r"cydrop\.libs/libgomp-[0-9a-f]+\.so", n)], names


@pytest.mark.slow
def test_wheel_installs_and_runs_without_compiler(built):
    tmp = built["tmp"]
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = str(bindir / ("python.exe" if os.name == "nt" else "python"))
    env = {"PATH": str(bindir), "CC": "false", "CXX": "false", "LDSHARED": "false",
           "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(tmp),
           "PYTHONNOUSERSITE": "1"}
    assert shutil.which("gcc", path=env["PATH"]) is None
    assert shutil.which("cc", path=env["PATH"]) is None
    numpy_wheels = _numpy_wheelhouse()
    if numpy_wheels:
        _run([python, "-m", "pip", "install", "--no-index", "--find-links", numpy_wheels,
              "--find-links", str(built["wheelhouse"]), "cydrop"], env=env, cwd=tmp)
    else:
        _run([python, "-m", "pip", "install", "--no-index", "--no-deps", built["wheel"]],
             env=env, cwd=tmp)
        # NumPy only, from the running interpreter: a directory holding just numpy (+ its libs)
        host = tmp / "host-numpy"
        host.mkdir()
        site = os.path.dirname(os.path.dirname(np.__file__))
        for name in os.listdir(site):
            if name == "numpy" or name.startswith("numpy.libs") or name.startswith("numpy-"):
                os.symlink(os.path.join(site, name), host / name)
        purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       env=env).stdout.strip()
        with open(os.path.join(purelib, "host_numpy.pth"), "w") as fh:
            fh.write(str(host) + "\n")
    proc = _run([python, "-c", SMOKE], env=env, cwd=tmp)
    assert proc.stdout.startswith("OK " + cydrop.__version__)
    # cydrop came from the wheel, not from the source tree or the host's editable install
    where = _run([python, "-c", "import cydrop; print(cydrop.__file__)"], env=env, cwd=tmp)
    assert where.stdout.strip().startswith(str(venv))
