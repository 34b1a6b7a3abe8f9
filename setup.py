"""Build cydrop's extensions: Cython + C kernels, with OpenMP when the compiler has it.

Environment switches
--------------------
CYDROP_DISABLE_OPENMP=1   build the serial extension even if OpenMP works.
CYDROP_FAIL_NO_OPENMP=1   stop the build if the OpenMP probe fails (instead of warning).
CYDROP_DEBUG_CYTHON=1     turn Cython's bounds and wraparound checks back on.
CYDROP_DEBUG_BUILD=1      keep debug info in the extensions. Otherwise they are built with -g0 and
                          linked with -Wl,--strip-debug (Python's own CFLAGS carry -g, which
                          triples the wheel); a -g in the user's $CFLAGS also keeps it.

Cython >= 3.1 is required: 3.0.x miscompiled a declaration in _kernels.pyx (the module imported,
then crashed on the first dropout() call).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import Cython
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join("src")

PROBE = textwrap.dedent("""\
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0);
        return 0;
    }
    """)


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


MIN_CYTHON = (3, 1)


def check_cython(version):
    """Refuse a Cython older than MIN_CYTHON, naming the installed one (pyproject also pins it)."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = re.match(r"\d*", piece).group()  # "1a1" -> 1, "0rc2" -> 0
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < MIN_CYTHON:
        raise SystemExit(
            f"cydrop: Cython >= {'.'.join(map(str, MIN_CYTHON))} is required to build cydrop, "
            f"found Cython {version} (3.0.x builds a _kernels module that crashes). "
            f"Upgrade it: pip install 'Cython>=3.1'")


def debug_flags(compiler):
    """(compile, link) flags that drop debug info from release builds of the extensions.

    Python's sysconfig CFLAGS (which distutils puts first) usually carry -g; a later -g0 wins.
    Kept by CYDROP_DEBUG_BUILD=1, or when the user's own $CFLAGS ask for -g (the sanitizer job
    builds with -g for its stack traces). MSVC writes debug info to separate .pdb files only.
    """
    if compiler.compiler_type == "msvc" or _truthy("CYDROP_DEBUG_BUILD"):
        return [], []
    user = shlex.split(os.environ.get("CFLAGS", ""))
    if any(f.startswith("-g") and f != "-g0" for f in user):
        return [], []
    link = [] if sys.platform == "darwin" else ["-Wl,--strip-debug"]
    return ["-g0"], link


NO_COMPILER = "int main(void) { return 0; }\n"


def probe_compiler(compiler):
    """None if the C compiler compiles and links a trivial program, else why it cannot."""
    tmp = tempfile.mkdtemp(prefix="cydrop-cc-")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("hello.c", "w") as fh:
            fh.write(NO_COMPILER)
        objects = compiler.compile(["hello.c"])
        compiler.link_executable(objects, "hello", extra_preargs=_env_link_flags(compiler))
        return None
    except Exception as exc:  # CompileError, LinkError, DistutilsExecError, OSError
        return f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


def no_compiler_message(compiler, why):
    cmd = getattr(compiler, "compiler_so", None) or getattr(compiler, "cc", None) or "?"
    shown = " ".join(cmd) if isinstance(cmd, (list, tuple)) else str(cmd)
    return (f"cydrop: no working C compiler: `{shown}` cannot build a trivial C program "
            f"({why}). Building cydrop from source needs a C compiler (gcc or clang; OpenMP is "
            f"optional). Install one (Debian/Ubuntu: apt-get install gcc; Alpine: apk add "
            f"build-base), set CC to it, or install a prebuilt wheel instead (pip install "
            f"--only-binary cydrop cydrop).")


def openmp_flags(compiler):
    """Compile and link flags that enable OpenMP for this compiler (cf. scikit-learn)."""
    if sys.platform == "win32" and compiler.compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin" and "openmp" in os.environ.get("CPPFLAGS", ""):
        # Apple clang: the user supplies -Xpreprocessor -fopenmp and -lomp via CPPFLAGS/LDFLAGS.
        return [], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def _env_link_flags(compiler):
    """The user's $LDFLAGS, $CFLAGS and $CPPFLAGS, as distutils adds them to the extension link.

    distutils puts these three on ``linker_so`` (the LDSHARED command that links the
    extensions) and CFLAGS/CPPFLAGS on ``compiler_so``, but ``linker_exe`` -- what
    ``link_executable`` runs -- is the bare compiler. A probe linked without them disagrees
    with the real build: objects compiled with CFLAGS="-fsanitize=address" do not link without
    the sanitizer runtime, and on macOS the -lomp from LDFLAGS is missing, so the probe failed
    and the build quietly went serial. MSVC takes none of these variables.
    """
    if compiler.compiler_type == "msvc":
        return []
    flags = []
    for name in ("LDFLAGS", "CFLAGS", "CPPFLAGS"):  # the order distutils appends them to LDSHARED
        flags += shlex.split(os.environ.get(name, ""))
    return flags


def probe_openmp(compiler, cflags, ldflags):
    """Whether a small OpenMP program compiles, links and runs with these flags.

    It is compiled and linked the way the extensions are: ``compiler.compile`` already uses
    ``compiler_so`` (with the user's CFLAGS and CPPFLAGS), and the link gets the user's
    LDFLAGS, CFLAGS and CPPFLAGS like ``linker_so`` (see ``_env_link_flags``).
    """
    tmp = tempfile.mkdtemp(prefix="cydrop-openmp-")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("probe.c", "w") as fh:
            fh.write(PROBE)
        objects = compiler.compile(["probe.c"], extra_postargs=cflags)
        compiler.link_executable(objects, "probe", extra_preargs=_env_link_flags(compiler),
                                 extra_postargs=ldflags)
        out = subprocess.run([os.path.join(tmp, "probe")], capture_output=True, text=True,
                             timeout=60)
        if out.returncode == 0 and out.stdout.strip() == "1":
            return True
        print(f"cydrop: the OpenMP probe ran but failed (exit {out.returncode}): "
              f"stdout={out.stdout.strip()!r} stderr={out.stderr.strip()[-2000:]!r}")
        return False
    except Exception as exc:  # any compile, link or run failure means "no OpenMP"
        print(f"cydrop: the OpenMP probe failed: {type(exc).__name__}: {exc}")
        return False
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags after probing the compiler once."""

    def build_extensions(self):
        # No compiler at all is its own error, not a failed OpenMP probe.
        why = probe_compiler(self.compiler)
        if why is not None:
            raise SystemExit(no_compiler_message(self.compiler, why))
        cflags, ldflags = [], []
        if _truthy("CYDROP_DISABLE_OPENMP"):
            print("cydrop: CYDROP_DISABLE_OPENMP is set; building the serial extension")
        else:
            cflags, ldflags = openmp_flags(self.compiler)
            if not probe_openmp(self.compiler, cflags, ldflags):
                msg = ("cydrop: the compiler failed the OpenMP probe; building the SERIAL "
                       "extension (set CYDROP_FAIL_NO_OPENMP=1 to make this an error)")
                if _truthy("CYDROP_FAIL_NO_OPENMP"):
                    raise RuntimeError(msg)
                warnings.warn(msg, stacklevel=1)
                print("\n" + "*" * 78 + "\n" + msg + "\n" + "*" * 78 + "\n")
                cflags, ldflags = [], []
        # A build tree reused across an OpenMP and a serial build would keep the other kind's
        # objects (they look up to date): rebuild everything when the kind (or debug info) changes.
        debug_cflags, debug_ldflags = debug_flags(self.compiler)
        mode = ("openmp" if cflags else "serial") + ("-stripped" if debug_cflags else "-debug")
        os.makedirs(self.build_temp, exist_ok=True)
        marker = os.path.join(self.build_temp, "cydrop-build-kind")
        previous = open(marker).read().strip() if os.path.exists(marker) else None
        if previous != mode:
            self.force = True
        with open(marker, "w") as fh:
            fh.write(mode)
        unix = self.compiler.compiler_type != "msvc"
        # -ffp-contract=off: no fused multiply-add in any ISA build (the AVX-512 target has FMA),
        # so every ISA rounds like the baseline and the NumPy reference twins
        base = ["-O3", "-std=c99", "-ffp-contract=off"] if unix else ["/O2", "/fp:precise"]
        for ext in self.extensions:
            ext.extra_compile_args = (base + cflags + list(ext.extra_compile_args or [])
                                      + debug_cflags)
            ext.extra_link_args = ldflags + list(ext.extra_link_args or []) + debug_ldflags
        super().build_extensions()


DIRECTIVES = {
    "language_level": 3,
    "boundscheck": _truthy("CYDROP_DEBUG_CYTHON"),
    "wraparound": _truthy("CYDROP_DEBUG_CYTHON"),
    "initializedcheck": False,
    "cdivision": True,
    "embedsignature": True,
}
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
INCLUDE = [SRC, np.get_include()]
LIBM = [] if sys.platform == "win32" else ["m"]
# The Cython modules live beside the Python that uses them (cydrop/*.pyx, *.pxd, *.pyi); src/
# holds the C kernels only. Every kernel, core and variants, is compiled per ISA into
# cydrop._kernels; the other modules reach its dispatch table and the runner of cydrop._parallel
# through cimported functions.
KERNEL_HEADERS = [os.path.join(SRC, f) for f in
                  ("cydrop_rng.h", "cydrop_kernels.h", "cydrop_kernels_impl.h",
                   "cydrop_variants_impl.h", "cydrop_modern_impl.h", "cydrop_half_impl.h")]


def _module(name, sources=(), **kwargs):
    return Extension(f"cydrop.{name}", [os.path.join("cydrop", f"{name}.pyx"), *sources],
                     include_dirs=INCLUDE, define_macros=MACROS, **kwargs)


extensions = [
    _module("_openmp"),
    _module("_parallel", depends=[os.path.join(SRC, "cydrop_adapt.h")]),
    _module("_kernels", [os.path.join(SRC, "cydrop_kernels.c")], libraries=LIBM,
            depends=KERNEL_HEADERS),
    _module("_variants", depends=KERNEL_HEADERS),
    _module("_modern", depends=KERNEL_HEADERS),
    _module("_floor", depends=[os.path.join(SRC, "cydrop_floor.h")]),
]

check_cython(Cython.__version__)

setup(
    ext_modules=cythonize(extensions, include_path=[SRC, "."], compiler_directives=DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
