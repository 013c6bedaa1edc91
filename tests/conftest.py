"""Shared pytest fixtures."""
import math
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded random generator per test (tests never share random state)."""
    return np.random.default_rng(20170306)


@pytest.fixture
def force_twin(monkeypatch):
    """``force_twin(path, *kernels)``: the ``TwinKernel``s run their ``"serial"`` or
    ``"parallel"`` twin for the rest of the test, whatever the work (threshold infinite or 0;
    a call with one ``prange`` task or on one Numba thread still runs serially)."""

    def force(path, *kernels):
        for kernel in kernels:
            monkeypatch.setattr(kernel, "serial_below", {"serial": math.inf, "parallel": 0}[path])

    return force


@pytest.fixture
def twin_picks(monkeypatch):
    """A list that receives ``(kernel, "serial" | "parallel")`` for every ``TwinKernel.choose``
    call of the test."""
    from pdecontrol.ops._dispatch import TwinKernel

    picks, choose = [], TwinKernel.choose

    def recording(kernel, work, tasks=None):
        dispatcher = choose(kernel, work, tasks)
        picks.append((kernel, "serial" if dispatcher is kernel.serial else "parallel"))
        return dispatcher

    monkeypatch.setattr(TwinKernel, "choose", recording)
    return picks


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Directory holding the four MNIST IDX files, from ``PDECONTROL_DATA_DIR``.

    Under CI (``CI`` set to a true value) a missing directory FAILS the test: CI is given the data,
    so its absence is a broken setup, not a reason to skip. Elsewhere the test is skipped.
    """
    path = os.environ.get("PDECONTROL_DATA_DIR")
    found = path is not None and Path(path).is_dir() and any(Path(path).glob("train-images*"))
    if not found:
        message = (
            f"MNIST not found (PDECONTROL_DATA_DIR={path!r}); point it at the directory with the "
            "four IDX files, e.g. ../shared/data/mnist"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(path)
