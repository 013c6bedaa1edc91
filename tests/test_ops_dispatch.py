"""Serial/parallel twins of the pdecontrol.ops kernels: the choice, the twins, their cache files."""

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
from numba.core.caching import NullCache

from pdecontrol.ops import (
    _gradient_kernels,
    _kernels,
    activations,
    elementwise,
    feature_products,
    use_serial_kernels,
)
from pdecontrol.ops._dispatch import SERIAL_BELOW_ELEMENTS, SERIAL_BELOW_MULTIPLY_ADDS

KERNELS = {
    "add_scaled": (elementwise._add_scaled_kernel, SERIAL_BELOW_ELEMENTS),
    "activation": (activations._activate_array, SERIAL_BELOW_ELEMENTS),
    "conv": (_kernels.conv_driver, SERIAL_BELOW_MULTIPLY_ADDS),
    "kernel gradient": (_gradient_kernels.kernel_gradient_driver, SERIAL_BELOW_MULTIPLY_ADDS),
    "fused adjoint": (_gradient_kernels.adjoint_driver, SERIAL_BELOW_MULTIPLY_ADDS),
    "feature outputs": (feature_products._outputs_kernel, SERIAL_BELOW_MULTIPLY_ADDS),
    "feature pullback": (feature_products._pullback_chunk_sums, SERIAL_BELOW_MULTIPLY_ADDS),
    "softmax curvature": (feature_products._chunk_sums, SERIAL_BELOW_MULTIPLY_ADDS),
}
PARALLEL = "parallel" if numba.get_num_threads() > 1 else "serial"  # one thread: always serial


def path(kernel, dispatcher) -> str:
    return {id(kernel.serial): "serial", id(kernel.parallel): "parallel"}[id(dispatcher)]


@pytest.mark.parametrize("name", KERNELS)
def test_choose_is_serial_below_the_threshold_and_parallel_from_it(name):
    kernel, threshold = KERNELS[name]
    assert kernel.serial_below == threshold
    assert path(kernel, kernel.choose(0)) == "serial"
    assert path(kernel, kernel.choose(threshold - 1)) == "serial"
    assert path(kernel, kernel.choose(threshold)) == PARALLEL
    assert path(kernel, kernel.choose(10**12, tasks=2)) == PARALLEL
    assert path(kernel, kernel.choose(10**12, tasks=1)) == "serial"  # nothing to share out


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_choose_is_serial_on_one_thread():
    kernel, threshold = KERNELS["add_scaled"]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert path(kernel, kernel.choose(10 * threshold)) == "serial"
    finally:
        numba.set_num_threads(threads)
    assert path(kernel, kernel.choose(10 * threshold)) == "parallel"


@pytest.mark.parametrize("name", KERNELS)
def test_use_serial_kernels_makes_every_call_serial_until_undone(name):
    kernel, threshold = KERNELS[name]
    assert use_serial_kernels(True) is False
    try:
        assert path(kernel, kernel.choose(10**12, tasks=2)) == "serial"
    finally:
        assert use_serial_kernels(False) is True
    assert path(kernel, kernel.choose(10**12, tasks=2)) == PARALLEL


@pytest.mark.parametrize("name", KERNELS)
def test_twins_compile_one_function_serially_and_in_parallel(name):
    kernel = KERNELS[name][0]
    assert kernel.serial.py_func.__code__ is kernel.parallel.py_func.__code__
    assert not kernel.serial.targetoptions.get("parallel")
    assert kernel.parallel.targetoptions["parallel"]
    for twin in (kernel.serial, kernel.parallel):
        assert not isinstance(twin._cache, NullCache)  # cache=True
    # distinct names, hence distinct cache files (the cache index does not record `parallel`)
    assert kernel.serial.py_func.__qualname__ != kernel.parallel.py_func.__qualname__


def test_serial_twin_loaded_from_the_cache_never_starts_the_thread_pool(tmp_path):
    # Process 1 compiles the serial twin, then the parallel one (which would overwrite a shared
    # cache entry); process 2 loads the serial twin from the cache and runs it.
    script = (
        "import sys, numpy as np\n"
        "from numba.np.ufunc import parallel\n"
        "from pdecontrol.ops.elementwise import _add_scaled_kernel as kernel\n"
        "a = np.ones(10)\n"
        "twins = (kernel.serial, kernel.parallel) if sys.argv[1] == 'both' else (kernel.serial,)\n"
        "for twin in twins:\n"
        "    twin(a, a, True, 1.0, a)\n"
        "print(kernel.serial.stats.cache_hits.total(), parallel._is_initialized)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    first, second = (
        subprocess.run([sys.executable, "-c", script, twins], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
        for twins in ("both", "serial")
    )
    assert first == ["0", "True"]
    assert second == ["1", "False"]  # the serial twin's own cache entry: no thread pool
