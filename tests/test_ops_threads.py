"""BLAS thread pools beside the kernels (pdecontrol.ops.threads)."""

import pytest
from threadpoolctl import threadpool_info

from pdecontrol.ops import blas_threads, kernel_threads, use_serial_kernels


def _blas_threads() -> set:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_limits_inside_the_block_and_restores_after():
    before = _blas_threads()
    assert before, "NumPy's BLAS should be visible to threadpoolctl"
    with blas_threads(1):
        assert _blas_threads() == {1}
        with blas_threads(max(before)):  # an inner block may widen the pools again
            assert _blas_threads() == {max(before)}
        assert _blas_threads() == {1}
    assert _blas_threads() == before


def test_kernel_threads_follow_the_serial_switch():
    import numba

    previous = use_serial_kernels(True)
    try:
        assert kernel_threads() == 1
        use_serial_kernels(False)
        assert kernel_threads() == numba.get_num_threads()
    finally:
        use_serial_kernels(previous)


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(n):
    with pytest.raises(ValueError, match="positive number of threads"):
        with blas_threads(n):
            pass
