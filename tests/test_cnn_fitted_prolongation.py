"""fit_prolonged_kernels and its use after a prolongation in training (settings
prolongation_fit_examples): exactness where the fixed transfer is exact, the layer misfits it
minimises, the ridge limit, what it keeps, the work it is charged, errors."""

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.ops import conv, conv_kernel_gradient
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.fitted_prolongation import fit_convolutions_per_example, fit_prolonged_kernels
from problems.cnn.training import CNNTraining, train_multilevel
from problems.cnn.transfer import prolong_network, restrict_network

SETTINGS = small_settings(final_time=1.5).replace(n_channels=3)


def _networks(centring="cell", kernel_basis="stencil", seed=0, centre_only=False, dim=2):
    """A random coarse network on 4^dim and its Galerkin prolongation to 8^dim."""
    settings = SETTINGS.replace(kernel_basis=kernel_basis)
    fine = settings.make_problem(Mesh((8,) * dim, centring=centring), 3)
    coarse = fine.coarsen()
    rng = np.random.default_rng(seed)
    params = coarse.layout(2).unflatten(coarse.initial_parameters(2, seed, kernel_scale=2.0))
    stencils = {name: coarse.block_to_stencils(params[name]) for name in ("K0", "K")}
    if centre_only:  # multiples of the identity: Galerkin prolongation is then exact
        middle = (Ellipsis,) + (1,) * dim
        for name, value in stencils.items():
            centre = value[middle].copy()
            value[...] = 0
            value[middle] = centre
            params[name][...] = coarse.stencils_to_block(value)
    params["b0"][...] = rng.standard_normal(3)
    params["b"][...] = rng.standard_normal((2, 3))
    params["W"][...] = rng.standard_normal(params["W"].shape)
    coarse_x = params.flat.copy()
    hierarchy = MeshHierarchy(fine.mesh, 2)
    return (coarse, coarse_x, fine, prolong_network(coarse, coarse_x, 1), hierarchy, settings)


def _fit(coarse, coarse_x, fine, fine_x, hierarchy, images, ridge=0.0):
    coarse_images = hierarchy.restrict(images, to_level=1)
    return fit_prolonged_kernels(
        coarse, coarse_x, fine, fine_x, coarse_images, images,
        lambda states: hierarchy.prolong(states, to_level=0, from_level=1),
        final_time=1.5, ridge=ridge)


@pytest.mark.parametrize(("kernel_basis", "dim"), [("stencil", 2), ("derivative", 2),
                                                   ("stencil", 3)])
def test_where_the_galerkin_prolongation_is_exact_the_fit_returns_it(kernel_basis, dim):
    """Centre-only stencils on interpolated images: K_h P y = P K_H y, a zero misfit at the
    Galerkin kernels, so with any ridge towards them they are the fit (interpolated images do
    not determine every stencil weight: ridge 0 is singular)."""
    coarse, coarse_x, fine, galerkin, hierarchy, _ = _networks(kernel_basis=kernel_basis,
                                                               centre_only=True, dim=dim)
    coarse_images = np.random.default_rng(1).standard_normal((12,) + (4,) * dim)
    images = hierarchy.prolong(coarse_images, to_level=0, from_level=1)
    fitted = _fit(coarse, coarse_x, fine, galerkin, hierarchy, images, ridge=1e-6)
    np.testing.assert_allclose(fitted, galerkin, atol=1e-9)


def _layer_misfits(coarse, coarse_x, fine, candidate, inputs_from, hierarchy, images):
    """Per layer (opening first): the mean square pre-activation misfit of ``candidate``'s
    kernels against the interpolated coarse pre-activation, and its gradient in the stencil
    weights, on the inputs produced by the network ``inputs_from`` (forward Euler, dt 0.75)."""
    cp, cand = coarse.parameters(coarse_x), fine.parameters(candidate)
    ref = fine.parameters(inputs_from)
    prolong = lambda u: hierarchy.prolong(u, to_level=0, from_level=1)  # noqa: E731
    x_H, x_h = hierarchy.restrict(images, to_level=1)[:, None], images[:, None]
    misfits, gradients = [], []

    def misfit(inputs, kernel, bias, coarse_pre_activation):
        residual = conv(inputs, fine.block_to_stencils(kernel), bias) - prolong(
            coarse_pre_activation)
        misfits.append(np.mean(residual**2))
        gradients.append(conv_kernel_gradient(inputs, residual) / residual[:, 0].size)

    a_H = conv(x_H, coarse.block_to_stencils(cp["K0"]), cp["b0"])
    misfit(x_h, cand["K0"], cp["b0"], a_H)
    y_H, y_h = a_H, conv(x_h, fine.block_to_stencils(ref["K0"]), cp["b0"])
    for layer in range(2):
        b = cp["b"][layer]
        a_H = conv(y_H, coarse.block_to_stencils(cp["K"][layer]), b)
        misfit(y_h, cand["K"][layer], b, a_H)
        y_H = y_H + 0.75 * np.tanh(a_H)
        y_h = y_h + 0.75 * np.tanh(conv(y_h, fine.block_to_stencils(ref["K"][layer]), b))
    return np.array(misfits), gradients


@pytest.mark.parametrize(("centring", "dim"), [("cell", 2), ("node", 2), ("cell", 3)])
def test_the_fit_minimises_every_layer_misfit_and_keeps_biases_and_classifier(centring, dim):
    coarse, coarse_x, fine, galerkin, hierarchy, _ = _networks(centring, dim=dim)
    images = np.random.default_rng(2).standard_normal((16,) + (8,) * dim)
    fitted = _fit(coarse, coarse_x, fine, galerkin, hierarchy, images)
    fitted_misfits, gradients = _layer_misfits(coarse, coarse_x, fine, fitted, fitted,
                                               hierarchy, images)
    galerkin_misfits, galerkin_gradients = _layer_misfits(coarse, coarse_x, fine, galerkin,
                                                          fitted, hierarchy, images)
    assert np.all(fitted_misfits < 0.9 * galerkin_misfits)
    # the least-squares optimality of every layer, on the inputs of the fitted layers before it
    for gradient, reference in zip(gradients, galerkin_gradients, strict=True):
        assert np.abs(gradient).max() < 1e-10 * np.abs(reference).max()
    kept, moved = fine.parameters(fitted), fine.parameters(galerkin)
    for name in ("b0", "b", "W", "c"):
        np.testing.assert_array_equal(kept[name], moved[name])


def test_a_large_ridge_keeps_the_transferred_kernels():
    coarse, coarse_x, fine, galerkin, hierarchy, _ = _networks()
    images = np.random.default_rng(4).standard_normal((8, 8, 8))
    fitted = _fit(coarse, coarse_x, fine, galerkin, hierarchy, images, ridge=1e12)
    np.testing.assert_allclose(fitted, galerkin, atol=1e-9)


def test_errors_name_the_mismatch():
    coarse, coarse_x, fine, galerkin, hierarchy, _ = _networks()
    images = np.random.default_rng(5).standard_normal((8, 8, 8))
    deeper = prolong_network(coarse, coarse.initial_parameters(3, 0), 1)
    with pytest.raises(ValueError, match="fine_x has 3 layers but coarse_x 2"):
        _fit(coarse, coarse_x, fine, deeper, hierarchy, images)
    with pytest.raises(ValueError, match="same examples, got 4 and 8"):
        fit_prolonged_kernels(coarse, coarse_x, fine, galerkin,
                              hierarchy.restrict(images[:4], to_level=1), images, lambda u: u,
                              final_time=1.5, ridge=0.0)


def test_training_fits_after_the_prolongation_and_charges_the_work():
    train = to_numpy(make_synthetic(60, 8, seed=0))
    validation = to_numpy(make_synthetic(30, 8, seed=1))
    settings = SETTINGS.replace(outer_iterations=1, gauss_newton_steps=1, cg_iterations=2,
                                batch_size=40)
    plain = train_multilevel(train, validation, settings, n_levels=2, outer_iterations=[1, 0],
                             centring="cell")
    fitted = train_multilevel(train, validation,
                              settings.replace(prolongation_fit_examples=20),
                              n_levels=2, outer_iterations=[1, 0], centring="cell")
    # identical coarse stage; the fine start differs in its kernels only
    np.testing.assert_array_equal(plain.stage_networks[0].parameters,
                                  fitted.stage_networks[0].parameters)
    assert not np.array_equal(plain.x, fitted.x)
    # the fit's work: 20 examples x 2 layers x 20 fine convolutions, plus the coarse forward
    # steps at 1/4 of a fine convolution
    extra = fitted.history.work.values - plain.history.work.values
    np.testing.assert_array_equal(extra[:2], 0)
    assert fit_convolutions_per_example(2) == 20 and fit_convolutions_per_example(3) == 56
    assert extra[2] == pytest.approx(20 * 2 * 20 + 20 * 2 / 4)
    assert (fitted.history.fine_level_work.values[2] - plain.history.fine_level_work.values[2]
            == pytest.approx(20 * 2 * 20))
    # its kernels restrict back to the coarse network's up to the fit's correction: the
    # Galerkin restriction of the fitted network is a different (fitted) coarse network
    assert not np.allclose(restrict_network(fitted.problem, fitted.x, 1),
                           fitted.stage_networks[0].parameters)


def test_the_run_identity_names_the_fit_only_when_it_is_on():
    """Resume states written before the fit existed describe their settings without it."""
    train = to_numpy(make_synthetic(20, 8, seed=0))
    plain = CNNTraining(SETTINGS, train).describe()["settings"]
    assert "prolongation_fit_examples" not in plain and "prolongation_fit_ridge" not in plain
    fitted = CNNTraining(SETTINGS.replace(prolongation_fit_examples=5), train).describe()
    assert fitted["settings"]["prolongation_fit_examples"] == 5
    assert fitted["settings"]["prolongation_fit_ridge"] == 1e-3
    assert "classifier_curvature_batch_size" not in plain  # came later too
