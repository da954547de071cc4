"""Backpropagation by hand: the lecture's steps (1)-(5), batched and jit-compiled.

For a batch of ``n`` examples stacked as rows (``Z^ℓ, A^ℓ, Δ^ℓ`` are ``(n, n_ℓ)``):

1. feed ``X`` forward, keeping ``A^ℓ`` (and ``Z^ℓ`` only where ``g'`` needs it);
2. ``G(ℓ) = diag(g'(z^ℓ))`` is applied elementwise, never materialised;
3. ``δ^L = G(L) ∂L/∂ŷ``; for sigmoid + BCE and softmax + CE the fused rule
   ``δ^L = ŷ - y`` from the logits; for a softmax output ``G(L) = diag(s) - s sᵀ`` is
   applied as a vector product;
4. ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}``, on rows ``Δ^ℓ = g'(Z^ℓ) ⊙ (Δ^{ℓ+1} W_{ℓ+1})``;
5. ``∂L/∂w^ℓ_{j,k} = a^{ℓ-1}_k δ^ℓ_j``, on the batch mean
   ``∂L/∂W_ℓ = (Δ^ℓ)ᵀ A^{ℓ-1} / n`` and ``∂L/∂b_ℓ = Σ_i Δ^ℓ_i / n``.

Sign: netcheck's ``δ^ℓ`` is ``∂L/∂z^ℓ``. The slide prints ``δ^L = G(L)(y - ŷ)``, but for
``L = ½(y - ŷ)²``, ``∂L/∂ŷ = -(y - ŷ) = ŷ - y``: the slide's vector is the *negative*
gradient, the descent direction. Here ``δ^L = G(L)(ŷ - y)``.

No ``jax.grad``, ``vjp``, ``jvp`` or ``linearize`` appears in this module: every derivative
is the hand-written one next to its activation or loss.
"""

from __future__ import annotations

import jax

from netcheck.nn.activations import softmax_vjp
from netcheck.nn.spec import ForwardCache, NetworkSpec, Params

Array = jax.Array


def output_delta(net: NetworkSpec, cache: ForwardCache, y: Array) -> Array:
    """Lecture step 3: ``δ^L = G(L) ∂L/∂ŷ`` per example, shape ``(batch, n_L)``.

    Fused losses give ``ŷ - y`` straight from the logits; a softmax output applies its
    full Jacobian ``diag(s) - s sᵀ`` as a vector product.
    """
    loss, output = net.loss_fn, net.output
    z_out, y_hat = cache.pre_activations[-1], cache.activations[-1]
    if loss.delta_from_logits is not None:
        return loss.delta_from_logits(z_out, y)
    grad_prediction = loss.grad_prediction(y_hat, y)
    if output.elementwise:
        return output.derivative(z_out, y_hat) * grad_prediction
    return softmax_vjp(y_hat, grad_prediction)


def backpropagate(
    net: NetworkSpec, params: Params, cache: ForwardCache, top_delta: Array
) -> list[Array]:
    """Lecture step 4: ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}`` from ``ℓ = L-1`` down to 1.

    Args:
        net: the network.
        params: its parameters.
        cache: the forward pass of the same batch.
        top_delta: ``Δ^L``, ``(batch, n_L)``.

    Returns:
        ``[Δ^1, ..., Δ^L]``, each ``(batch, n_ℓ)``.
    """
    deltas = [top_delta]
    for layer in range(net.depth - 1, 0, -1):
        g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
        # Rows: (Δ^{ℓ+1} W_{ℓ+1})_i = (W_{ℓ+1}ᵀ δ^{ℓ+1}_i)ᵀ, with W read in place.
        deltas.append(g_prime * (deltas[-1] @ params[layer]["W"]))
    return deltas[::-1]


def layer_gradients(net: NetworkSpec, cache: ForwardCache, deltas: list[Array]) -> Params:
    """Lecture step 5: ``∂/∂W_ℓ = (Δ^ℓ)ᵀ A^{ℓ-1}``, ``∂/∂b_ℓ = Σ_i Δ^ℓ_i``.

    The deltas passed in already carry the mean's ``1/n``.
    """
    grads = []
    for delta, a_prev in zip(deltas, cache.activations[:-1], strict=True):
        layer = {"W": delta.T @ a_prev}
        if net.bias:
            layer["b"] = delta.sum(axis=0)
        grads.append(layer)
    return grads


def manual_value_and_grad(
    net: NetworkSpec, params: Params, x: Array, y: Array
) -> tuple[Array, Params]:
    """The mean loss ``1/n Σ_i L(y_i, ŷ(x_i))`` and its gradient by the δ recursion.

    Args:
        net: the network.
        params: ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}]``.
        x: inputs, ``(batch, n_0)``.
        y: targets, ``(batch, n_L)``.

    Returns:
        ``(loss, grads)``: a scalar, and the same pytree as ``params``. No input checks:
        see ``Network.manual_grad``. Under ``jit`` an unused loss costs nothing.
    """
    cache = net.forward_cache(params, x)
    loss = net.example_losses(cache, y).mean()
    # The mean's 1/n is applied once, to δ^L; linearity carries it down every layer.
    top_delta = output_delta(net, cache, y) / x.shape[0]
    return loss, layer_gradients(net, cache, backpropagate(net, params, cache, top_delta))


def manual_grad(net: NetworkSpec, params: Params, x: Array, y: Array) -> Params:
    """The gradient of ``manual_value_and_grad`` alone."""
    return manual_value_and_grad(net, params, x, y)[1]


def manual_deltas(net: NetworkSpec, params: Params, x: Array, y: Array) -> list[Array]:
    """``[δ^1, ..., δ^L]`` per example (``δ^ℓ_i = ∂L(y_i, ŷ_i)/∂z^ℓ_i``), each ``(batch, n_ℓ)``."""
    cache = net.forward_cache(params, x)
    return backpropagate(net, params, cache, output_delta(net, cache, y))


manual_grad_jit = jax.jit(manual_grad, static_argnums=0)
"""``manual_grad`` compiled once per (network, shapes, dtype)."""

manual_deltas_jit = jax.jit(manual_deltas, static_argnums=0)
"""``manual_deltas`` compiled once per (network, shapes, dtype)."""
