"""The reference: ``jax.grad`` of the very same mean loss the manual path differentiates.

This module is the only place (besides the verifier) where JAX's automatic
differentiation runs on a network; the manual paths in ``netcheck.nn.backprop`` and
``netcheck.nn.hvp`` never use it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from netcheck.nn.spec import NetworkSpec, Params

Array = jax.Array


def autodiff_grad(net: NetworkSpec, params: Params, x: Array, y: Array) -> Params:
    """``jax.grad`` of ``net.mean_loss`` with respect to ``params``; same pytree as ``params``."""
    return jax.grad(net.mean_loss_unchecked)(params, x, y)


def autodiff_value_and_grad(
    net: NetworkSpec, params: Params, x: Array, y: Array
) -> tuple[Array, Params]:
    """``jax.value_and_grad`` of ``net.mean_loss``: ``(loss, grads)``."""
    return jax.value_and_grad(net.mean_loss_unchecked)(params, x, y)


def autodiff_deltas(net: NetworkSpec, params: Params, x: Array, y: Array) -> list[Array]:
    """``∂L(y_i, ŷ_i)/∂z^ℓ_i`` for every layer by autodiff, each ``(batch, n_ℓ)``.

    Adds a zero perturbation ``e^ℓ`` to each ``z^ℓ`` and differentiates the *summed*
    per-example loss with respect to the perturbations: examples do not interact, so row
    ``i`` of ``∂(Σ_i L_i)/∂e^ℓ`` is example ``i``'s own ``δ^ℓ`` (the lecture's δ at ``x_i``).
    """
    zeros = [jnp.zeros((x.shape[0], width), x.dtype) for width in net.sizes[1:]]

    def summed_loss(perturbations: list[Array]) -> Array:
        return jnp.sum(net.example_losses(net.forward_cache(params, x, perturbations), y))

    return jax.grad(summed_loss)(zeros)


def autodiff_hvp(net: NetworkSpec, params: Params, x: Array, y: Array, v: Params) -> Params:
    """``H v`` by forward-over-reverse: ``jax.jvp(jax.grad(mean loss), (params,), (v,))``.

    Args:
        net: the network.
        params: its parameters.
        x: inputs, ``(batch, n_0)``.
        y: targets, ``(batch, n_L)``.
        v: the direction, the pytree of ``params``.

    Returns:
        The Hessian of ``net.mean_loss`` at ``params`` times ``v``; the pytree of ``params``.
    """

    def gradient(p: Params) -> Params:
        return jax.grad(net.mean_loss_unchecked)(p, x, y)

    return jax.jvp(gradient, (params,), (v,))[1]


autodiff_grad_jit = jax.jit(autodiff_grad, static_argnums=0)
"""``autodiff_grad`` compiled once per (network, shapes, dtype)."""

autodiff_deltas_jit = jax.jit(autodiff_deltas, static_argnums=0)
"""``autodiff_deltas`` compiled once per (network, shapes, dtype)."""

autodiff_hvp_jit = jax.jit(autodiff_hvp, static_argnums=0)
"""``autodiff_hvp`` compiled once per (network, shapes, dtype)."""
