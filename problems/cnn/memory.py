"""Memory a CNN run needs, estimated from its sizes before anything is allocated.

The parts, in bytes, for ``N`` training and ``V`` validation images of ``n^d`` pixels, ``C``
channels, ``L`` layers, a stepper of ``S`` stages, ``k`` classes, ``b`` bytes per compute-dtype
number (float32: 4) and one example's state ``s = C n^d b``:

* images: ``(N + V) n^d`` numbers held as loaded (float64), split and cast per functional:
  ``24 (N + V) n^d`` bytes, times ``4/3`` for the coarse levels of the image pyramid;
* states of a forward chunk through the layers: the accuracy monitor runs every training and
  validation image forward, ``F`` at a time (``--chunk-size``, else
  :data:`~pdecontrol.control.functional.FORWARD_CHUNK`), and keeps only their outputs:
  ``(L + 1) min(N, F) s``;
* linearised states of a Gauss-Newton batch (``B`` = ``--batch``, at most ``N``): the operator
  keeps the states and every stage's slope and cache, the tangent and adjoint sweeps about four
  states more: ``B (L + 5 + 2 S L) s``; with consistency levels also those of the restricted
  networks (``2^(-d level)`` each: ``4^-level`` in 2D, ``8^-level`` in 3D);
* the classifier solve: features ``N s`` and a float64 matrix with its factor, the dual
  ``2 N^2`` (``N <= 4000``) or the normal equations ``2 (C n^d)^2`` (at most 8,192 features),
  ``8 N`` per feature otherwise (CG);
* the parameters in float64 with the optimiser's vectors (Gauss-Newton-CG, line search,
  resume state): ``40`` copies of ``L (3^d C^2 + C) + 3^d C + C + k (C n^d + 1)`` numbers.

The parts are summed, although some are freed before others are allocated, so the estimate is
an upper bound: measured peaks of the resident memory above that of a tiny run were 55-70% of
it, over seven runs of 0.4-2.1 GiB (one stage, float32 and float64, Euler and RK4, 2-8 layers;
``docs/cli.md``, Robustness; measured when the monitor's part was ``(N + V)(L + 1) s``, before
the forward solves went in chunks: a 40,000 / 20,000 MNIST run of ``fast``, 3 outer iterations,
peaked at 2.6 GB instead of 4.6 GB; since the monitor keeps no final states, at 1.2 GB, 1 outer
iteration: docs/framework.md). ``evaluation_memory`` estimates ``pdecontrol cnn evaluate``
at another resolution the same way.
"""

from __future__ import annotations

import numpy as np

from pdecontrol.control import get_stepper
from pdecontrol.control.functional import FORWARD_CHUNK

from .classifier import ClassifierSolver
from .config import TrainingSettings

__all__ = ["training_memory", "evaluation_memory"]

_SOLVE = ClassifierSolver.__init__.__kwdefaults__
_IMAGE_COPIES = 24  # bytes per pixel: float64 loaded, split, and a cast copy per functional
_PARAMETER_COPIES = 40
_IMAGES = "images (--n-train, --n-val, --resolution)"
_STATES = ("states of a forward chunk through the layers (--chunk-size, --layers, --channels, "
           "--resolution)")
_BATCH = ("linearised states of a Gauss-Newton batch (--batch, --layers, --channels, "
          "--resolution, --stepper)")
_CLASSIFIER = "classifier solve (--n-train, --channels, --resolution)"
_PARAMETERS = "parameters and optimiser vectors (--channels, --layers, --resolution)"


def _classifier_bytes(n_examples: int, n_features: int, state: float) -> float:
    if n_examples <= min(_SOLVE["gram_max_examples"], n_features):
        matrix = 2 * 8.0 * n_examples**2
    elif n_features <= _SOLVE["normal_max_features"]:
        matrix = 2 * 8.0 * (n_features + 1) ** 2
    else:
        matrix = 8.0 * n_examples
    return n_examples * state + matrix


def training_memory(settings: TrainingSettings, *, resolution: int, n_train: int, n_val: int,
                    n_classes: int = 10, in_channels: int = 1, dim: int = 2,
                    consistency_levels=()) -> dict:
    """Estimated bytes of a training run by part (see the module docstring); the names say which
    options set each part."""
    pixels = float(resolution) ** dim
    b = np.dtype(settings.dtype).itemsize
    C, L = settings.n_channels, settings.n_steps
    S = get_stepper(settings.stepper).n_stages
    state = C * pixels * b
    batch = n_train if settings.batch_size is None else min(settings.batch_size, n_train)
    coarse = 1 + sum(2.0 ** (-dim * level) for level in consistency_levels)
    taps = 3**dim
    n_parameters = (L * (taps * C * C + C) + taps * C * in_channels + C
                    + n_classes * (C * pixels + 1))
    return {
        _IMAGES: _IMAGE_COPIES * in_channels * (n_train + n_val) * pixels * 4 / 3,
        _STATES: (L + 1) * min(n_train, settings.chunk_size or FORWARD_CHUNK) * state,
        _BATCH: coarse * batch * (L + 5 + 2 * S * L) * state,
        _CLASSIFIER: _classifier_bytes(n_train, int(C * pixels), state),
        _PARAMETERS: 8.0 * _PARAMETER_COPIES * n_parameters,
    }


def evaluation_memory(settings: TrainingSettings, *, resolution: int, network_resolution: int,
                      n_train: int, n_val: int, refit: bool, n_classes: int = 10,
                      in_channels: int = 1, dim: int = 2) -> dict:
    """Estimated bytes of ``pdecontrol cnn evaluate`` by part: the images at the finer of the two
    resolutions, the states of the validation images (in chunks of 1,000) at ``resolution``, the
    moved network, and with ``refit`` the classifier solve on the training images."""
    source = float(max(resolution, network_resolution)) ** dim
    pixels = float(resolution) ** dim
    b = np.dtype(settings.dtype).itemsize
    C, L = settings.n_channels, settings.n_steps
    state = C * pixels * b
    images = _IMAGE_COPIES * in_channels * (n_val + (n_train if refit else 0)) * source
    chunk = min(n_val, 1000)
    parts = {
        f"images at {max(resolution, network_resolution)}^{dim} (--resolution, --n-train, "
        "--n-val)": images,
        f"states at {resolution}^{dim} (--resolution, --n-val)": chunk * (L + 1) * state,
        f"network at {resolution}^{dim} (--resolution)": 8.0 * _PARAMETER_COPIES * (
            n_classes * C * pixels + L * 3**dim * C * C),
    }
    if refit:
        parts[f"classifier refit at {resolution}^{dim} (--resolution, --n-train)"] = (
            _classifier_bytes(n_train, int(C * pixels), state))
    return parts
