"""Tests of netcheck.network: the spec, its validation, init, and the forward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import netcheck as nc


def test_forward_with_bias_matches_numpy(x64):
    """z = a W^T + b on rows, checked against numpy; the bias add must not rely on rank promotion."""
    net = nc.Network((2, 3, 1), activation="tanh", output_activation="identity")
    params = net.init(jax.random.key(0), dtype=jnp.float64, scheme="nielsen")
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    w1, b1 = (np.asarray(params[0][k]) for k in ("W", "b"))
    w2, b2 = (np.asarray(params[1][k]) for k in ("W", "b"))
    expected = np.tanh(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(np.asarray(net.forward(params, x)), expected, rtol=1e-13)
