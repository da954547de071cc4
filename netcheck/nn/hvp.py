"""The Hessian-vector product by hand: Pearlmutter's R-operator through the δ recursion.

For a direction ``v`` in parameter space, shaped like ``params`` (``V_ℓ = v[ℓ-1]["W"]``,
``c_ℓ = v[ℓ-1]["b"]``), write ``R{f} = d/dt f(θ + t v) |_{t=0}`` for the directional
derivative of any quantity ``f`` that backprop computes. Applied to the gradient of the
mean loss ``E``, ``R{∇E} = H v``: the Hessian times ``v`` at the cost of one more forward
and one more backward pass, with ``H`` never formed.

``R`` is a derivative, so it obeys linearity, the product rule and the chain rule, and can
be carried through the lecture's recursion line by line. On rows (one example per row,
every array ``(batch, n_ℓ)``, ``⊙`` elementwise):

Step 1, the forward pass, with ``R{a^0} = R{x} = 0``::

    z^ℓ = a^{ℓ-1} W_ℓᵀ + b_ℓ     R{z^ℓ} = R{a^{ℓ-1}} W_ℓᵀ + a^{ℓ-1} V_ℓᵀ + c_ℓ
    a^ℓ = g(z^ℓ)                   R{a^ℓ} = g'(z^ℓ) ⊙ R{z^ℓ}         (softmax: G(L) R{z^L})

Step 3, the output, ``δ^L = G(L) ∂L/∂ŷ``::

    R{δ^L} = R{G(L)} ∂L/∂ŷ + G(L) (∂²L/∂ŷ²) R{a^L}
      elementwise g_L:  R{G(L)} u = g_L''(z^L) ⊙ R{z^L} ⊙ u
      softmax:          R{G(L)} u = R{s} ⊙ (u - sᵀu) - s (R{s}ᵀu)     (softmax_vjp_tangent)
      fused rules (sigmoid + BCE, softmax + CE), δ^L = ŷ - y from the logits:
                        R{δ^L} = (∂δ^L/∂z^L) R{z^L}                    (delta_tangent_from_logits)

Step 4, the recursion ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}``, on rows ``δ^ℓ = g'(z^ℓ) ⊙ e^ℓ`` with
``e^ℓ = δ^{ℓ+1} W_{ℓ+1}``; both ``G(ℓ)`` and ``W_{ℓ+1}`` move with ``θ``::

    R{δ^ℓ} = g''(z^ℓ) ⊙ R{z^ℓ} ⊙ e^ℓ + g'(z^ℓ) ⊙ (R{δ^{ℓ+1}} W_{ℓ+1} + δ^{ℓ+1} V_{ℓ+1})

Step 5, the gradients of the batch mean (the ``1/n`` rides on ``δ^L`` and ``R{δ^L}``)::

    ∂E/∂W_ℓ = (Δ^ℓ)ᵀ A^{ℓ-1}    R{∂E/∂W_ℓ} = R{Δ^ℓ}ᵀ A^{ℓ-1} + (Δ^ℓ)ᵀ R{A^{ℓ-1}}
    ∂E/∂b_ℓ = Σ_i Δ^ℓ_i          R{∂E/∂b_ℓ} = Σ_i R{Δ^ℓ}_i

Every first and second derivative is the hand-written one beside its activation
(``derivative``, ``second_derivative``) or loss (``grad_prediction_tangent``,
``delta_tangent_from_logits``). No ``jax.grad``, ``jvp``, ``vjp``, ``linearize`` or
``hessian`` appears in this module; ``netcheck.nn.autodiff.autodiff_hvp`` is the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from netcheck.nn import backprop
from netcheck.nn.activations import Activation, softmax_vjp, softmax_vjp_tangent
from netcheck.nn.spec import ForwardCache, NetworkSpec, Params, rows_times_transpose

Array = jax.Array


class ForwardTangents(NamedTuple):
    """``R{·}`` of what the forward pass computed, layer by layer.

    Attributes:
        pre_activations: ``[R{z^1}, ..., R{z^L}]``, each ``(batch, n_ℓ)``.
        activations: ``[R{a^0}, R{a^1}, ..., R{a^L}]``, each ``(batch, n_ℓ)``, except
            ``R{a^0} = R{x} = None``: the data do not move with ``θ``, and the products
            with an exact zero are skipped.
    """

    pre_activations: list[Array]
    activations: list[Array | None]


def activation_tangent(activation: Activation, z: Array, a: Array, z_tangent: Array) -> Array:
    """``R{a} = G R{z}``: ``g'(z) ⊙ R{z}``, or ``(diag(s) - s sᵀ) R{z}`` for softmax.

    Args:
        activation: the layer's activation record.
        z: pre-activation, ``(batch, n_ℓ)``.
        a: its output ``g(z)``, ``(batch, n_ℓ)``.
        z_tangent: ``R{z}``, ``(batch, n_ℓ)``.
    """
    if activation.elementwise:
        return activation.derivative(z, a) * z_tangent
    # G(L) is symmetric: its Jacobian-vector product is its vector-Jacobian product.
    return softmax_vjp(a, z_tangent)


def forward_tangents(
    net: NetworkSpec, params: Params, v: Params, cache: ForwardCache
) -> ForwardTangents:
    """Step 1 under ``R``: ``R{z^ℓ} = R{a^{ℓ-1}} W_ℓᵀ + a^{ℓ-1} V_ℓᵀ + c_ℓ``, ``R{a^ℓ} = G R{z^ℓ}``.

    Args:
        net: the network.
        params: its parameters.
        v: the direction, the pytree of ``params``.
        cache: the forward pass of the same batch.
    """
    z_tangents: list[Array] = []
    a_tangents: list[Array | None] = [None]
    for layer, (weights, direction) in enumerate(zip(params, v, strict=True), start=1):
        z_tangent = rows_times_transpose(cache.activations[layer - 1], direction["W"])
        if a_tangents[-1] is not None:
            z_tangent = z_tangent + rows_times_transpose(a_tangents[-1], weights["W"])
        if net.bias:
            z_tangent = z_tangent + direction["b"][None, :]
        z_tangents.append(z_tangent)
        a_tangents.append(
            activation_tangent(
                net.layer_activation(layer),
                cache.pre_activations[layer - 1],
                cache.activations[layer],
                z_tangent,
            )
        )
    return ForwardTangents(z_tangents, a_tangents)


def output_jacobian_tangent(
    net: NetworkSpec, cache: ForwardCache, tangents: ForwardTangents, y: Array
) -> Array:
    """``R{G(L)} ∂L/∂ŷ``: the output activation's second-order term, ``(batch, n_L)``.

    ``g_L''(z^L) ⊙ R{z^L} ⊙ ∂L/∂ŷ`` for an elementwise ``g_L``; for softmax
    ``R{s} ⊙ (u - sᵀu) - s (R{s}ᵀu)`` with ``u = ∂L/∂ŷ`` (``softmax_vjp_tangent``).
    Unfused losses only.
    """
    output = net.output
    z_out, y_hat = cache.pre_activations[-1], cache.activations[-1]
    grad_prediction = net.loss_fn.grad_prediction(y_hat, y)
    if not output.elementwise:
        return softmax_vjp_tangent(y_hat, tangents.activations[-1], grad_prediction)
    second = output.second_derivative(z_out, y_hat)
    return second * tangents.pre_activations[-1] * grad_prediction


def loss_curvature_tangent(
    net: NetworkSpec, cache: ForwardCache, tangents: ForwardTangents, y: Array
) -> Array:
    """``G(L) (∂²L/∂ŷ²) R{a^L}``: the loss's curvature carried back through ``G(L)``.

    Unfused losses only; ``(batch, n_L)``.
    """
    output = net.output
    z_out, y_hat = cache.pre_activations[-1], cache.activations[-1]
    curvature = net.loss_fn.grad_prediction_tangent(y_hat, y, tangents.activations[-1])
    if not output.elementwise:
        return softmax_vjp(y_hat, curvature)
    return output.derivative(z_out, y_hat) * curvature


def output_delta_tangent(
    net: NetworkSpec, cache: ForwardCache, tangents: ForwardTangents, y: Array
) -> Array:
    """Step 3 under ``R``: ``R{δ^L} = R{G(L)} ∂L/∂ŷ + G(L) (∂²L/∂ŷ²) R{a^L}``, ``(batch, n_L)``.

    Fused losses give ``(∂δ^L/∂z^L) R{z^L}`` straight from the logits.
    """
    loss = net.loss_fn
    if loss.delta_tangent_from_logits is not None:
        z_out, z_tangent = cache.pre_activations[-1], tangents.pre_activations[-1]
        return loss.delta_tangent_from_logits(z_out, y, z_tangent)
    top_tangent = loss_curvature_tangent(net, cache, tangents, y)
    if net.output.piecewise_linear:  # R{G(L)} = diag(g_L'' R{z^L}) = 0
        return top_tangent
    return top_tangent + output_jacobian_tangent(net, cache, tangents, y)


ForwardFn = Callable[[NetworkSpec, "Params", "Params", "ForwardCache"], ForwardTangents]
TopFn = Callable[[NetworkSpec, "ForwardCache", ForwardTangents, Array], Array]
StepFn = Callable[
    [NetworkSpec, "Params", "Params", "ForwardCache", ForwardTangents, int, Array, Array], Array
]


def delta_tangent_step(
    net: NetworkSpec,
    params: Params,
    v: Params,
    cache: ForwardCache,
    tangents: ForwardTangents,
    layer: int,
    delta_above: Array,
    tangent_above: Array,
) -> Array:
    """Step 4 under ``R`` for one hidden layer ``ℓ``, on rows::

        R{δ^ℓ} = g''(z^ℓ) ⊙ R{z^ℓ} ⊙ (δ^{ℓ+1} W_{ℓ+1})
               + g'(z^ℓ) ⊙ (R{δ^{ℓ+1}} W_{ℓ+1} + δ^{ℓ+1} V_{ℓ+1})

    Args:
        net, params, v, cache, tangents: as in ``manual_hvp``.
        layer: ``ℓ`` (1-based), a hidden layer.
        delta_above: ``Δ^{ℓ+1}``, ``(batch, n_{ℓ+1})``.
        tangent_above: ``R{Δ^{ℓ+1}}``, ``(batch, n_{ℓ+1})``.

    Returns:
        ``R{Δ^ℓ}``, ``(batch, n_ℓ)``.
    """
    z, a = cache.pre_activations[layer - 1], cache.activations[layer]
    weights_above = params[layer]["W"]
    delta_tangent = net.hidden.derivative(z, a) * (
        tangent_above @ weights_above + delta_above @ v[layer]["W"]
    )
    if net.hidden.piecewise_linear:  # g'' = 0: no first term (nor its δ^{ℓ+1} W_{ℓ+1} at ℓ = 1)
        return delta_tangent
    # δ^{ℓ+1} W_{ℓ+1} is the product the δ recursion forms: XLA computes it once.
    back = delta_above @ weights_above
    return net.hidden.second_derivative(z, a) * tangents.pre_activations[layer - 1] * back + (
        delta_tangent
    )


def backpropagate_tangents(
    net: NetworkSpec,
    params: Params,
    v: Params,
    cache: ForwardCache,
    tangents: ForwardTangents,
    deltas: list[Array],
    top_tangent: Array,
    step: StepFn = delta_tangent_step,
) -> list[Array]:
    """Step 4 under ``R`` from ``ℓ = L-1`` down to 1.

    Args:
        net, params, v, cache, tangents: as in ``manual_hvp``.
        deltas: ``[Δ^1, ..., Δ^L]`` of the same batch, each ``(batch, n_ℓ)``.
        top_tangent: ``R{Δ^L}``, ``(batch, n_L)``.
        step: one layer's rule (the planted bugs of ``netcheck.bench.mutants`` swap it).

    Returns:
        ``[R{Δ^1}, ..., R{Δ^L}]``, each ``(batch, n_ℓ)``.
    """
    delta_tangents = [top_tangent]
    for layer in range(net.depth - 1, 0, -1):
        delta_tangents.append(
            step(net, params, v, cache, tangents, layer, deltas[layer], delta_tangents[-1])
        )
    return delta_tangents[::-1]


GradientsFn = Callable[
    [NetworkSpec, "ForwardCache", ForwardTangents, list[Array], list[Array]], "Params"
]


def layer_gradient_tangents(
    net: NetworkSpec,
    cache: ForwardCache,
    tangents: ForwardTangents,
    deltas: list[Array],
    delta_tangents: list[Array],
) -> Params:
    """Step 5 under ``R``: ``R{Δ^ℓ}ᵀ A^{ℓ-1} + (Δ^ℓ)ᵀ R{A^{ℓ-1}}`` and ``Σ_i R{Δ^ℓ}_i``.

    The first terms are step 5 itself applied to the ``R{Δ^ℓ}``; the product rule adds the
    second (absent for ``ℓ = 1``, where ``R{A^0} = 0``). Returns the pytree of ``params``.
    """
    hvp = backprop.layer_gradients(net, cache, delta_tangents)
    for layer_hvp, delta, a_prev_tangent in zip(
        hvp, deltas, tangents.activations[:-1], strict=True
    ):
        if a_prev_tangent is not None:
            layer_hvp["W"] = layer_hvp["W"] + delta.T @ a_prev_tangent
    return hvp


class RPass(NamedTuple):
    """The steps of the R-pass, each replaceable (``netcheck.bench.mutants`` plants bugs here).

    Attributes:
        forward: step 1 under ``R``, ``forward_tangents``.
        top: step 3 under ``R``, ``output_delta_tangent``.
        step: step 4 under ``R`` for one hidden layer, ``delta_tangent_step``.
        gradients: step 5 under ``R``, ``layer_gradient_tangents``.
    """

    forward: ForwardFn = forward_tangents
    top: TopFn = output_delta_tangent
    step: StepFn = delta_tangent_step
    gradients: GradientsFn = layer_gradient_tangents


R_PASS = RPass()
"""The R-pass as derived in this module's docstring."""


def manual_hvp(
    net: NetworkSpec, params: Params, x: Array, y: Array, v: Params, steps: RPass = R_PASS
) -> Params:
    """``H v``, the Hessian of the mean loss ``1/n Σ_i L(y_i, ŷ(x_i))`` times ``v``, by hand.

    Args:
        net: the network.
        params: ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}]``.
        x: inputs, ``(batch, n_0)``.
        y: targets, ``(batch, n_L)``.
        v: the direction, the pytree (shapes, dtype) of ``params``.
        steps: the R-pass's steps; the default is the derivation of this module.

    Returns:
        ``H v``, the pytree of ``params``. No input checks: see ``Network.manual_hvp``.
    """
    cache = net.forward_cache(params, x)
    tangents = steps.forward(net, params, v, cache)
    # The mean's 1/n, applied once at the top as in backprop.manual_value_and_grad.
    batch = x.shape[0]
    deltas = backprop.backpropagate(
        net, params, cache, backprop.output_delta(net, cache, y) / batch
    )
    top_tangent = steps.top(net, cache, tangents, y) / batch
    delta_tangents = backpropagate_tangents(
        net, params, v, cache, tangents, deltas, top_tangent, steps.step
    )
    return steps.gradients(net, cache, tangents, deltas, delta_tangents)


manual_hvp_jit = jax.jit(manual_hvp, static_argnums=0)
"""``manual_hvp`` compiled once per (network, shapes, dtype)."""
