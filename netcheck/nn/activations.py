"""Activations ``g`` with their hand-written derivatives ``g'`` and ``g''``.

Each activation is one ``Activation`` record: the function and, right next to it,
its first and second derivatives. Both receive the pre-activation ``z`` and the forward
output ``a = g(z)`` so that they can reuse ``a`` where that is cheaper and stable
(``σ'(z) = a(1 - a)``, ``tanh'(z) = 1 - a²``); when they need only ``a``, the compiled
backward pass never keeps ``z`` alive.

Elementwise activations give the lecture's diagonal ``G(ℓ) = diag(g'(z^ℓ))``; the
Hessian-vector product (``netcheck.nn.hvp``) also needs how ``G(ℓ)`` moves with ``z^ℓ``,
``diag(g''(z^ℓ))``. Softmax is the one activation whose ``G(L)`` is not diagonal: see
``softmax_vjp``, and ``softmax_vjp_tangent`` for its second-order term.
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
        second_derivative: ``g''(z)`` given ``(z, a)``; same shape as ``z``. At a kink
            (relu, leaky_relu, elu at 0) it is the second derivative of the branch the
            first derivative takes there, as ``jax.grad(jax.grad(g))`` gives. ``None`` for
            softmax (see ``softmax_vjp_tangent``).
        elementwise: whether ``G = diag(g'(z))``; False only for softmax.
        piecewise_linear: ``g'' = 0`` wherever it is defined (identity, relu, leaky_relu):
            the R-pass of ``netcheck.nn.hvp`` then leaves out its ``g''`` terms, as forward-mode
            autodiff does, instead of multiplying by zeros (which XLA must keep, for NaN).
        output_only: may only be used as the output activation ``g_L``.
    """

    name: str
    fn: Callable[[Array], Array]
    derivative: Callable[[Array, Array], Array] | None
    second_derivative: Callable[[Array, Array], Array] | None
    elementwise: bool = True
    piecewise_linear: bool = False
    output_only: bool = False


def _identity(z: Array) -> Array:
    return z


def _identity_prime(z: Array, a: Array) -> Array:
    return jnp.ones_like(z)


def _piecewise_linear_second(z: Array, a: Array) -> Array:
    # Piecewise linear (identity, relu, leaky_relu): g'' = 0 on every piece.
    return jnp.zeros_like(z)


def _sigmoid(z: Array) -> Array:
    return jax.nn.sigmoid(z)


def _sigmoid_prime(z: Array, a: Array) -> Array:
    # σ'(z) = σ(z)(1 - σ(z)), from the forward output.
    return a * (1 - a)


def _sigmoid_second(z: Array, a: Array) -> Array:
    # σ'' = (σ(1 - σ))' = σ'(1 - 2σ) = a(1 - a)(1 - 2a).
    return a * (1 - a) * (1 - 2 * a)


def _tanh(z: Array) -> Array:
    return jnp.tanh(z)


def _tanh_prime(z: Array, a: Array) -> Array:
    # tanh'(z) = 1 - tanh(z)² from the forward output, factored as (1 - a)(1 + a): where tanh
    # saturates (|a| -> 1), 1 - a·a cancels and loses digits, while 1 ∓ a stays exact.
    return (1 - a) * (1 + a)


def _tanh_second(z: Array, a: Array) -> Array:
    # tanh'' = (1 - tanh²)' = -2 tanh tanh' = -2a(1 - a)(1 + a), factored as tanh' is.
    return -2 * a * (1 - a) * (1 + a)


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


def _elu_second(z: Array, a: Array) -> Array:
    # For z <= 0, g'' = e^z = a + 1; 0 on the linear branch. At z = 0 the first derivative
    # takes the exponential branch's value (1 either way), so g'' takes that branch too.
    return jnp.where(a > 0, 0, a + 1).astype(a.dtype)


def _softplus(z: Array) -> Array:
    # log(1 + e^z) = logaddexp(z, 0), without overflow.
    return jnp.logaddexp(z, 0)


def _softplus_prime(z: Array, a: Array) -> Array:
    return jax.nn.sigmoid(z)


def _softplus_second(z: Array, a: Array) -> Array:
    # softplus' = σ(z), so softplus'' = σ'(z).
    return _sigmoid_prime(z, jax.nn.sigmoid(z))


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu(z: Array) -> Array:
    # The exact GELU, z Φ(z), with Φ the standard normal CDF.
    return z * _normal_cdf(z)


def _gelu_prime(z: Array, a: Array) -> Array:
    # d/dz [z Φ(z)] = Φ(z) + z φ(z).
    return _normal_cdf(z) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def _gelu_second(z: Array, a: Array) -> Array:
    # d/dz [Φ(z) + z φ(z)] = φ + φ + z φ' = φ(z)(2 - z²), since φ'(z) = -z φ(z).
    return _INV_SQRT_2PI * jnp.exp(-0.5 * z * z) * (2 - z * z)


def _normal_cdf(z: Array) -> Array:
    return 0.5 * (1 + jax.lax.erf(z * _INV_SQRT2))


def _silu(z: Array) -> Array:
    return z * jax.nn.sigmoid(z)


def _silu_prime(z: Array, a: Array) -> Array:
    # d/dz [z σ(z)] = σ(z) (1 + z (1 - σ(z))).
    s = jax.nn.sigmoid(z)
    return s * (1 + z * (1 - s))


def _silu_second(z: Array, a: Array) -> Array:
    # d/dz [σ(1 + z(1 - σ))] = σ'(1 + z(1 - σ)) + σ(1 - σ - zσ') with σ' = σ(1 - σ)
    # = σ(1 - σ)(2 + z(1 - 2σ)).
    s = jax.nn.sigmoid(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


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


def softmax_vjp_tangent(s: Array, s_tangent: Array, v: Array) -> Array:
    """How ``G(L) v`` moves when ``s`` moves along ``s_tangent`` with ``v`` held fixed.

    Softmax's second-order term, as a product: ``G(L) = diag(s) - s sᵀ`` is linear in
    ``s``, so its directional derivative is ``diag(ṡ) - ṡ sᵀ - s ṡᵀ``, and applied to ``v``

        ``Ġ(L) v = ṡ ⊙ (v - sᵀ v) - s (ṡᵀ v)``.

    The ``(n_L, n_L, n_L)`` second-derivative tensor of softmax is never formed.

    Args:
        s: softmax output, ``(batch, n_L)``.
        s_tangent: ``ṡ``, the change of ``s`` (e.g. ``G(L) ż^L``), ``(batch, n_L)``.
        v: the vector ``G(L)`` is applied to, ``(batch, n_L)``.

    Returns:
        ``Ġ(L) v`` per example, ``(batch, n_L)``.
    """
    s_dot_v = jnp.sum(s * v, axis=-1, keepdims=True)
    tangent_dot_v = jnp.sum(s_tangent * v, axis=-1, keepdims=True)
    return s_tangent * (v - s_dot_v) - s * tangent_dot_v


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
        Activation(
            "identity", _identity, _identity_prime, _piecewise_linear_second, piecewise_linear=True
        ),
        Activation("sigmoid", _sigmoid, _sigmoid_prime, _sigmoid_second),
        Activation("tanh", _tanh, _tanh_prime, _tanh_second),
        Activation("relu", _relu, _relu_prime, _piecewise_linear_second, piecewise_linear=True),
        Activation(
            "leaky_relu",
            _leaky_relu,
            _leaky_relu_prime,
            _piecewise_linear_second,
            piecewise_linear=True,
        ),
        Activation("elu", _elu, _elu_prime, _elu_second),
        Activation("softplus", _softplus, _softplus_prime, _softplus_second),
        Activation("gelu", _gelu, _gelu_prime, _gelu_second),
        Activation("silu", _silu, _silu_prime, _silu_second),
        Activation("softmax", _softmax, None, None, elementwise=False, output_only=True),
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
