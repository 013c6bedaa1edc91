"""Shared pytest fixtures."""
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded random generator per test (tests never share random state)."""
    return np.random.default_rng(20170306)


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
