"""Tests of netcheck.losses: values against numpy, ∂L/∂ŷ and the fused δ^L against autodiff.

References: the loss formulas written again in numpy (float64) and float64 ``jax.grad``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.activations import ACTIVATIONS
from netcheck.losses import LOSSES, get_loss

FUSED = ("binary_cross_entropy", "softmax_cross_entropy")

# float64 comparisons of closed forms with O(1) inputs: a few roundings each, ~1e-15;
# 1e-12 leaves a wide margin yet any wrong formula (sign, factor, missing term) is O(1) off.
RTOL = 1e-12
ATOL = 1e-14


def _numpy_loss(name: str, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The three per-example losses written out in numpy, summed over outputs."""
    if name == "squared_error":
        return 0.5 * ((y - y_hat) ** 2).sum(axis=-1)
    if name == "binary_cross_entropy":
        return -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)).sum(axis=-1)
    return -(y * np.log(y_hat)).sum(axis=-1)


def _batch(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits ``z (6, 3)``, a valid prediction ``ŷ = g_L(z)`` and a target ``y``, float64."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (6, 3))
    if name == "binary_cross_entropy":
        return z, 1 / (1 + np.exp(-z)), rng.uniform(0.0, 1.0, (6, 3))
    if name == "softmax_cross_entropy":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        # Soft targets summing to 1 and one-hot rows both occur in practice.
        y = rng.dirichlet(np.ones(3), 6)
        y[:3] = np.eye(3)[[0, 2, 1]]
        return z, e / e.sum(axis=-1, keepdims=True), y
    return z, z, rng.normal(0.0, 1.0, (6, 3))


@pytest.mark.parametrize("name", list(LOSSES))
def test_value_matches_numpy(name, x64):
    _, y_hat, y = _batch(name)
    got = LOSSES[name].value(jnp.asarray(y_hat), jnp.asarray(y))
    assert got.shape == (6,)
    np.testing.assert_allclose(np.asarray(got), _numpy_loss(name, y_hat, y), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(LOSSES))
def test_grad_prediction_matches_float64_autodiff(name, x64):
    _, y_hat, y = (jnp.asarray(a) for a in _batch(name))
    loss = LOSSES[name]
    # Examples do not interact, so ∂(Σ_i L_i)/∂ŷ has example i's ∂L_i/∂ŷ_i in row i.
    expected = jax.grad(lambda p: jnp.sum(loss.value(p, y)))(y_hat)
    got = loss.grad_prediction(y_hat, y)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=RTOL, atol=ATOL)


def test_squared_error_grad_is_prediction_minus_target(x64):
    """The lecture's L = ½(y - ŷ)² has ∂L/∂ŷ = ŷ - y, not the slide's y - ŷ."""
    y_hat, y = jnp.asarray([[0.75, -2.0]]), jnp.asarray([[0.25, 1.0]])
    got = LOSSES["squared_error"].grad_prediction(y_hat, y)
    np.testing.assert_array_equal(np.asarray(got), [[0.5, -3.0]])


@pytest.mark.parametrize("name", FUSED)
def test_fused_delta_matches_autodiff_of_value_from_logits(name, x64):
    z, _, y = (jnp.asarray(a) for a in _batch(name))
    loss = LOSSES[name]
    expected = jax.grad(lambda logits: jnp.sum(loss.value_from_logits(logits, y)))(z)
    got = loss.delta_from_logits(z, y)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", FUSED)
def test_fused_delta_is_the_chain_rule_through_the_output(name, x64):
    """δ^L = G(L) ∂L/∂ŷ through the unfused path equals the fused ŷ - y."""
    z, _, y = (jnp.asarray(a) for a in _batch(name))
    loss = LOSSES[name]
    output = ACTIVATIONS[loss.output_activation].fn
    expected = jax.grad(lambda logits: jnp.sum(loss.value(output(logits), y)))(z)
    # The unfused path divides by ŷ(1 - ŷ); with |z| ≲ 5 that is ≥ 6e-3, so its rounding
    # stays below ~1e-13 relative and RTOL still holds.
    np.testing.assert_allclose(
        np.asarray(loss.delta_from_logits(z, y)), np.asarray(expected), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("name", FUSED)
def test_value_from_logits_equals_value_of_the_output(name, x64):
    z, y_hat, y = _batch(name)
    loss = LOSSES[name]
    got = loss.value_from_logits(jnp.asarray(z), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(got), _numpy_loss(name, y_hat, y), rtol=RTOL, atol=ATOL)
    assert loss.output_activation == {"binary_cross_entropy": "sigmoid"}.get(name, "softmax")


# Logits of ±1e4 in float32, where exp overflows and σ(z) rounds to exactly 0 or 1. The
# exact values are known in closed form: softplus(z) - y z is 1e4·(1-y) for z = 1e4 and
# 1e4·y for z = -1e4 (up to e^-1e4); δ = σ(z) - y is 1 - y or -y.
def test_binary_cross_entropy_from_huge_logits_is_finite_and_exact():
    loss = LOSSES["binary_cross_entropy"]
    z = jnp.asarray([[1e4, -1e4, 1e4, -1e4]], jnp.float32)
    y = jnp.asarray([[1.0, 0.0, 0.0, 1.0]], jnp.float32)
    value = loss.value_from_logits(z, y)
    delta = loss.delta_from_logits(z, y)
    assert value.dtype == delta.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(value), [2e4])
    np.testing.assert_array_equal(np.asarray(delta), [[0.0, 0.0, 1.0, -1.0]])
    # The unfused value is what the fused rule avoids: log(1 - σ(1e4)) = log 0.
    assert not np.isfinite(np.asarray(loss.value(jax.nn.sigmoid(z), y))).all()


def test_softmax_cross_entropy_from_huge_logits_is_finite_and_exact():
    loss = LOSSES["softmax_cross_entropy"]
    z = jnp.asarray([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], jnp.float32)
    y = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], jnp.float32)
    value = loss.value_from_logits(z, y)
    delta = loss.delta_from_logits(z, y)
    # logsumexp(z) = 1e4 in float32, so L = 1e4 - z_target: 0 and 2e4.
    np.testing.assert_array_equal(np.asarray(value), [0.0, 2e4])
    np.testing.assert_array_equal(np.asarray(delta), [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])


def test_fused_property():
    assert {name for name, loss in LOSSES.items() if loss.fused} == set(FUSED)
    assert LOSSES["squared_error"].output_activation is None


def test_get_loss_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; known: squared_error, binary_"):
        get_loss("hinge")


def test_get_loss_non_string_is_a_type_error():
    with pytest.raises(TypeError, match=r"loss must be a name \(str\), got NoneType"):
        get_loss(None)
