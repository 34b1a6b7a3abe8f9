"""Packaging: the sdist carries the sources and builds a wheel that installs without a compiler.

The slow test copies the working tree (without build products), makes an sdist, checks it holds
the .pyx/.pxd/.c/.h sources, builds a wheel from the unpacked sdist with ``pip wheel .``, then
installs that wheel into a fresh virtual environment with ``--no-index``, no compiler on PATH
and ``CC=false``, and runs a smoke test there against ``cydrop.reference``.

NumPy for the fresh environment comes from a wheelhouse when one is available offline
(``$CYDROP_WHEELHOUSE``, ``/opt/wheels``, or pip's download directory given there) and is
otherwise exposed read-only from the running interpreter through a ``.pth`` file pointing at a
directory that holds only NumPy, so cydrop can only be imported from the installed wheel.
"""

import ast
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile

import numpy as np
import pytest

import cydrop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "cydrop")


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


@pytest.mark.parametrize("name", ["_kernels", "_openmp"])
def test_stubs_cover_the_extension(name):
    module = __import__(f"cydrop.{name}", fromlist=["_"])
    stub = os.path.join(PKG, f"{name}.pyi")
    assert os.path.exists(stub)
    assert _stub_names(stub) == _runtime_names(module), \
        f"cydrop/{name}.pyi is out of date with the extension"


def test_py_typed_marker_present():
    assert os.path.exists(os.path.join(PKG, "py.typed"))


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
        expected = ref.dropout(x, 0.7, 5, 9)
        assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
        dx = cydrop.dropout_backward(np.ones_like(x), cache)
        assert np.array_equal(dx != 0, y != 0)
    print("OK", cydrop.__version__, cydrop.openmp_enabled(), cydrop.effective_n_threads())
    """)

SOURCES = ("src/cydrop/_kernels.pyx", "src/cydrop/_kernels.pxd", "src/cydrop/_openmp.pyx",
           "src/cydrop/_openmp.pxd", "src/cydrop_kernels.c", "src/cydrop_kernels.h",
           "src/cydrop_rng.h", "cydrop/_kernels.pyi", "cydrop/py.typed", "setup.py",
           "pyproject.toml")


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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.so", "*.pyd", "__pycache__", "*.egg-info", ".pytest_cache",
        ".benchmarks", ".hypothesis"))
    sdist_dir = tmp / "sdist"
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(sdist_dir)], cwd=tree)
    (sdist,) = glob.glob(str(sdist_dir / "cydrop-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = glob.glob(str(tmp / "unpacked" / "cydrop-*"))
    wheelhouse = tmp / "wheelhouse"
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
          "-w", str(wheelhouse)], cwd=unpacked)
    (wheel,) = glob.glob(str(wheelhouse / "cydrop-*.whl"))
    return dict(tmp=tmp, sdist_members=members, wheel=wheel, wheelhouse=wheelhouse)


@pytest.mark.slow
def test_sdist_carries_the_sources(built):
    names = {m.split("/", 1)[1] for m in built["sdist_members"] if "/" in m}
    missing = [s for s in SOURCES if s not in names]
    assert not missing
    assert {n for n in names if n.endswith((".pyx", ".pxd"))} >= {
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "src", "**", "*.p[yx][xd]"),
                                                    recursive=True)}
    assert not [n for n in names if n.endswith((".so", ".pyd", ".o"))]


@pytest.mark.slow
def test_wheel_is_binary_and_complete(built):
    wheel = os.path.basename(built["wheel"])
    assert "none-any" not in wheel and sysconfig.get_platform().replace("-", "_") in wheel
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for ext in ("_kernels", "_openmp"):
        assert any(n.startswith(f"cydrop/{ext}.") and n.endswith((".so", ".pyd")) for n in names)
    assert {"cydrop/py.typed", "cydrop/_kernels.pyi", "cydrop/_openmp.pyi",
            "cydrop/torch.py", "cydrop/dask.py"} <= set(names)


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
