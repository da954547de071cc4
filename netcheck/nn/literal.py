"""The slides' algorithm exactly as printed: one example at a time, ``G(ℓ)`` as matrices.

Slow on purpose (``G(ℓ)`` is an ``n_ℓ x n_ℓ`` matrix, multiplied as written); it exists for
teaching and as a third implementation to cross-check the fast path against. Even the fused
losses are taken literally here, ``δ^L = G(L) ∂L/∂ŷ`` with the unfused ``∂L/∂ŷ``, so this
form is meant for float64 and moderate logits. Sign: ``δ^L = G(L)(ŷ - y)`` for squared
error, the gradient (the slide's ``(y - ŷ)`` is its negative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from netcheck.nn.activations import softmax_jacobian
from netcheck.nn.spec import NetworkSpec, Params

Array = jax.Array


def g_matrix(net: NetworkSpec, layer: int, z: Array, a: Array) -> Array:
    """``G(ℓ)``: ``diag(g'(z^ℓ))``, or ``diag(s) - s sᵀ`` for a softmax output; ``(n_ℓ, n_ℓ)``."""
    activation = net.layer_activation(layer)
    if activation.elementwise:
        return jnp.diag(activation.derivative(z, a))
    return softmax_jacobian(a)


def example_grad(net: NetworkSpec, params: Params, x: Array, y: Array) -> Params:
    """``∇_W L(y, ŷ(x))`` for one example by the slides' steps (1)-(5).

    Args:
        net: the network.
        params: its parameters.
        x: one input, ``(n_0,)``.
        y: its target, ``(n_L,)``.

    Returns:
        The same pytree as ``params``.
    """
    # (1) feed x through the network: z^ℓ = W_ℓ a^{ℓ-1} (+ b_ℓ), a^ℓ = g(z^ℓ).
    a = [x]
    z = []
    for layer, weights in enumerate(params, start=1):
        z_layer = weights["W"] @ a[-1] + (weights["b"] if net.bias else 0)
        z.append(z_layer)
        a.append(net.layer_activation(layer).fn(z_layer))
    # (2) G(ℓ) for ℓ = 1..L, as matrices.
    g = [g_matrix(net, layer, z[layer - 1], a[layer]) for layer in range(1, net.depth + 1)]
    # (3) δ^L = G(L) ∂L/∂ŷ.
    delta = [g[-1] @ net.loss_fn.grad_prediction(a[-1], y)]
    # (4) δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1} for ℓ = L-1..1.
    for layer in range(net.depth - 1, 0, -1):
        delta.insert(0, g[layer - 1] @ params[layer]["W"].T @ delta[0])
    # (5) ∂L/∂w^ℓ_{j,k} = a^{ℓ-1}_k δ^ℓ_j, i.e. the outer product δ^ℓ (a^{ℓ-1})ᵀ.
    grads = []
    for layer in range(1, net.depth + 1):
        grad = {"W": jnp.outer(delta[layer - 1], a[layer - 1])}
        if net.bias:
            grad["b"] = delta[layer - 1]
        grads.append(grad)
    return grads


def literal_grad(net: NetworkSpec, params: Params, x: Array, y: Array) -> Params:
    """The mean over the batch of ``example_grad``; ``x (batch, n_0)``, ``y (batch, n_L)``."""
    per_example = jax.vmap(lambda x_i, y_i: example_grad(net, params, x_i, y_i))(x, y)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_example)


literal_grad_jit = jax.jit(literal_grad, static_argnums=0)
"""``literal_grad`` compiled once per (network, shapes, dtype)."""
