"""Tests of netcheck.nn.losses: values against numpy, first and second derivatives against
autodiff, and the rule each loss puts on its targets.

References: the loss formulas written again in numpy (float64), float64 ``jax.grad`` and
``jax.jvp(jax.grad)`` of the loss's own value, and targets built by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.nn.activations import ACTIVATIONS
from netcheck.nn.losses import LOSSES, TARGET_SUM_TOLERANCE, get_loss

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


@pytest.mark.parametrize("name", list(LOSSES))
def test_grad_prediction_tangent_matches_float64_autodiff(name, x64):
    """(∂²L/∂ŷ²) t against forward-over-reverse autodiff of the loss's value alone."""
    _, y_hat, y = (jnp.asarray(a) for a in _batch(name))
    t = jnp.asarray(np.random.default_rng(3).normal(0.0, 1.0, y_hat.shape))
    loss = LOSSES[name]

    def grad_prediction(p):
        return jax.grad(lambda q: jnp.sum(loss.value(q, y)))(p)

    expected = jax.jvp(grad_prediction, (y_hat,), (t,))[1]
    got = loss.grad_prediction_tangent(y_hat, y, t)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", FUSED)
def test_fused_delta_tangent_matches_autodiff_of_value_from_logits(name, x64):
    """(∂δ^L/∂z^L) t against forward-over-reverse autodiff of the value from the logits."""
    z, _, y = (jnp.asarray(a) for a in _batch(name))
    t = jnp.asarray(np.random.default_rng(4).normal(0.0, 1.0, z.shape))
    loss = LOSSES[name]

    def delta(logits):
        return jax.grad(lambda q: jnp.sum(loss.value_from_logits(q, y)))(logits)

    expected = jax.jvp(delta, (z,), (t,))[1]
    got = loss.delta_tangent_from_logits(z, y, t)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=RTOL, atol=ATOL)


def test_only_fused_losses_have_a_delta_tangent_from_logits():
    assert {n for n, loss in LOSSES.items() if loss.delta_tangent_from_logits} == set(FUSED)


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


# ----- the rule on targets ------------------------------------------------------------------


def _targets(rows) -> jnp.ndarray:
    return jnp.asarray(rows, jnp.float32)


@pytest.mark.parametrize(
    ("name", "rows", "match"),
    [
        pytest.param(
            "binary_cross_entropy",
            [[0.5, 1.5], [0.0, -1.0]],
            r"y: binary_cross_entropy needs targets in \[0, 1\], got values in \[-1, 1.5\]",
            id="bce-outside-unit-interval",
        ),
        pytest.param(
            "binary_cross_entropy",
            [[0.5, 1.5], [0.0, 1.0]],
            r"y: binary_cross_entropy needs targets in \[0, 1\], got values in \[0, 1.5\]",
            id="bce-above-1-only",
        ),
        pytest.param(
            "softmax_cross_entropy",
            [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]],
            r"y: softmax_cross_entropy needs target rows summing to 1 \(one-hot or "
            r"probabilities\); 1 row\(s\) do not, e\.g\. row 0 sums to 3",
            id="ce-row-sums-to-3",
        ),
        pytest.param(
            "softmax_cross_entropy",
            [[0.0, 2.0, -1.0]],
            r"softmax_cross_entropy needs targets in \[0, 1\], got values in \[-1, 2\]",
            id="ce-sums-to-1-outside-unit-interval",
        ),
        pytest.param(
            "softmax_cross_entropy",
            [[0.5, 0.5, 0.0], [0.2, 0.2, 0.2]],
            r"1 row\(s\) do not, e\.g\. row 1 sums to 0\.6",
            id="ce-row-sums-below-1",
        ),
    ],
)
def test_targets_outside_the_losss_domain_are_refused(name, rows, match):
    with pytest.raises(ValueError, match=match):
        LOSSES[name].check_targets(_targets(rows))


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        pytest.param("binary_cross_entropy", [[0.0, 1.0], [0.25, 0.75]], id="bce-soft-labels"),
        pytest.param("softmax_cross_entropy", [[0.0, 1.0, 0.0]], id="ce-one-hot"),
        pytest.param(
            "softmax_cross_entropy", [[0.1, 0.2, 0.7]], id="ce-float32-mixture-rounds-off-1"
        ),
        pytest.param("squared_error", [[-7.0, 1e6]], id="se-any-real-target"),
    ],
)
def test_targets_within_the_losss_domain_are_accepted(name, rows):
    LOSSES[name].check_targets(_targets(rows))


def test_row_sum_tolerance_is_the_trainers_and_widens_for_coarse_dtypes():
    ce = LOSSES["softmax_cross_entropy"]
    assert TARGET_SUM_TOLERANCE == 1e-4
    ce.check_targets(np.array([[0.5, 0.5 + 0.9e-4]]))
    with pytest.raises(ValueError, match=r"row 0 sums to 1\.0002"):
        ce.check_targets(np.array([[0.5, 0.5002]]))
    # A probability row stored in bfloat16 (8 significant bits) may miss 1 by ~n_L·2^-8;
    # 0.3, 0.3, 0.4 round to 0.30078125, 0.30078125, 0.400390625: the sum is 1.00195...
    mixture = jnp.asarray([[0.3, 0.3, 0.4]], jnp.bfloat16)
    assert abs(float(jnp.sum(mixture.astype(jnp.float32))) - 1) > TARGET_SUM_TOLERANCE
    ce.check_targets(mixture)
    with pytest.raises(ValueError, match=r"sums to 3"):
        ce.check_targets(jnp.ones((1, 3), jnp.bfloat16))


def test_targets_under_jit_are_not_checked():
    """Under a transformation the values are not known: only shapes can be checked."""
    ce = LOSSES["softmax_cross_entropy"]

    @jax.jit
    def checked(y):
        ce.check_targets(y)
        return y.sum()

    assert float(checked(jnp.full((2, 3), 1.0))) == 6.0
