"""Helpers shared by cydrop's tests: import them with ``from helpers import ...``.

tests/conftest.py (and tests/core/conftest.py) hold the fixtures; this module holds plain
functions, paths and the child-interpreter machinery, so a test never imports a conftest or
another test module.
"""
import gzip
import json
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

import cydrop

# tests/ and the checkout (or unpacked sdist) it belongs to; when the tests run from a copy of
# tests/ alone, REPO_ROOT holds no src/ or bench/ and the tests that need them skip.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

# Where the cydrop under test was imported from (site-packages, or the source tree of an
# in-place build). Child interpreters get it first on PYTHONPATH and run in an empty directory,
# so `python -m cydrop` / `python -c` never pick up an unbuilt source checkout from the cwd.
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cydrop.__file__)))
_NEUTRAL_CWD = tempfile.mkdtemp(prefix="cydrop-tests-")


def python_env(base=None, **overrides):
    """An environment for a child interpreter that imports the cydrop under test."""
    env = dict(os.environ if base is None else base)
    env.update(overrides)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def run_python(args, *, env=None, cwd=None, timeout=120, **kwargs):
    """Run ``python *args`` against the cydrop under test, from a neutral directory."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=python_env() if env is None else env,
                          cwd=cwd or _NEUTRAL_CWD, timeout=timeout, **kwargs)


def bits_of(a):
    """The raw bits of a float array, for bit-exact comparisons (NaN == NaN, +0 != -0)."""
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32}.get(a.dtype.itemsize, np.uint64))


def run_forked(fn, timeout=60):
    """Run ``fn()`` in a child made by ``os.fork`` and return its result.

    The result must be JSON-serialisable and small (it travels through a pipe the child fills
    before exiting). The parent polls for the child's exit for up to ``timeout`` seconds; a
    child still running then (hung, e.g. in an OpenMP region) is killed and TimeoutError is
    raised. A child whose ``fn`` raised (its traceback goes to stderr) fails an assertion.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                               # the child: never returns into the caller
        code = 1
        try:
            os.close(r)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    try:
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"the forked child did not finish within {timeout} s")
            time.sleep(0.05)
        data = b"".join(iter(lambda: os.read(r, 65536), b""))
    finally:
        os.close(r)
    assert status == 0 and data, f"the forked child failed (wait status {status})"
    return json.loads(data)


def write_idx(path, array, *, gz=False, code=0x08):
    """Write ``array`` as an IDX file (big-endian header, MNIST's format)."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def mnist_dir(tmp_path, n=7, gz=True, kind="train"):
    """Random MNIST-format IDX files (``n`` images and labels, gzipped or raw) of the ``kind``
    split ("train" or "test") in ``tmp_path``; returns (images, labels)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    stem = "train" if kind == "train" else "t10k"
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"{stem}-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(tmp_path / f"{stem}-labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images, labels


# ----------------------------------------------------------- the guarded child interpreter
# A long-lived child interpreter that runs module-level test functions, so a kernel that
# segfaults or aborts fails one test instead of the whole run (tests/core/conftest.py's
# ``worker`` fixture gives each test module one).

_WORKER_SRC = r"""
import importlib, importlib.util, os, pickle, struct, sys, traceback
sys.path.insert(0, sys.argv[1])
requests = sys.stdin.buffer
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)                 # prints go to stderr, never into the reply stream
sys.stdout = sys.stderr

def load(modname, path):
    if modname in sys.modules:
        return sys.modules[modname]
    # by path, with its folder on sys.path (tests/ is there already, for helpers)
    if os.path.dirname(path) not in sys.path:
        sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod

while True:
    head = requests.read(8)
    if len(head) < 8:
        break
    (size,) = struct.unpack("<Q", head)
    modname, path, func, args = pickle.loads(requests.read(size))
    if os.environ.get("CYDROP_FUZZ_TRACE"):          # debugging: which case hung or crashed
        with open(os.environ["CYDROP_FUZZ_TRACE"], "a") as trace:
            trace.write(f"{func}{args!r}\n")
    try:
        reply = ("ok", getattr(load(modname, path), func)(*args))
    except BaseException as exc:
        reply = ("error", type(exc).__name__, traceback.format_exc())
    try:
        data = pickle.dumps(reply)
    except Exception:
        data = pickle.dumps(("error", "PicklingError", traceback.format_exc()))
    replies.write(struct.pack("<Q", len(data)) + data)
    replies.flush()
"""


class ChildCrashed(AssertionError):
    """The child interpreter died (signal, abort, exit) or hung while running a case."""


class _Died(Exception):
    pass


_FAILURE_TYPES = {}


def child_failure(kind, tb):
    """An AssertionError subclass per failing place in the child (its exception type and the
    innermost test-file line of its traceback, tests/ and its shared modules included), so
    hypothesis reports distinct failures separately instead of stopping at the first one."""
    where = "?"
    for line in tb.splitlines():
        line = line.strip()
        if line.startswith("File ") and ("test_" in line or TESTS_DIR in line):
            where = line
    key = (kind, where)
    if key not in _FAILURE_TYPES:
        tag = re.sub(r"\W+", "_", f"{kind}_{where.rsplit('/', 1)[-1]}")[:80]
        _FAILURE_TYPES[key] = type(f"ChildFailure_{tag}", (AssertionError,), {})
    return _FAILURE_TYPES[key]


def _crash_type(how):
    key = ("crash", how)
    if key not in _FAILURE_TYPES:
        _FAILURE_TYPES[key] = type("ChildCrashed_" + re.sub(r"\W+", "_", how), (ChildCrashed,), {})
    return _FAILURE_TYPES[key]


class GuardedWorker:
    """A long-lived child interpreter that runs module-level test functions on plain data.

    ``call(func, *args)`` runs ``func(*args)`` in the child (``func`` must be a module-level
    function of an importable test module, ``args`` picklable) and returns its result. An
    exception in the child is re-raised here as an AssertionError carrying the child's
    traceback; a child that dies or exceeds ``timeout`` seconds raises :class:`ChildCrashed`
    naming the exit status, the call and the end of its stderr, and the next call starts a
    fresh child.
    """

    def __init__(self, timeout=120.0):
        self.timeout = timeout
        self.proc = None
        self.err = None
        self.cwd = tempfile.mkdtemp(prefix="cydrop-fuzz-")

    def _start(self):
        if self.err is not None:
            self.err.close()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_SRC, TESTS_DIR],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=python_env(), cwd=self.cwd)

    def _drop(self):
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None

    def _read(self, n, deadline):
        fd = self.proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, n - got)
            if not chunk:
                raise _Died
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _stderr_since(self, start):
        fd = self.err.fileno()
        end = os.fstat(fd).st_size
        text = os.pread(fd, end - start, start).decode("utf-8", "replace")
        return text[-3000:]

    def call(self, func, *args):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        module = sys.modules[func.__module__]
        msg = pickle.dumps((func.__module__, module.__file__, func.__name__, args))
        err_start = os.fstat(self.err.fileno()).st_size
        what = f"{func.__name__}(*{args!r})"
        try:
            self.proc.stdin.write(struct.pack("<Q", len(msg)) + msg)
            self.proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            (size,) = struct.unpack("<Q", self._read(8, deadline))
            reply = pickle.loads(self._read(size, deadline))
        except (_Died, BrokenPipeError, ConnectionResetError):
            rc = self.proc.wait(timeout=30)
            self._drop()
            how = (f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with {rc}")
            raise _crash_type(how)(f"the child interpreter {how} while running {what}\n"
                               f"--- its stderr ---\n{self._stderr_since(err_start)}") from None
        except TimeoutError:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self._drop()
            raise ChildCrashed(f"the child interpreter hung (> {self.timeout} s) running "
                               f"{what}\n--- its stderr ---\n{self._stderr_since(err_start)}"
                               ) from None
        if reply[0] == "ok":
            return reply[1]
        raise child_failure(reply[1], reply[2])(
            f"{reply[1]} in the child interpreter running {what}:\n{reply[2]}")

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self._drop()
        if self.err is not None:
            self.err.close()
            self.err = None
