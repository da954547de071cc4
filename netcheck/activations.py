"""Activations ``g`` with their hand-written derivatives ``g'``.

Each activation is one :class:`Activation` record: the function and, right next to it,
its derivative. The derivative receives both the pre-activation ``z`` and the forward
output ``a = g(z)`` so that it can reuse ``a`` where that is cheaper and stable
(``σ'(z) = a(1 - a)``, ``tanh'(z) = 1 - a²``); when it needs only ``a``, the compiled
backward pass never keeps ``z`` alive.

Elementwise activations give the lecture's diagonal ``G(ℓ) = diag(g'(z^ℓ))``. Softmax is
the one activation whose ``G(L)`` is not diagonal: see :func:`softmax_vjp`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01
"""Slope of ``leaky_relu`` for ``z < 0``."""


@dataclass(frozen=True)
class Activation:
    """An activation ``g`` and its derivative, side by side.

    Attributes:
        name: the registry name.
        fn: ``g``, elementwise on ``z`` of any shape (softmax: along the last axis).
        derivative: ``g'(z)`` given ``(z, a)`` with ``a = g(z)``; same shape as ``z``.
            ``None`` for softmax, whose Jacobian is not diagonal.
        elementwise: whether ``G = diag(g'(z))``; False only for softmax.
        output_only: may only be used as the output activation ``g_L``.
    """

    name: str
    fn: Callable[[Array], Array]
    derivative: Callable[[Array, Array], Array] | None
    elementwise: bool = True
    output_only: bool = False


def _identity(z: Array) -> Array:
    return z


def _identity_prime(z: Array, a: Array) -> Array:
    return jnp.ones_like(z)


def _sigmoid(z: Array) -> Array:
    return jax.nn.sigmoid(z)


def _sigmoid_prime(z: Array, a: Array) -> Array:
    # σ'(z) = σ(z)(1 - σ(z)), from the forward output.
    return a * (1 - a)


def _tanh(z: Array) -> Array:
    return jnp.tanh(z)


def _tanh_prime(z: Array, a: Array) -> Array:
    # tanh'(z) = 1 - tanh(z)² from the forward output, factored as (1 - a)(1 + a): where tanh
    # saturates (|a| -> 1), 1 - a·a cancels and loses digits, while 1 ∓ a stays exact.
    return (1 - a) * (1 + a)


def _relu(z: Array) -> Array:
    # `where`, not `maximum`: autodiff of maximum splits a tie at 0 into slope 1/2.
    return jnp.where(z > 0, z, 0).astype(z.dtype)


def _relu_prime(z: Array, a: Array) -> Array:
    # a > 0 exactly when z > 0; the kink at 0 takes the subgradient 0, as jax.grad does.
    return (a > 0).astype(a.dtype)


def _leaky_relu(z: Array) -> Array:
    return jnp.where(z >= 0, z, LEAKY_RELU_SLOPE * z)


def _leaky_relu_prime(z: Array, a: Array) -> Array:
    # The slope is positive, so a > 0 exactly when z > 0; at 0 we take 1 (jax.nn's choice).
    return jnp.where(a >= 0, 1, LEAKY_RELU_SLOPE).astype(a.dtype)


def _elu(z: Array) -> Array:
    # The inner `where` keeps expm1 from overflowing on the unused branch for large z.
    return jnp.where(z > 0, z, jnp.expm1(jnp.where(z > 0, 0, z)))


def _elu_prime(z: Array, a: Array) -> Array:
    # For z <= 0, a = e^z - 1 so g'(z) = e^z = a + 1; a > 0 exactly when z > 0.
    return jnp.where(a > 0, 1, a + 1).astype(a.dtype)


def _softplus(z: Array) -> Array:
    # log(1 + e^z) = logaddexp(z, 0), without overflow.
    return jnp.logaddexp(z, 0)


def _softplus_prime(z: Array, a: Array) -> Array:
    return jax.nn.sigmoid(z)


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu(z: Array) -> Array:
    # The exact GELU, z Φ(z), with Φ the standard normal CDF.
    return z * _normal_cdf(z)


def _gelu_prime(z: Array, a: Array) -> Array:
    # d/dz [z Φ(z)] = Φ(z) + z φ(z).
    return _normal_cdf(z) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def _normal_cdf(z: Array) -> Array:
    return 0.5 * (1 + jax.lax.erf(z * _INV_SQRT2))


def _silu(z: Array) -> Array:
    return z * jax.nn.sigmoid(z)


def _silu_prime(z: Array, a: Array) -> Array:
    # d/dz [z σ(z)] = σ(z) (1 + z (1 - σ(z))).
    s = jax.nn.sigmoid(z)
    return s * (1 + z * (1 - s))


def _softmax(z: Array) -> Array:
    return jax.nn.softmax(z, axis=-1)


def softmax_vjp(s: Array, v: Array) -> Array:
    """Apply softmax's Jacobian ``G(L) = diag(s) - s sᵀ`` to ``v`` without forming it.

    ``G(L)`` is symmetric, so ``G(L) v = s ⊙ v - s (sᵀ v) = s ⊙ (v - sᵀ v)``.

    Args:
        s: softmax output, shape ``(batch, n_L)``.
        v: the vector to multiply, e.g. ``∂L/∂ŷ``, shape ``(batch, n_L)``.

    Returns:
        ``G(L) v`` per example, shape ``(batch, n_L)``.
    """
    return s * (v - jnp.sum(s * v, axis=-1, keepdims=True))


def softmax_jacobian(s: Array) -> Array:
    """The literal softmax Jacobian ``diag(s) - s sᵀ`` of one example.

    Args:
        s: softmax output of one example, shape ``(n_L,)``.

    Returns:
        The ``(n_L, n_L)`` matrix ``G(L)``.
    """
    return jnp.diag(s) - jnp.outer(s, s)


ACTIVATIONS: dict[str, Activation] = {
    record.name: record
    for record in (
        Activation("identity", _identity, _identity_prime),
        Activation("sigmoid", _sigmoid, _sigmoid_prime),
        Activation("tanh", _tanh, _tanh_prime),
        Activation("relu", _relu, _relu_prime),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_prime),
        Activation("elu", _elu, _elu_prime),
        Activation("softplus", _softplus, _softplus_prime),
        Activation("gelu", _gelu, _gelu_prime),
        Activation("silu", _silu, _silu_prime),
        Activation("softmax", _softmax, None, elementwise=False, output_only=True),
    )
}
"""Every activation by name."""

HIDDEN_ACTIVATIONS: tuple[str, ...] = tuple(n for n, a in ACTIVATIONS.items() if not a.output_only)
"""Names allowed as the hidden activation ``g``."""


def get_activation(name: str) -> Activation:
    """Look an activation up by name, with an error that lists the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), got {type(name).__name__}")
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None
