"""Small CNN test problems shared by tests/test_cnn_*.py."""

import numpy as np

from pdecontrol.control import LeastSquaresLoss
from pdecontrol.mesh import Mesh
from problems.cnn.config import TrainingSettings
from problems.cnn.network import CNNProblem, cnn_functional

SHAPES = {1: (12,), 2: (8, 8), 3: (4, 4, 4)}


def small_settings(**changes):
    """``TrainingSettings`` of the training tests: 2 channels, 2 layers, float64, and
    ``changes``."""
    return TrainingSettings(n_channels=2, n_steps=2, dtype="float64", **changes)


def small_functional(
    rng,
    dim=2,
    *,
    n_examples=6,
    n_channels=2,
    n_classes=3,
    n_steps=2,
    loss=None,
    regularizers=(),
    **options,
):
    """A tiny CNN functional on random images in [0, 1] with balanced labels."""
    stepper = options.pop("stepper", "euler")
    dtype = options.pop("dtype", np.float64)
    final_time = options.pop("final_time", 1.0)
    problem = CNNProblem(
        Mesh(SHAPES[dim]),
        n_channels,
        n_classes,
        loss=LeastSquaresLoss() if loss is None else loss,
        **options,
    )
    images = rng.random((n_examples,) + SHAPES[dim])
    labels = np.arange(n_examples) % n_classes
    if callable(regularizers):
        regularizers = regularizers(problem)
    functional = cnn_functional(
        problem,
        images,
        labels,
        n_steps,
        final_time=final_time,
        stepper=stepper,
        regularizers=regularizers,
        dtype=dtype,
    )
    return problem, functional


def fitted_point(functional, rng, target_scale=1.0):
    """Seeded kernels, small random biases, and (W, c) fitting ``target_scale * targets`` exactly.

    A typical point of block-coordinate training (classifier solved): the misfit is small, so
    the Hessian is dominated by its Gauss-Newton part and Taylor remainders are asymptotic at
    the default step lengths.
    """
    problem = functional.problem
    x = problem.initial_parameters(functional.layout.n_steps, seed=0)
    params = functional.layout.unflatten(x)
    params["b"][...] = 0.1 * rng.standard_normal(params["b"].shape)
    params["b0"][...] = 0.1
    states = functional.forward(x).final_states.reshape(functional.n_examples, -1)
    features = np.c_[problem.mesh.cell_volume * states, np.ones(functional.n_examples)]
    w = np.linalg.lstsq(features, target_scale * functional.targets, rcond=None)[0]
    params["W"][...] = w[:-1].T.reshape(params["W"].shape)
    params["c"][...] = w[-1]
    return x
