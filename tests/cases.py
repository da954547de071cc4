"""Shared test tables and comparisons (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import netcheck as nc

ROUNDOFF_ULPS = 1000
"""The sweeps' bound, in eps of the working dtype, relative to each leaf's largest |entry|."""

OUTPUT_LOSS_PAIRS = {
    "sigmoid+bce": ("sigmoid", "binary_cross_entropy"),
    "softmax+ce": ("softmax", "softmax_cross_entropy"),
    "identity+se": ("identity", "squared_error"),
    "sigmoid+se": ("sigmoid", "squared_error"),
    "tanh+se": ("tanh", "squared_error"),
    "softmax+se": ("softmax", "squared_error"),
}
"""Every valid (output activation, loss) pair, by a readable test id."""


def tiny_problem() -> tuple[np.ndarray, ...]:
    """A 2-2-1 network and a batch of 3, float64 numpy, for the by-hand tests.

    Returns:
        ``(W_1 (2, 2), b_1 (2,), W_2 (1, 2), b_2 (1,), x (3, 2), y (3, 1))``.
    """
    w1 = np.array([[0.15, -0.25], [0.4, 0.1]])
    b1 = np.array([0.05, -0.1])
    w2 = np.array([[0.6, -0.35]])
    b2 = np.array([0.2])
    x = np.array([[1.0, 0.5], [-0.3, 2.0], [0.8, -1.2]])
    y = np.array([[1.0], [0.0], [0.5]])
    return w1, b1, w2, b2, x, y


def sweep_sizes(depth: int, equal_widths: bool) -> tuple[int, ...]:
    """Layer widths of a sweep network with ``depth`` hidden layers.

    Two patterns, because they catch different mix-ups:

    - alternating, ``(3, 4, 5, 4, 5, 3)``: no weight matrix is square, so a ``W`` used
      untransposed, or a width read from the wrong layer, fails loudly on shapes;
    - equal, ``(4, 4, ..., 4)``: every ``W_ℓ`` has the shape of ``W_{ℓ+1}`` (and of its own
      transpose), so ``W_ℓ`` in place of ``W_{ℓ+1}``, or ``W`` in place of ``Wᵀ``, runs
      and must fail on the values (random weights are neither equal nor symmetric).
    """
    if equal_widths:
        return (4,) * (depth + 2)
    return (3, *(4, 5, 4, 5)[:depth], 3)


def sweep_cases(depths: range) -> list:
    """``pytest.param(activation, output, loss, bias, depth, equal_widths)`` for a sweep.

    Every hidden activation x (output, loss) pair x bias x depth. The width pattern
    alternates with ``bias`` and the depth's parity, so each (activation, pair) meets both
    patterns with and without bias, and each (activation, pair, depth ≥ 1) has one
    equal-width network, where a ``W_ℓ``/``W_{ℓ+1}`` swap is shape-valid.
    """
    cases = []
    for activation, (pair_id, pair), bias, depth in itertools.product(
        nc.HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS.items(), (True, False), depths
    ):
        equal_widths = (depth + bias) % 2 == 1
        case_id = (
            f"{activation}-{pair_id}-{'bias' if bias else 'nobias'}-depth{depth}"
            f"-{'equal' if equal_widths else 'alternating'}"
        )
        cases.append(pytest.param(activation, *pair, bias, depth, equal_widths, id=case_id))
    return cases


def leaf_errors(got, truth) -> list[tuple[str, float]]:
    """``(path, max|got - truth| / max|truth|)`` per leaf, in float64 on the host.

    A leaf whose truth is all zeros reports its absolute error.
    """
    errors = []
    for (path, g), t in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(truth), strict=True
    ):
        g, t = np.asarray(g, np.float64), np.asarray(t, np.float64)
        assert g.shape == t.shape, (jax.tree_util.keystr(path), g.shape, t.shape)
        scale = np.max(np.abs(t))
        error = np.max(np.abs(g - t))
        errors.append((jax.tree_util.keystr(path), error / scale if scale else error))
    return errors


def assert_close(got, truth, dtype, ulps: float = ROUNDOFF_ULPS) -> None:
    """Every leaf within ``ulps · eps(dtype)`` of the truth, relative to its largest |entry|."""
    bound = ulps * float(jnp.finfo(dtype).eps)
    bad = [(path, error) for path, error in leaf_errors(got, truth) if not error <= bound]
    assert not bad, f"leaves beyond {ulps} eps({jnp.dtype(dtype).name}) = {bound:.2e}: {bad}"
