"""Tests of netcheck.nn.activations: every hand-written g' and g'' against independent references.

References: float64 ``jax.grad`` (and ``jax.grad(jax.grad)``) of the activation's own
function, central finite differences in float64, and for softmax the explicit Jacobian built
in numpy and autodiff of ``jax.vjp``. None of them reads the code's own ``derivative``.
"""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.nn.activations import (
    ACTIVATIONS,
    HIDDEN_ACTIVATIONS,
    LEAKY_RELU_SLOPE,
    get_activation,
    softmax_jacobian,
    softmax_vjp,
    softmax_vjp_tangent,
)

ELEMENTWISE = tuple(name for name, record in ACTIVATIONS.items() if record.elementwise)
KINKED = ("relu", "leaky_relu", "elu")  # not twice differentiable at z = 0

# Points on [-6, 6], dense enough to cover both tails and the middle, none within 1e-3 of
# the kink at 0 (finite differences and autodiff only agree off the kink).
GRID = np.concatenate([np.linspace(-6.0, -1e-3, 101), np.linspace(1e-3, 6.0, 101)])

# Hand-written vs float64 autodiff: both evaluate closed forms in float64. The worst
# conditioning on the grid is where a derivative is recovered from the forward output
# (σ' = a(1-a), elu' = a + 1, tanh' = 1 - a²) on a tail: 1 - a or a + 1 is ~2.5e-3 at
# |z| = 6, so one rounding of a (2.2e-16) becomes ~1e-13 relative. 1e-12 leaves a margin
# of 10 over that and is still ~1e9 below any wrong formula.
AUTODIFF_RTOL = 1e-12
AUTODIFF_ATOL = 1e-15

# Central differences with h = 1e-5: truncation h²/6 |g'''| ≤ 1.7e-11 (|g'''| ≤ 1 for these
# functions on the grid) plus round-off ε|g|/h ≤ 2.2e-16 · 6 / 1e-5 ≈ 1.3e-10. 1e-8 is
# ~60x above that sum.
FD_STEP = 1e-5
FD_ATOL = 1e-8


def _float64_grad(name: str, z: np.ndarray) -> np.ndarray:
    fn = ACTIVATIONS[name].fn
    return np.asarray(jax.vmap(jax.grad(fn))(jnp.asarray(z, jnp.float64)))


def _hand_derivative(name: str, z: jax.Array) -> jax.Array:
    record = ACTIVATIONS[name]
    return record.derivative(z, record.fn(z))


def _float64_second(name: str, z: np.ndarray) -> np.ndarray:
    """``g''`` by float64 autodiff of the activation's function alone (not of its ``g'``)."""
    fn = ACTIVATIONS[name].fn
    return np.asarray(jax.vmap(jax.grad(jax.grad(fn)))(jnp.asarray(z, jnp.float64)))


def _hand_second(name: str, z: jax.Array) -> jax.Array:
    record = ACTIVATIONS[name]
    return record.second_derivative(z, record.fn(z))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_float64_autodiff(name, x64):
    z = jnp.asarray(GRID, jnp.float64)
    np.testing.assert_allclose(
        np.asarray(_hand_derivative(name, z)),
        _float64_grad(name, GRID),
        rtol=AUTODIFF_RTOL,
        atol=AUTODIFF_ATOL,
    )


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_central_differences(name, x64):
    fn = ACTIVATIONS[name].fn

    def g(z: np.ndarray) -> np.ndarray:
        return np.asarray(fn(jnp.asarray(z, jnp.float64)))

    central = (g(GRID + FD_STEP) - g(GRID - FD_STEP)) / (2 * FD_STEP)
    hand = np.asarray(_hand_derivative(name, jnp.asarray(GRID, jnp.float64)))
    np.testing.assert_allclose(hand, central, rtol=0, atol=FD_ATOL)


# g'' by hand vs float64 autodiff: the same conditioning as g' (σ'' = a(1-a)(1-2a) and
# tanh'' = -2a(1-a)(1+a) recover 1 ∓ a from the forward output), so the same tolerances; near
# the zeros of g'' (σ'' and tanh'' at 0, gelu'' at ±√2) AUTODIFF_ATOL carries the comparison.
# Observed: at most 5e-16 absolute, 2e-13 relative where |g''| > 1e-3.
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_second_derivative_matches_float64_autodiff(name, x64):
    z = jnp.asarray(GRID, jnp.float64)
    np.testing.assert_allclose(
        np.asarray(_hand_second(name, z)),
        _float64_second(name, GRID),
        rtol=AUTODIFF_RTOL,
        atol=AUTODIFF_ATOL,
    )


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_second_derivative_matches_central_differences_of_autodiff_slope(name, x64):
    """g'' against central differences of float64 ``jax.grad(g)``: a second witness.

    Truncation h²/6 |g| ≤ 3e-11 (|g| ≤ 2 on the grid) plus round-off ε|g'|/h ≤ 2.3e-11;
    FD_ATOL = 1e-8 is ~200x above that.
    """
    slope = jax.vmap(jax.grad(ACTIVATIONS[name].fn))

    def g_prime(z: np.ndarray) -> np.ndarray:
        return np.asarray(slope(jnp.asarray(z, jnp.float64)))

    central = (g_prime(GRID + FD_STEP) - g_prime(GRID - FD_STEP)) / (2 * FD_STEP)
    hand = np.asarray(_hand_second(name, jnp.asarray(GRID, jnp.float64)))
    np.testing.assert_allclose(hand, central, rtol=0, atol=FD_ATOL)


def test_piecewise_linear_is_exactly_where_autodiffs_second_derivative_vanishes(x64):
    """The R-pass skips g'' for these; that must be no approximation."""
    for name in ELEMENTWISE:
        vanishes = not _float64_second(name, GRID).any()
        assert ACTIVATIONS[name].piecewise_linear == vanishes, name


@pytest.mark.parametrize("name", KINKED)
def test_second_derivative_at_the_kink_is_autodiffs(name, x64):
    """At z = 0, g'' is the second derivative of the branch g' takes there, as in jax.grad."""
    zero = jnp.zeros((3,), jnp.float64)
    np.testing.assert_array_equal(
        np.asarray(_hand_second(name, zero)), _float64_second(name, np.zeros(3))
    )


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_second_derivative_keeps_dtype_and_is_finite_on_far_tails(name, dtype):
    z = jnp.asarray([-1e4, -100.0, 0.5, 100.0, 1e4], dtype)
    second = _hand_second(name, z)
    assert second.dtype == dtype and second.shape == z.shape
    assert bool(jnp.all(jnp.isfinite(second)))


# The subgradient chosen at the kink z = 0, and why:
# relu: 0 (jax.grad of `where(z > 0, z, 0)` gives 0; the zero subgradient keeps dead units dead);
# leaky_relu: 1 (jax.nn.leaky_relu's choice, `z >= 0` picks the linear branch);
# elu: 1 (with α = 1 both one-sided derivatives are 1, so elu is C¹ and there is no choice).
KINK_SUBGRADIENT = {"relu": 0.0, "leaky_relu": 1.0, "elu": 1.0}


@pytest.mark.parametrize("name", KINKED)
def test_subgradient_at_the_kink(name, x64):
    zero = jnp.zeros((3,), jnp.float64)
    expected = KINK_SUBGRADIENT[name]
    np.testing.assert_array_equal(np.asarray(_hand_derivative(name, zero)), expected)
    # The autodiff reference takes the same subgradient, so verification never cries wolf
    # at an exact zero pre-activation.
    np.testing.assert_array_equal(_float64_grad(name, np.zeros(3)), expected)


@pytest.mark.parametrize("name", KINKED)
def test_one_sided_slopes_at_the_kink(name, x64):
    """Just off the kink the derivative is each side's slope (sign tests on a = g(z))."""
    left, right = {"relu": (0.0, 1.0), "leaky_relu": (LEAKY_RELU_SLOPE, 1.0)}.get(
        name, (np.exp(-1e-300), 1.0)
    )
    z = jnp.asarray([-1e-300, 1e-300], jnp.float64)
    np.testing.assert_allclose(np.asarray(_hand_derivative(name, z)), [left, right], rtol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_derivative_keeps_dtype_and_is_finite_on_far_tails(name, dtype):
    z = jnp.asarray([-1e4, -100.0, 0.5, 100.0, 1e4], dtype)
    derivative = _hand_derivative(name, z)
    assert derivative.dtype == dtype
    assert derivative.shape == z.shape
    assert bool(jnp.all(jnp.isfinite(derivative)))


def _numpy_softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _numpy_softmax_jacobian(s: np.ndarray) -> np.ndarray:
    # ∂s_i/∂z_j = s_i (δ_ij - s_j), written entry by entry.
    n = s.shape[0]
    return np.array([[s[i] * ((i == j) - s[j]) for j in range(n)] for i in range(n)])


# Softmax checks in float64: every reference is a few roundings of O(1) quantities.
SOFTMAX_RTOL = 1e-13
SOFTMAX_ATOL = 1e-15


@pytest.fixture
def softmax_batch() -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(4, 5)`` and an upstream vector ``v (4, 5)``, float64."""
    rng = np.random.default_rng(7)
    return rng.normal(0.0, 2.0, (4, 5)), rng.normal(0.0, 1.0, (4, 5))


def test_softmax_is_the_only_non_elementwise_output_only_activation():
    assert [n for n, r in ACTIVATIONS.items() if not r.elementwise] == ["softmax"]
    assert ACTIVATIONS["softmax"].output_only
    assert "softmax" not in HIDDEN_ACTIVATIONS
    assert set(HIDDEN_ACTIVATIONS) == set(ELEMENTWISE)


def test_softmax_vjp_matches_explicit_jacobian(softmax_batch, x64):
    z, v = softmax_batch
    s = _numpy_softmax(z)
    expected = np.stack([_numpy_softmax_jacobian(s_i) @ v_i for s_i, v_i in zip(s, v, strict=True)])
    got = softmax_vjp(jnp.asarray(s), jnp.asarray(v))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=SOFTMAX_RTOL, atol=SOFTMAX_ATOL)


def test_softmax_vjp_matches_jax_vjp(softmax_batch, x64):
    z, v = (jnp.asarray(a) for a in softmax_batch)
    fn = ACTIVATIONS["softmax"].fn
    s, pullback = jax.vjp(fn, z)
    (expected,) = pullback(v)
    np.testing.assert_allclose(
        np.asarray(softmax_vjp(s, v)), np.asarray(expected), rtol=SOFTMAX_RTOL, atol=SOFTMAX_ATOL
    )


def test_softmax_vjp_tangent_matches_autodiff_of_the_vjp(softmax_batch, x64):
    """d/dt [G(L)(z + t ż)ᵀ v] by forward-mode autodiff through jax.vjp of softmax itself."""
    z, v = (jnp.asarray(a) for a in softmax_batch)
    z_dot = jnp.asarray(np.random.default_rng(8).normal(0.0, 1.0, z.shape))
    fn = ACTIVATIONS["softmax"].fn

    def pullback_of_v(logits: jax.Array) -> jax.Array:
        return jax.vjp(fn, logits)[1](v)[0]

    expected = jax.jvp(pullback_of_v, (z,), (z_dot,))[1]
    s, s_dot = jax.jvp(fn, (z,), (z_dot,))
    np.testing.assert_allclose(
        np.asarray(softmax_vjp_tangent(s, s_dot, v)),
        np.asarray(expected),
        rtol=SOFTMAX_RTOL,
        atol=SOFTMAX_ATOL,
    )


def test_softmax_has_no_elementwise_second_derivative():
    """Its second-order term is softmax_vjp_tangent, a product; no tensor is ever formed."""
    assert ACTIVATIONS["softmax"].second_derivative is None
    assert all(ACTIVATIONS[name].second_derivative is not None for name in ELEMENTWISE)


def test_softmax_jacobian_matches_jax_jacobian(softmax_batch, x64):
    fn = ACTIVATIONS["softmax"].fn
    for z_i in jnp.asarray(softmax_batch[0]):
        expected = jax.jacobian(fn)(z_i)
        np.testing.assert_allclose(
            np.asarray(softmax_jacobian(fn(z_i))),
            np.asarray(expected),
            rtol=SOFTMAX_RTOL,
            atol=SOFTMAX_ATOL,
        )


def test_softmax_forward_matches_numpy_and_survives_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [1.0, 2.0, 3.0]], np.float32)
    s = ACTIVATIONS["softmax"].fn(jnp.asarray(z))
    # float32: a few roundings of O(1) numbers, ~1e-7; 1e-6 is ~10 eps32.
    np.testing.assert_allclose(np.asarray(s), _numpy_softmax(z.astype(np.float64)), atol=1e-6)


def test_get_activation_returns_the_record():
    assert get_activation("tanh") is ACTIVATIONS["tanh"]


def test_get_activation_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; known: identity, sigmoid"):
        get_activation("swish")


def test_get_activation_non_string_is_a_type_error():
    with pytest.raises(TypeError, match=r"activation must be a name \(str\), got int"):
        get_activation(3)


def test_tanh_derivative_adds_no_cancellation_where_tanh_saturates(x64):
    # Near |a| = 1, 1 - a·a cancels: at z = -5.2 it loses ~4 digits beyond the rounding of a
    # itself. The reference is 1 - a² computed exactly (rationals) from the same rounded a;
    # the hand-written derivative must stay within a few ulps of it.
    z = jnp.array([-5.215905630264575, 4.0, 7.5, -12.0], jnp.float64)
    tanh = get_activation("tanh")
    a = tanh.fn(z)
    got = np.asarray(tanh.derivative(z, a))
    exact = np.array([float(1 - Fraction(float(v)) ** 2) for v in np.asarray(a)])
    np.testing.assert_allclose(got, exact, rtol=4 * np.finfo(np.float64).eps)
