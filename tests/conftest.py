"""Shared pytest fixtures."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded random generator per test (tests never share random state)."""
    return np.random.default_rng(20170306)
