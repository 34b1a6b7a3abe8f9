"""threadpoolctl sees cydrop's OpenMP runtime, and threadpool_limits(1) limits cydrop to one thread.

Each check runs in a fresh interpreter, so that no other library's OpenMP runtime is loaded and
the environment (OMP_NUM_THREADS, CYDROP_NUM_THREADS) is under the test's control.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import cydrop  # noqa: E402

from helpers import python_env, run_python  # noqa: E402

pytestmark = pytest.mark.skipif(not cydrop.openmp_enabled(),
                                reason="serial build of cydrop: no OpenMP runtime to control")


PROBE = textwrap.dedent("""\
    import json
    import numpy as np
    import threadpoolctl

    def openmp():
        return [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]

    before = openmp()
    import cydrop, cydrop._kernels, cydrop._openmp, cydrop._parallel
    after = openmp()
    default = cydrop.effective_n_threads()
    x = np.arange(1 << 20, dtype=np.float32)
    ref = cydrop.dropout(x, 0.5, seed=3)[0]
    with threadpoolctl.threadpool_limits(1):
        limited = cydrop.effective_n_threads()
        limited_info = openmp()
        same = bool((cydrop.dropout(x, 0.5, seed=3)[0] == ref).all())
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        limited_openmp_api = cydrop.effective_n_threads()
    restored = cydrop.effective_n_threads()
    print(json.dumps(dict(before=before, after=after, default=default, limited=limited,
                          limited_info=limited_info, same=same,
                          limited_openmp_api=limited_openmp_api, restored=restored,
                          extensions=[cydrop._parallel.__file__, cydrop._openmp.__file__])))
    """)


def _run_probe(**env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "CYDROP_NUM_THREADS")}
    env.update(env_overrides)
    proc = run_python(["-c", PROBE], env=python_env(env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe():
    return _run_probe()


def test_cydrop_openmp_runtime_appears_in_threadpool_info(probe):
    # NumPy alone brings no OpenMP runtime; importing cydrop's extensions does.
    assert probe["before"] == []
    assert len(probe["after"]) >= 1
    info = probe["after"][0]
    assert info["internal_api"] == "openmp"
    assert info["user_api"] == "openmp"
    assert os.path.basename(info["filepath"]).startswith(("libgomp", "libomp", "libiomp",
                                                          "vcomp"))
    assert os.path.exists(info["filepath"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ELF DT_NEEDED via ldd")
def test_the_listed_runtime_is_the_one_the_extension_links(probe):
    ldd = subprocess.run(["ldd", probe["extensions"][0]], capture_output=True, text=True)
    if ldd.returncode != 0:
        pytest.skip("ldd unavailable")
    linked = [line.split("=>")[1].split("(")[0].strip() for line in ldd.stdout.splitlines()
              if "=>" in line and "omp" in line.split("=>")[0]]
    assert linked, ldd.stdout
    listed = {os.path.realpath(i["filepath"]) for i in probe["after"]}
    assert {os.path.realpath(p) for p in linked} <= listed


def test_threadpool_limits_one_limits_cydrop(probe):
    assert probe["limited"] == 1
    assert probe["limited_openmp_api"] == 1
    assert all(i["num_threads"] == 1 for i in probe["limited_info"])
    assert probe["restored"] == probe["default"]
    assert probe["same"]          # and the result does not change


def test_limits_follow_omp_num_threads():
    probe = _run_probe(OMP_NUM_THREADS="1")
    assert probe["default"] == 1 and probe["limited"] == 1 and probe["restored"] == 1


def test_cydrop_num_threads_overrides_threadpoolctl():
    # CYDROP_NUM_THREADS is cydrop's explicit override and wins over the OpenMP runtime (up to
    # the usable cores: every count is capped there).
    probe = _run_probe(CYDROP_NUM_THREADS="3")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert probe["default"] == min(3, cores) and probe["limited"] == min(3, cores)


def test_in_process_limit(monkeypatch):
    monkeypatch.delenv("CYDROP_NUM_THREADS", raising=False)
    default = cydrop.effective_n_threads()
    with threadpoolctl.threadpool_limits(1):
        assert cydrop.effective_n_threads() == 1
        assert cydrop.effective_n_threads(-1) == 1
        assert cydrop.effective_n_threads(2) == 2      # an explicit request is honoured
    assert cydrop.effective_n_threads() == default
