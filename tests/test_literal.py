"""Tests of netcheck.nn.literal: the slides' per-example form with G(ℓ) as matrices.

References, none of which reads the code's own ``activation.derivative``: float64
``jax.grad`` of the mean loss and of each activation, numpy's own diagonal matrices, and the
slide's printed δ^L = G(L)(y - ŷ), which must be exactly the negative of netcheck's δ^L.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import OUTPUT_LOSS_PAIRS

import netcheck as nc
from netcheck.nn import autodiff
from netcheck.nn.literal import g_matrix, literal_grad, literal_grad_jit

# Both sides are float64 with logits of order one (|z| ≲ 5), where even the literal,
# unfused ∂L/∂ŷ of the cross-entropies loses at most eps/min(ŷ, 1-ŷ) ≈ 1e-13: 1e-11
# relative to the largest |entry| of each leaf bounds that with margin, while any
# difference in the algorithm (a missing G, a transposed W, the wrong sign) is O(1) and a
# derivative off by 1e-3 is 1e-4 or more.
LITERAL_RTOL = 1e-11


def _as64(tree):
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), tree)


def _assert_leaves_close(got, expected, rtol):
    for (path, g), e in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(expected), strict=True
    ):
        g, e = np.asarray(g), np.asarray(e)
        scale = np.abs(e).max()
        assert np.abs(g - e).max() <= rtol * scale, jax.tree_util.keystr(path)


def _cases():
    cases = []
    for activation, pair_id in itertools.product(nc.HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS):
        cases.append(pytest.param(activation, pair_id, True, id=f"{activation}-{pair_id}-bias"))
    for pair_id in OUTPUT_LOSS_PAIRS:
        cases.append(pytest.param("tanh", pair_id, False, id=f"tanh-{pair_id}-nobias"))
    return cases


@pytest.mark.parametrize(("activation", "pair_id", "bias"), _cases())
def test_literal_matches_autodiff(activation, pair_id, bias, make_problem, x64):
    """The slides' form against float64 jax.grad: a wrong g' fails here, not only in backprop."""
    output, loss = OUTPUT_LOSS_PAIRS[pair_id]
    net = nc.Network((3, 4, 5, 3), activation, output, loss, bias)
    params, x, y = _as64(make_problem(net.sizes, loss, bias, batch=4, seed=21))
    # Eager: one compile per network would dominate the runtime (see test_backprop).
    with jax.disable_jit():
        literal = literal_grad(net, params, x, y)
        truth = autodiff.autodiff_grad(net, params, x, y)
    _assert_leaves_close(literal, truth, LITERAL_RTOL)


def test_literal_grad_jit_matches_autodiff(make_problem, x64):
    net = nc.Network((2, 3, 2), "gelu", "softmax", "softmax_cross_entropy")
    params, x, y = _as64(make_problem(net.sizes, net.loss, True, batch=3, seed=1))
    _assert_leaves_close(
        literal_grad_jit(net, params, x, y), net.autodiff_grad(params, x, y), LITERAL_RTOL
    )


# Off the kinks, float64 closed forms against float64 autodiff of the activation: ~1e-13
# where g' is recovered from the forward output on a tail (see tests/test_activations.py).
G_MATRIX_RTOL = 1e-12
G_MATRIX_ATOL = 1e-15


@pytest.mark.parametrize("activation", nc.HIDDEN_ACTIVATIONS)
def test_g_matrix_is_the_diagonal_of_autodiffs_slopes(activation, x64):
    """G(ℓ) = diag(g'(z^ℓ)) with g' taken from jax.grad of the activation itself."""
    net = nc.Network((2, 5, 3), activation, "softmax", "softmax_cross_entropy")
    z = jnp.asarray([-2.5, -0.4, 0.3, 1.2, 3.0])
    fn = nc.ACTIVATIONS[activation].fn
    expected = np.diag(np.asarray(jax.vmap(jax.grad(fn))(z)))
    got = np.asarray(g_matrix(net, 1, z, fn(z)))
    np.testing.assert_allclose(got, expected, rtol=G_MATRIX_RTOL, atol=G_MATRIX_ATOL)


def test_g_matrix_is_diagonal_for_elementwise_and_full_for_softmax(x64):
    z = jnp.asarray([0.3, -1.2, 2.0])
    hidden = nc.Network((2, 3, 3), "tanh", "softmax", "softmax_cross_entropy")
    a = jnp.tanh(z)
    np.testing.assert_allclose(
        np.asarray(g_matrix(hidden, 1, z, a)), np.diag(1 - np.tanh(np.asarray(z)) ** 2), rtol=1e-15
    )
    s = np.exp(np.asarray(z)) / np.exp(np.asarray(z)).sum()
    got = np.asarray(g_matrix(hidden, 2, z, jnp.asarray(s)))
    np.testing.assert_allclose(got, np.diag(s) - np.outer(s, s), rtol=1e-15, atol=1e-17)
    assert np.count_nonzero(got - np.diag(np.diag(got))) == 6  # G(L) is not diagonal


def test_slide_sign_is_the_negative_of_netchecks_delta(x64):
    """The slide prints δ^L = G(L)(y - ŷ); for L = ½(y - ŷ)², ∂L/∂z^L = G(L)(ŷ - y).

    ∂/∂ŷ ½(y - ŷ)² = -(y - ŷ), so the printed vector is the negative gradient (the
    descent direction); netcheck's δ^L is the gradient itself.
    """
    net = nc.Network((2, 3, 2), "sigmoid", "sigmoid", "squared_error", bias=False)
    w1 = np.array([[0.5, -0.4], [0.3, 0.8], [-0.6, 0.1]])
    w2 = np.array([[0.7, -0.2, 0.4], [-0.5, 0.9, 0.3]])
    x = np.array([[1.0, -2.0], [0.5, 0.25]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    slide = []
    for x_i, y_i in zip(x, y, strict=True):
        z2 = w2 @ sigmoid(w1 @ x_i)
        y_hat = sigmoid(z2)
        slide.append(np.diag(y_hat * (1 - y_hat)) @ (y_i - y_hat))  # δ^L = G(L)(y - ŷ)
    slide = np.array(slide)
    ours = np.asarray(net.manual_deltas([{"W": jnp.asarray(w1)}, {"W": jnp.asarray(w2)}], x, y)[-1])
    assert (np.sign(slide) == -np.sign(ours)).all() and (slide != 0).all()
    np.testing.assert_allclose(slide, -ours, rtol=1e-14)
