"""The fused update ``base + scale * vector`` of the time-steppers against NumPy."""

import numba
import numpy as np
import pytest

from pdecontrol.ops import add_scaled
from pdecontrol.ops._dispatch import SERIAL_BELOW_ELEMENTS
from pdecontrol.ops.elementwise import _add_scaled_kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_scaled_matches_numpy_bitwise(rng, dtype):
    base = rng.standard_normal((3, 2, 5, 7)).astype(dtype)
    vector = rng.standard_normal(base.shape).astype(dtype)
    out = add_scaled(base, 0.3, vector)
    assert out.dtype == dtype and out.shape == base.shape and out is not base
    np.testing.assert_array_equal(out, base + dtype(0.3) * vector)
    np.testing.assert_array_equal(add_scaled(None, -2.5, vector), dtype(-2.5) * vector)
    # in place, then a strided view (NumPy fallback) gives the same numbers
    expected = base + dtype(0.3) * vector
    assert add_scaled(base, 0.3, vector, out=base) is base
    np.testing.assert_array_equal(base, expected)
    strided = vector[:, :, ::2]
    np.testing.assert_array_equal(
        add_scaled(strided, 4.0, strided), strided + dtype(4.0) * strided
    )


def test_add_scaled_takes_the_serial_path_for_small_states(twin_picks):
    add_scaled(np.ones((8, 32)), 0.5, np.ones((8, 32)))  # issue 11: a tiny stepper state
    add_scaled(None, 0.5, np.ones(SERIAL_BELOW_ELEMENTS - 1))
    add_scaled(None, 0.5, np.ones(SERIAL_BELOW_ELEMENTS))
    large = "parallel" if numba.get_num_threads() > 1 else "serial"
    assert twin_picks == [(_add_scaled_kernel, path) for path in ("serial", "serial", large)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_scaled_serial_and_parallel_paths_are_bitwise_equal(rng, force_twin, dtype):
    base = rng.standard_normal((7, 3, 101)).astype(dtype)
    vector = rng.standard_normal(base.shape).astype(dtype)
    results = []
    for path in ("serial", "parallel"):
        force_twin(path, _add_scaled_kernel)
        results.append((add_scaled(base, -0.7, vector), add_scaled(None, 1.3, vector)))
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_add_scaled_keeps_the_base_dtype_and_handles_other_dtypes(rng):
    base = rng.standard_normal(6).astype(np.float32)
    vector = rng.standard_normal(6)  # float64
    out = add_scaled(base, 0.5, vector)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, base + 0.5 * vector, rtol=1e-6)
    z = np.arange(4) + 1j
    np.testing.assert_array_equal(add_scaled(z, 2.0, z), 3.0 * z)


@pytest.mark.skipif(
    __import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_retain_freed_memory_is_accepted_by_glibc():
    from pdecontrol.memory import retain_freed_memory

    assert retain_freed_memory() is True


@pytest.mark.skipif(
    __import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_retain_freed_memory_in_one_arena_is_accepted_by_glibc():
    import subprocess
    import sys

    # in a process of its own: the arena limit would stay with the test process
    code = ("from pdecontrol.memory import retain_freed_memory; "
            "assert retain_freed_memory(single_arena=True) is True")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(
    __import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_retained_memory_is_reused_without_page_faults_beyond_2_gib():
    """A freed 2.5 GB block stays in the process: allocating and touching it again page-faults
    nothing (the largest positive trim threshold, 2 GiB, gave the memory back: 1,200+ faults)."""
    import subprocess
    import sys

    code = """
import resource
import numpy as np
from pdecontrol.memory import retain_freed_memory
assert retain_freed_memory()
for round in range(2):
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(2_500_000_000 // 8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    del block
print(faults)
"""
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True)
    assert int(result.stdout) < 100
