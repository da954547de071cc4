"""Tests of netcheck.nn.autodiff: the jax.grad reference and the autodiff δ^ℓ.

References: central finite differences in float64 (an independent witness for the
reference itself, its gradient and its Hessian-vector product) and the hand-written δ
recursion.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import OUTPUT_LOSS_PAIRS

import netcheck as nc
from netcheck.nn import autodiff, backprop

# Central differences, h = 1e-6, float64, on losses of order one with smooth activations:
# truncation h² |f'''| / 6 ~ 1e-13 and round-off ε |f| / h ~ 2e-10; 1e-7 absolute is
# ~500x above that and ~1e5 below a gradient entry of typical size (1e-2 .. 1).
FD_STEP = 1e-6
FD_ATOL = 1e-7


def _as64(tree):
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), tree)


def _central_differences(f, params):
    """∂f/∂θ for every entry θ of every leaf of ``params``, by (f(θ+h) - f(θ-h)) / 2h."""
    leaves, treedef = jax.tree.flatten(jax.tree.map(np.asarray, params))
    grads = []
    for index, leaf in enumerate(leaves):
        grad = np.zeros_like(leaf)
        for position in np.ndindex(leaf.shape):
            shifted = []
            for sign in (1, -1):
                moved = [np.array(other) for other in leaves]
                moved[index][position] += sign * FD_STEP
                shifted.append(float(f(jax.tree.unflatten(treedef, moved))))
            grad[position] = (shifted[0] - shifted[1]) / (2 * FD_STEP)
        grads.append(grad)
    return jax.tree.unflatten(treedef, grads)


@pytest.mark.parametrize("pair_id", list(OUTPUT_LOSS_PAIRS))
def test_autodiff_grad_matches_finite_differences(pair_id, make_problem, x64):
    output, loss = OUTPUT_LOSS_PAIRS[pair_id]
    net = nc.Network((2, 3, 2), "softplus", output, loss, bias=True)
    params, x, y = _as64(make_problem(net.sizes, loss, True, batch=4, seed=8))
    mean_loss = jax.jit(lambda p: net.mean_loss_unchecked(p, x, y))
    expected = _central_differences(mean_loss, params)
    got = net.autodiff_grad(params, x, y)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(g), e, rtol=0, atol=FD_ATOL)


def test_autodiff_value_and_grad_is_mean_loss_and_autodiff_grad(make_problem, x64):
    net = nc.Network((3, 4, 2), "elu", "identity", "squared_error")
    params, x, y = _as64(make_problem(net.sizes, net.loss, True, batch=5, seed=4))
    value, grads = autodiff.autodiff_value_and_grad(net, params, x, y)
    # Same float64 operations on the same inputs: equal to a few eps.
    np.testing.assert_allclose(float(value), float(net.mean_loss(params, x, y)), rtol=1e-14)
    reference = net.autodiff_grad(params, x, y)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-14)


# H v against central differences of jax.grad along v, float64, h = 1e-5: truncation
# h²/6 |d³∇E/dt³| ~ 1e-10 on these O(1) networks plus round-off ε|∇E|/h ~ 2e-11;
# 1e-7 relative to each leaf's largest entry leaves a margin of ~500.
HVP_FD_STEP = 1e-5
HVP_FD_RTOL = 1e-7


@pytest.mark.parametrize("pair_id", list(OUTPUT_LOSS_PAIRS))
def test_autodiff_hvp_matches_differences_of_autodiff_grad(pair_id, make_problem, x64):
    output, loss = OUTPUT_LOSS_PAIRS[pair_id]
    net = nc.Network((2, 3, 2), "softplus", output, loss, bias=True)
    params, x, y = _as64(make_problem(net.sizes, loss, True, batch=4, seed=8))
    v = _as64(make_problem(net.sizes, loss, True, batch=4, seed=9)[0])
    up_params = jax.tree.map(lambda p, d: p + HVP_FD_STEP * d, params, v)
    down_params = jax.tree.map(lambda p, d: p - HVP_FD_STEP * d, params, v)
    with jax.disable_jit():
        got = autodiff.autodiff_hvp(net, params, x, y, v)
        up = autodiff.autodiff_grad(net, up_params, x, y)
        down = autodiff.autodiff_grad(net, down_params, x, y)
    for g, u, d in zip(*map(jax.tree.leaves, (got, up, down)), strict=True):
        central = (np.asarray(u) - np.asarray(d)) / (2 * HVP_FD_STEP)
        assert np.abs(np.asarray(g) - central).max() <= HVP_FD_RTOL * np.abs(central).max()


def _delta_cases():
    return [
        pytest.param(activation, pair_id, id=f"{activation}-{pair_id}")
        for activation, pair_id in itertools.product(nc.HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS)
    ]


# Manual vs autodiff δ^ℓ, float64: the same bound as the gradient sweep in test_backprop
# (1000 eps relative to the largest |δ^ℓ| of the layer).
DELTA_BOUND = 1000 * float(np.finfo(np.float64).eps)


@pytest.mark.parametrize(("activation", "pair_id"), _delta_cases())
def test_manual_deltas_match_autodiff_deltas(activation, pair_id, make_problem, x64):
    output, loss = OUTPUT_LOSS_PAIRS[pair_id]
    net = nc.Network((3, 5, 4, 3), activation, output, loss, bias=True)
    params, x, y = _as64(make_problem(net.sizes, loss, True, batch=4, seed=17))
    # Eager: one compile per network would dominate the runtime (see test_backprop).
    with jax.disable_jit():
        manual = backprop.manual_deltas(net, params, x, y)
        reference = autodiff.autodiff_deltas(net, params, x, y)
    assert [d.shape for d in manual] == [(4, n) for n in net.sizes[1:]]
    for layer, (m, r) in enumerate(zip(manual, reference, strict=True), start=1):
        m, r = np.asarray(m), np.asarray(r)
        assert np.abs(m - r).max() <= DELTA_BOUND * np.abs(r).max(), f"δ^{layer}"


def test_autodiff_deltas_are_per_example_finite_differences(make_problem, x64):
    """Row i of δ^ℓ is ∂L(y_i, ŷ_i)/∂z^ℓ_i: perturb one z^ℓ_{i,j} and watch L_i alone."""
    net = nc.Network((2, 3, 2), "tanh", "softmax", "softmax_cross_entropy")
    params, x, y = _as64(make_problem(net.sizes, net.loss, True, batch=3, seed=6))
    deltas = net.autodiff_deltas(params, x, y)

    @jax.jit
    def example_losses(perturbations):
        return net.example_losses(net.forward_cache(params, x, perturbations), y)

    zeros = [np.zeros((3, n)) for n in net.sizes[1:]]
    for layer, delta in enumerate(deltas):
        for i, j in np.ndindex(delta.shape):
            moved = [[np.array(z) for z in zeros] for _ in range(2)]
            moved[0][layer][i, j] += FD_STEP
            moved[1][layer][i, j] -= FD_STEP
            up, down = (np.asarray(example_losses(m)) for m in moved)
            # Only example i's loss moves: the examples do not interact.
            np.testing.assert_array_equal(np.delete(up, i), np.delete(down, i))
            assert abs((up[i] - down[i]) / (2 * FD_STEP) - float(delta[i, j])) <= FD_ATOL


def test_autodiff_grad_compiles_once_per_shape(make_problem):
    net = nc.Network((3, 7, 2), "gelu", "sigmoid", "binary_cross_entropy")
    params, x, y = make_problem(net.sizes, net.loss, True, batch=11, seed=2)
    params = jax.tree.map(jnp.asarray, jax.tree.map(lambda a: a.astype(np.float32), params))
    cache = autodiff.autodiff_grad_jit._cache_size
    before = cache()
    jax.block_until_ready(net.autodiff_grad(params, x, y))
    jax.block_until_ready(net.autodiff_grad(params, x, y))
    assert cache() == before + 1
    jax.block_until_ready(net.autodiff_grad(params, x[:5], y[:5]))
    assert cache() == before + 2
