"""Tests of netcheck.nn.backprop: the hand-written δ recursion against independent references.

References: the lecture's steps written out in numpy (tiny networks), float64 ``jax.grad`` of
the same mean loss (every activation x output/loss pair x bias x depth, and Hypothesis
architectures), and per-example ``jax.vmap(jax.grad)``.

Tolerances are relative to the largest |entry| of each gradient leaf of the float64 truth:
``|manual - truth| ≤ ROUNDOFF_ULPS · eps(dtype) · max|truth leaf|``. Observed worst cases on
the sweep are ~30 eps in float64 and ~100 eps in float32 (a tanh/identity net whose bias
gradient nearly cancels over the batch); ROUNDOFF_ULPS = 1000 leaves a margin of 10 over that,
while the smallest real bug (a 1% scale error) sits at 1e-2, i.e. 8e4 float32 eps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import OUTPUT_LOSS_PAIRS as PAIRS_BY_ID
from cases import assert_close, sweep_cases, sweep_sizes, tiny_problem
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import netcheck as nc
from netcheck.nn import autodiff, backprop

OUTPUT_LOSS_PAIRS = tuple(PAIRS_BY_ID.values())
PAIR_IDS = tuple(PAIRS_BY_ID)


def _as(tree, dtype):
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), tree)


# ----- a tiny network, by hand --------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _by_hand(w1, b1, w2, b2, x, y):
    """The lecture's steps (1)-(5) per example, then the mean over the batch (1/n Σ_i)."""
    grads = {"W1": np.zeros_like(w1), "b1": np.zeros_like(b1)}
    grads |= {"W2": np.zeros_like(w2), "b2": np.zeros_like(b2)}
    for x_i, y_i in zip(x, y, strict=True):
        # (1) feed x forward: z^1 = W_1 x + b_1, a^1 = σ(z^1), z^2 = W_2 a^1 + b_2, ŷ = σ(z^2).
        z1 = w1 @ x_i + b1
        a1 = _sigmoid(z1)
        z2 = w2 @ a1 + b2
        y_hat = _sigmoid(z2)
        # (2) G(ℓ) = diag(σ'(z^ℓ)) with σ' = σ(1 - σ).
        g1 = np.diag(a1 * (1 - a1))
        g2 = np.diag(y_hat * (1 - y_hat))
        # (3) δ^2 = G(2) ∂L/∂ŷ, and for L = ½(y - ŷ)², ∂L/∂ŷ = ŷ - y (the slide's y - ŷ
        # is the negative gradient).
        delta2 = g2 @ (y_hat - y_i)
        # (4) δ^1 = G(1) W_2ᵀ δ^2.
        delta1 = g1 @ w2.T @ delta2
        # (5) ∂L/∂w^ℓ_{j,k} = a^{ℓ-1}_k δ^ℓ_j; ∂L/∂b^ℓ_j = δ^ℓ_j.
        grads["W2"] += np.outer(delta2, a1)
        grads["b2"] += delta2
        grads["W1"] += np.outer(delta1, x_i)
        grads["b1"] += delta1
    return {name: g / len(x) for name, g in grads.items()}


# Both sides do the same ~20 float64 roundings of O(1) numbers; 1e-14 relative is ~50 eps.
TINY_RTOL = 1e-14


def test_tiny_network_with_bias_by_hand(x64):
    w1, b1, w2, b2, x, y = tiny_problem()
    net = nc.Network((2, 2, 1), "sigmoid", "sigmoid", "squared_error", bias=True)
    params = [
        {"W": jnp.asarray(w1), "b": jnp.asarray(b1)},
        {"W": jnp.asarray(w2), "b": jnp.asarray(b2)},
    ]
    got = net.manual_grad(params, x, y)
    hand = _by_hand(w1, b1, w2, b2, x, y)
    for layer in (1, 2):
        for leaf in ("W", "b"):
            np.testing.assert_allclose(
                np.asarray(got[layer - 1][leaf]), hand[f"{leaf}{layer}"], rtol=TINY_RTOL
            )


def test_tiny_network_without_bias_reproduces_the_slides(x64):
    w1, _, w2, _, x, y = tiny_problem()
    zero1, zero2 = np.zeros(2), np.zeros(1)
    net = nc.Network((2, 2, 1), "sigmoid", "sigmoid", "squared_error", bias=False)
    params = [{"W": jnp.asarray(w1)}, {"W": jnp.asarray(w2)}]
    got = net.manual_grad(params, x, y)
    hand = _by_hand(w1, zero1, w2, zero2, x, y)
    assert [set(layer) for layer in got] == [{"W"}, {"W"}]
    np.testing.assert_allclose(np.asarray(got[0]["W"]), hand["W1"], rtol=TINY_RTOL)
    np.testing.assert_allclose(np.asarray(got[1]["W"]), hand["W2"], rtol=TINY_RTOL)


# ----- every activation x output/loss x bias x depth, against float64 autodiff -------------
#
# Run eagerly (jax.disable_jit): 540 distinct networks would each compile their own XLA
# program, which takes minutes; the jit-compiled entry points are the same traced function
# and are exercised by the tiny-network, vmap and compile-once tests.


@pytest.mark.parametrize(
    ("activation", "output", "loss", "bias", "depth", "equal_widths"), sweep_cases(range(5))
)
def test_manual_matches_autodiff(
    activation, output, loss, bias, depth, equal_widths, make_problem, x64
):
    """float64: manual vs jax.grad at round-off; float32: manual vs the float64 truth.

    The float32 gradient is computed with x64 enabled (the fixture spans the test); its
    arrays are float32 throughout, as strict dtype promotion would flag any silent upcast.
    Networks alternate between two width patterns (see ``cases.sweep_sizes``): one where no
    W is square, one where every W_ℓ has the shape of W_{ℓ+1}, so that a transposed or
    swapped weight matrix fails here whichever way it is written.
    """
    sizes = sweep_sizes(depth, equal_widths)
    net = nc.Network(sizes, activation, output, loss, bias)
    params, x, y = make_problem(sizes, loss, bias, batch=5, seed=depth)
    with jax.disable_jit():
        truth = autodiff.autodiff_grad(net, *_as((params, x, y), jnp.float64))
        manual64 = backprop.manual_grad(net, *_as((params, x, y), jnp.float64))
        manual32 = backprop.manual_grad(net, *_as((params, x, y), jnp.float32))
    assert jax.tree.structure(manual64) == jax.tree.structure(truth)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(manual32))
    assert_close(manual64, truth, jnp.float64)
    assert_close(manual32, truth, jnp.float32)


# ----- Hypothesis: random architectures ----------------------------------------------------


SATURATION = 1e-2
"""Smallest ``g'(z)/g'(0)`` of a sigmoid, tanh or softmax unit for the round-off bound."""


def _off_saturation(net, params, x, y) -> bool:
    """Whether no activation derivative is ill-conditioned at this point.

    Every sigmoid/tanh unit needs ``g'(z) ≥ SATURATION · g'(0)``; an unfused softmax output
    needs ``‖G(L) v‖ ≥ SATURATION · ‖s‖ ‖v‖`` for ``v = ŷ - y``.

    Where tanh or sigmoid saturates, ``g'`` is a difference of nearly equal numbers
    (``1 - a²``, and ``jax.grad``'s own ``g(1 + a)(1 - a)``), so *both* sides lose about
    ``log10(g'(0)/g'(z))`` digits and a fixed round-off bound no longer applies: Hypothesis
    found a 7e-13 relative gap at ``tanh(-5.2)`` (``1 - a² ≈ 1e-4``), and a 1e-11 one where
    ``ŷ - y`` was nearly constant across a softmax's outputs. The verifier's
    calibrated tolerance covers that regime (tests/test_verifier.py); this test keeps to
    the conditioning its bound is stated for (at most 100x, so ≤ 1000 eps holds).
    """
    cache = net.forward_cache(params, x)
    for layer in range(1, net.depth + 1):
        activation = net.layer_activation(layer)
        if activation.name == "softmax" and not net.loss_fn.fused:
            # G(L) v = s ⊙ (v - sᵀv) cancels when v = ŷ - y is nearly constant across
            # outputs (the all-ones direction is G(L)'s null space) or when s saturates.
            s, v = cache.activations[layer], cache.activations[layer] - y
            product = jnp.linalg.norm(s * (v - jnp.sum(s * v, -1, keepdims=True)), axis=-1)
            if (
                jnp.min(product / (jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(v, axis=-1)))
                < SATURATION
            ):
                return False
        if activation.name in ("sigmoid", "tanh"):
            z, a = cache.pre_activations[layer - 1], cache.activations[layer]
            slope_at_zero = activation.derivative(jnp.zeros(()), activation.fn(jnp.zeros(())))
            if jnp.min(activation.derivative(z, a)) < SATURATION * slope_at_zero:
                return False
    return True


@st.composite
def architectures(draw):
    """(network, dtype, batch, seed) with shrinking towards small, shallow, float64 cases.

    Widths come from a short list (1, 2 and 5: a single unit, and non-square layers) so
    that eager dispatch reuses its compiled primitives across examples.
    """
    output, loss = draw(st.sampled_from(OUTPUT_LOSS_PAIRS))
    depth = draw(st.integers(0, 4))
    widths = draw(st.lists(st.sampled_from([1, 2, 5]), min_size=depth, max_size=depth))
    n_out = draw(st.sampled_from([2, 3] if output == "softmax" else [1, 2, 3]))
    sizes = (draw(st.sampled_from([1, 3])), *widths, n_out)
    net = nc.Network(
        sizes, draw(st.sampled_from(nc.HIDDEN_ACTIVATIONS)), output, loss, draw(st.booleans())
    )
    dtype = draw(st.sampled_from([jnp.float64, jnp.float32]))
    return net, dtype, draw(st.sampled_from([1, 4])), draw(st.integers(0, 2**16))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=architectures())
def test_random_architectures_manual_matches_autodiff(case, make_problem, x64):
    net, dtype, batch, seed = case
    params, x, y = make_problem(net.sizes, net.loss, net.bias, batch=batch, seed=seed)
    assume(_off_saturation(net, *_as((params, x, y), jnp.float64)))
    with jax.disable_jit():
        truth = autodiff.autodiff_grad(net, *_as((params, x, y), jnp.float64))
        manual = backprop.manual_grad(net, *_as((params, x, y), dtype))
    assert_close(manual, truth, dtype)


# ----- per-example gradients through vmap ---------------------------------------------------


@pytest.mark.parametrize(("output", "loss"), OUTPUT_LOSS_PAIRS, ids=PAIR_IDS)
def test_per_example_gradients_by_vmap(output, loss, make_problem, x64):
    net = nc.Network((3, 5, 4, 3), "tanh", output, loss, bias=True)
    params, x, y = _as(make_problem(net.sizes, loss, True, batch=6, seed=11), jnp.float64)

    def manual_one(x_i, y_i):
        return net.manual_grad(params, x_i[None], y_i[None])

    def loss_one(p, x_i, y_i):
        return net.mean_loss_unchecked(p, x_i[None], y_i[None])

    got = jax.vmap(manual_one)(x, y)
    expected = jax.vmap(jax.grad(loss_one), in_axes=(None, 0, 0))(params, x, y)
    assert jax.tree.leaves(got)[0].shape[0] == 6
    assert_close(got, expected, jnp.float64)
    # The per-example gradients average to the batch gradient.
    assert_close(
        jax.tree.map(lambda g: g.mean(axis=0), got), net.manual_grad(params, x, y), jnp.float64
    )


# ----- compiled once ------------------------------------------------------------------------


def test_manual_grad_compiles_once_per_shape(make_problem):
    net = nc.Network((3, 9, 2), "silu", "softmax", "softmax_cross_entropy")
    params, x, y = _as(make_problem(net.sizes, net.loss, True, batch=13, seed=3), jnp.float32)
    cache = backprop.manual_grad_jit._cache_size
    before = cache()
    jax.block_until_ready(net.manual_grad(params, x, y))
    assert cache() == before + 1
    jax.block_until_ready(net.manual_grad(params, x, y))
    assert cache() == before + 1, "the second call with the same shapes recompiled"
    # An equal, separately built spec hashes equal and reuses the compiled program.
    twin = nc.Network((3, 9, 2), "silu", "softmax", "softmax_cross_entropy")
    assert twin is not net and twin == net and hash(twin) == hash(net)
    jax.block_until_ready(twin.manual_grad(params, x, y))
    assert cache() == before + 1, "an equal Network did not reuse the compiled program"
    # A new batch size is a new shape and must compile: the counter does move.
    jax.block_until_ready(net.manual_grad(params, x[:7], y[:7]))
    assert cache() == before + 2


# ----- low precision ------------------------------------------------------------------------


def test_manual_grad_runs_in_bfloat16(make_problem, x64):
    net = nc.Network((4, 8, 8, 2), "tanh", "sigmoid", "binary_cross_entropy")
    params, x, y = make_problem(net.sizes, net.loss, True, batch=8, seed=5)
    grads = net.manual_grad(*_as((params, x, y), jnp.bfloat16))
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(grads))
    truth = net.autodiff_grad(*_as((params, x, y), jnp.float64))
    # bfloat16 keeps 8 significant bits (eps = 2^-7): rounding the inputs alone moves each
    # gradient by a few eps, and ~10 roundings per layer follow. 8 eps (6%) bounds that
    # while a wrong derivative is still O(1) off.
    assert_close(grads, truth, jnp.bfloat16, ulps=8)
