"""Finite differences in float64 along random directions: a witness independent of autodiff.

The verifier's truth is ``jax.grad`` in float64; this module checks that truth with nothing
but evaluations of the loss. Along a unit direction ``d`` the directional derivative
``f'(x; d) = ∇f(x) · d`` is estimated by central differences on a ladder of steps::

    D(h) = (f(x + h d) - f(x - h d)) / (2 h),    h ∈ STEPS = 1e-2, 1e-3, ..., 1e-6

Truncation error shrinks like ``h²`` down the ladder and rounding error grows like
``u |f| / h``; the estimate kept is the one whose disagreement with the previous (larger)
step plus its rounding bound is smallest, and that sum is its error estimate.

Kinks: the second difference ``S(h) = |f(x + h d) - 2 f(x) + f(x - h d)| / h`` is the gap
between the forward and backward slopes. Where ``f`` is smooth, ``S(h) = h |f''| + ...``
shrinks tenfold per rung; at a kink (relu exactly at 0) it tends to the jump in slope and
stops shrinking. When the last rung shrinks by less than ``KINK_RATIO`` and stands
above rounding, the point is reported as non-differentiable along ``d``.

Everything here is a pure ``jax.numpy`` function: it runs under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PyTree = Any

STEPS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
"""The step ladder, largest first; each rung is ten times smaller than the last."""

KINK_RATIO = 0.5
"""``S(h_min) / S(10 h_min)`` above this is a kink; a smooth function gives about 0.1."""

ROUNDING_FACTOR = 16.0
"""Rounding bound of a difference of loss values: ``ROUNDING_FACTOR · u · Σ|f|`` (float64 u).

A loss is a sum of many rounded terms, so a single ulp is not a bound; 16 ulps of the
values involved is a conservative one for the small networks checked here.
"""

_UNIT_ROUNDOFF_F64 = 2.0**-53


class FDEstimate(NamedTuple):
    """A finite-difference estimate of ``f'(x; d)``; every field is a scalar array.

    Attributes:
        value: the chosen central difference ``D(h)``.
        error: its estimated absolute error (ladder disagreement + rounding bound).
        step: the step ``h`` of ``value``.
        kink: whether ``f`` is non-differentiable at ``x`` along ``d`` (bool).
    """

    value: Array
    error: Array
    step: Array
    kink: Array


def random_direction(rng: np.random.Generator, tree: PyTree) -> PyTree:
    """A standard-normal direction shaped like ``tree``, scaled to unit norm over all leaves.

    Drawn on the host with NumPy, so that no random number generator has to be compiled
    into the program that uses it.

    Args:
        rng: a NumPy generator, e.g. ``numpy.random.default_rng(seed)``.
        tree: a pytree of arrays (only the shapes are read).

    Returns:
        A pytree like ``tree`` of float64 NumPy arrays with ``Σ_leaves ‖d‖² = 1``.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    raw = [rng.standard_normal(np.shape(leaf)) for leaf in leaves]
    norm = np.sqrt(sum(float(np.sum(r * r)) for r in raw))
    return jax.tree_util.tree_unflatten(treedef, [r / norm for r in raw])


def directional_derivative(
    f: Callable[[PyTree], Array],
    x: PyTree,
    direction: PyTree,
    steps: tuple[float, ...] = STEPS,
) -> FDEstimate:
    """Estimate ``f'(x; d) = ∇f(x) · d`` by central differences on a step ladder.

    Args:
        f: a scalar function of the pytree ``x``; evaluate it in float64 for a useful
            estimate (at the default steps, float32 rounding swamps the result).
        x: the point, a pytree of floating arrays.
        direction: ``d``, a pytree like ``x`` (unit norm, e.g. ``random_direction``).
        steps: at least three steps, largest first, each ten times the next.

    Returns:
        The ``FDEstimate``: ``value``, ``error``, ``step`` and ``kink``.
    """
    dtype = jax.tree_util.tree_leaves(x)[0].dtype
    offsets = ladder_offsets(steps, dtype)

    def along(t: Array) -> Array:
        return f(jax.tree_util.tree_map(lambda leaf, d: leaf + t * d, x, direction))

    return ladder_estimate(jax.vmap(along)(offsets), steps)


def ladder_offsets(steps: tuple[float, ...] = STEPS, dtype: Any = jnp.float64) -> Array:
    """The points ``t`` at which ``f(x + t d)`` is needed: ``(+h..., -h..., 0)``, ``(2K+1,)``."""
    _check_steps(steps)
    h = jnp.asarray(steps, dtype)
    return jnp.concatenate([h, -h, jnp.zeros((1,), dtype)])


def ladder_estimate(values: Array, steps: tuple[float, ...] = STEPS) -> FDEstimate:
    """The estimate from ``f`` at ``ladder_offsets``, batched over leading axes.

    Args:
        values: ``f(x + t d)`` at the offsets, shape ``(..., 2K+1)``.
        steps: the ``K`` steps the offsets were built from.

    Returns:
        An ``FDEstimate`` whose fields have shape ``(...)``.
    """
    _check_steps(steps)
    n = len(steps)
    # Shaped (1, ..., 1, K) to broadcast against the batch axes without rank promotion.
    h = jnp.asarray(steps, values.dtype).reshape((1,) * (values.ndim - 1) + (n,))
    f_plus, f_minus, f_zero = values[..., :n], values[..., n : 2 * n], values[..., 2 * n :]
    central = (f_plus - f_minus) / (2 * h)
    magnitude = jnp.abs(f_plus) + jnp.abs(f_minus) + jnp.abs(f_zero)
    rounding = ROUNDING_FACTOR * _UNIT_ROUNDOFF_F64 * magnitude / h
    # D(h_{k+1}) is kept with |D(h_k) - D(h_{k+1})| as its truncation bound: the true
    # truncation error at h_{k+1} is ~100x smaller than that difference.
    errors = jnp.abs(central[..., :-1] - central[..., 1:]) + rounding[..., 1:]
    best = jnp.argmin(errors, axis=-1)[..., None]
    second = jnp.abs(f_plus - 2 * f_zero + f_minus) / h
    kink = (second[..., -1] > KINK_RATIO * second[..., -2]) & (
        second[..., -1] > 100 * rounding[..., -1]
    )
    pick = functools.partial(jnp.take_along_axis, indices=best, axis=-1)
    step = jnp.broadcast_to(h[..., 1:], central[..., 1:].shape)
    return FDEstimate(
        pick(central[..., 1:])[..., 0], pick(errors)[..., 0], pick(step)[..., 0], kink
    )


def _check_steps(steps: tuple[float, ...]) -> None:
    if len(steps) < 3:
        raise ValueError(f"steps needs at least 3 rungs, got {len(steps)}")


def tree_dot(a: PyTree, b: PyTree) -> Array:
    """``Σ_leaves Σ a ⊙ b``, the inner product of two pytrees of the same structure."""
    products = jax.tree_util.tree_map(lambda u, v: jnp.sum(u * v), a, b)
    return sum(jax.tree_util.tree_leaves(products))
