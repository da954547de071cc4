"""Finite differences: against analytic derivatives, and kinks recognised as such."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.verifier import finite_diff


def test_random_direction_has_unit_norm_and_the_shapes_of_the_tree():
    tree = {"a": np.zeros((3, 2)), "b": np.zeros(4)}
    direction = finite_diff.random_direction(np.random.default_rng(0), tree)
    assert direction["a"].shape == (3, 2) and direction["b"].shape == (4,)
    total = np.sum(direction["a"] ** 2) + np.sum(direction["b"] ** 2)
    assert total == pytest.approx(1.0, rel=1e-12)


def test_smooth_directional_derivative_matches_the_analytic_one(x64):
    # f(v) = Σ sin(v) v², f'(v; d) = Σ (cos(v) v² + 2 v sin(v)) d, computed in NumPy.
    v = np.array([0.3, -1.2, 2.0, 0.7])
    d = finite_diff.random_direction(np.random.default_rng(1), v)
    estimate = finite_diff.directional_derivative(
        lambda w: jnp.sum(jnp.sin(w) * w**2), jnp.asarray(v), jnp.asarray(d)
    )
    exact = np.sum((np.cos(v) * v**2 + 2 * v * np.sin(v)) * d)
    assert not bool(estimate.kink)
    assert abs(float(estimate.value) - exact) <= float(estimate.error)
    assert float(estimate.error) < 1e-7


def test_relu_exactly_at_zero_is_a_kink_and_away_from_it_is_not(x64):
    def f(w):
        return jnp.sum(jnp.maximum(w, 0.0))

    d = jnp.array([0.6, 0.8])
    at_kink = finite_diff.directional_derivative(f, jnp.array([0.0, 1.0]), d)
    assert bool(at_kink.kink)
    smooth = finite_diff.directional_derivative(f, jnp.array([1e-3, 1.0]), d)
    assert not bool(smooth.kink)
    # Away from the kink both coordinates are in the linear part: f'(v; d) = 0.6 + 0.8.
    assert float(smooth.value) == pytest.approx(1.4, abs=1e-9)


def test_ladder_estimate_is_batched_over_leading_axes(x64):
    offsets = finite_diff.ladder_offsets()
    slopes = jnp.array([[1.0, -2.0], [0.5, 3.0]])
    values = slopes[..., None] * offsets.reshape(1, 1, -1) + 7.0  # f(x + t d) = 7 + slope t
    estimate = finite_diff.ladder_estimate(values)
    assert estimate.value.shape == (2, 2)
    np.testing.assert_allclose(np.asarray(estimate.value), np.asarray(slopes), atol=1e-9)
    assert not np.any(np.asarray(estimate.kink))


def test_a_ladder_of_fewer_than_three_steps_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        finite_diff.ladder_offsets((1e-3, 1e-4))


def test_tree_dot_sums_over_leaves():
    a = {"x": jnp.ones(3), "y": jnp.full((2,), 2.0)}
    b = {"x": jnp.full(3, 3.0), "y": jnp.ones(2)}
    assert float(finite_diff.tree_dot(a, b)) == pytest.approx(9.0 + 4.0)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
