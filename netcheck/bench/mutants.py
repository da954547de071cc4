"""Planted bugs: plausible wrong backprops the verifier must catch and localise.

Each ``Mutant`` is a small variant of ``netcheck.nn.backprop``: it reuses the real
``output_delta`` (lecture step 3), ``backpropagate`` (step 4) and ``layer_gradients``
(step 5) and replaces one piece with a mistake people make when writing backprop from
the slides. Its ``grad`` and ``deltas`` have the signatures of
``netcheck.nn.backprop.manual_grad`` and ``netcheck.nn.backprop.manual_deltas``, so
they plug into ``verify(..., grad_fn=mutant.grad, deltas_fn=mutant.deltas)``.

A mutant only makes sense on some networks (``W`` not transposed needs a square layer; a
dropped ``G(ℓ)`` is no bug for an identity activation): ``Mutant.applies`` says where,
and ``Mutant.expected_layer`` names the layer ``ℓ`` where the bug sits, i.e. the
layer the verifier must report as the first bad one.

``HVP_MUTANTS`` is a second catalogue, for the Hessian-vector product by hand
(``netcheck.nn.hvp``): each ``HvpMutant`` swaps one step of the R-pass for a mistake
(a second derivative dropped, one term of a product rule forgotten) and has the signature of
``netcheck.nn.hvp.manual_hvp``, ``hvp(net, params, x, y, v)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp

from netcheck.nn import ForwardCache, Network, Params, backprop, hvp
from netcheck.nn.hvp import ForwardTangents

Array = jax.Array
TopFn = Callable[[Network, ForwardCache, Array], Array]
RecursionFn = Callable[[Network, Params, ForwardCache, Array], list[Array]]
GradientsFn = Callable[[Network, ForwardCache, list[Array]], Params]

SCALE_BUG = 1e-3
"""The ``scaled_layer`` mutant multiplies layer 1's gradient by ``1 + SCALE_BUG``."""


@dataclass(frozen=True)
class Mutant:
    """One planted bug: which lecture step it corrupts, where, and the wrong backprop itself.

    Attributes:
        name: short identifier.
        description: the mistake, in words.
        corrupts: the quantity it corrupts first, in lecture notation (``"δ^{L-1}"``).
        expected_layer: ``net -> ℓ``, the layer the verifier must name.
        applies: ``(net, batch) -> bool``: the mutant is a real (shape-valid, non-equivalent)
            bug on this network and batch size.
        top: replaces ``netcheck.nn.backprop.output_delta`` (step 3).
        recursion: replaces ``netcheck.nn.backprop.backpropagate`` (step 4).
        gradients: replaces ``netcheck.nn.backprop.layer_gradients`` (step 5).
        mean: whether the batch mean's ``1/n`` is applied (the correct code applies it).
    """

    name: str
    description: str
    corrupts: str
    expected_layer: Callable[[Network], int]
    applies: Callable[[Network, int], bool]
    top: TopFn = backprop.output_delta
    recursion: RecursionFn = backprop.backpropagate
    gradients: GradientsFn = backprop.layer_gradients
    mean: bool = True
    grad: Callable[[Network, Params, Array, Array], Params] = field(
        init=False, repr=False, compare=False
    )
    deltas: Callable[[Network, Params, Array, Array], list[Array]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Built once, so that jax.jit's cache (keyed on the function) is reused per mutant.
        object.__setattr__(self, "grad", self._grad)
        object.__setattr__(self, "deltas", self._deltas)

    def _deltas(self, net: Network, params: Params, x: Array, y: Array) -> list[Array]:
        """``[δ^1, ..., δ^L]`` per example, with the bug; each ``(batch, n_ℓ)``."""
        cache = net.forward_cache(params, x)
        return self.recursion(net, params, cache, self.top(net, cache, y))

    def _grad(self, net: Network, params: Params, x: Array, y: Array) -> Params:
        """The buggy gradient of the mean loss; the pytree of ``params``."""
        cache = net.forward_cache(params, x)
        top_delta = self.top(net, cache, y)
        if self.mean:
            top_delta = top_delta / x.shape[0]
        return self.gradients(net, cache, self.recursion(net, params, cache, top_delta))


# ----- the pieces of the bugs --------------------------------------------------------

StepFn = Callable[[Network, Params, ForwardCache, int, Array], Array]


def _correct_step(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    """Lecture step 4 for one layer: ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}`` (rows)."""
    g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
    return g_prime * (delta_above @ params[layer]["W"])


def _recursion_with(step: StepFn, bad_layer: Callable[[Network], int | None]) -> RecursionFn:
    """``backpropagate`` with ``step`` in place of the correct step at one layer.

    ``bad_layer(net) = None`` puts the wrong step at every hidden layer.
    """

    def recursion(
        net: Network, params: Params, cache: ForwardCache, top_delta: Array
    ) -> list[Array]:
        wrong_at = bad_layer(net)
        deltas = [top_delta]
        for layer in range(net.depth - 1, 0, -1):
            chosen = step if wrong_at in (None, layer) else _correct_step
            deltas.append(chosen(net, params, cache, layer, deltas[-1]))
        return deltas[::-1]

    return recursion


def _top_hidden(net: Network) -> int:
    return net.depth - 1


def _output_layer(net: Network) -> int:
    return net.depth


def _first_layer(net: Network) -> int:
    return 1


def _slide_sign(net: Network, cache: ForwardCache, y: Array) -> Array:
    # The slide's δ^L = G(L)(y - ŷ): the descent direction, the negative of ∂L/∂z^L.
    return -backprop.output_delta(net, cache, y)


def _no_g_prime(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    return delta_above @ params[layer]["W"]


def _g_for_g_prime(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    return cache.activations[layer] * (delta_above @ params[layer]["W"])


def _own_weights(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    # W_ℓ where W_{ℓ+1} belongs; shape-valid only when n_{ℓ+1} = n_ℓ = n_{ℓ-1}.
    g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
    return g_prime * (delta_above @ params[layer - 1]["W"])


def _untransposed(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    # W_{ℓ+1} δ^{ℓ+1} instead of W_{ℓ+1}ᵀ δ^{ℓ+1}; shape-valid when n_{ℓ+1} = n_ℓ.
    g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
    return g_prime * (delta_above @ params[layer]["W"].T)


def _z_from_layer_above(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    # G(ℓ) built from z^{ℓ+1}, a^{ℓ+1}: the wrong layer's pre-activation.
    g_prime = net.hidden.derivative(cache.pre_activations[layer], cache.activations[layer + 1])
    return g_prime * (delta_above @ params[layer]["W"])


def _relu_prime_sign(
    net: Network, params: Params, cache: ForwardCache, layer: int, delta_above: Array
) -> Array:
    # relu'(z) taken as sign(z): right for z > 0, -1 instead of 0 for z < 0.
    return jnp.sign(cache.pre_activations[layer - 1]) * (delta_above @ params[layer]["W"])


def _softmax_elementwise(net: Network, cache: ForwardCache, y: Array) -> Array:
    # G(L) = diag(s(1 - s)): softmax treated as if it acted on each output alone.
    s = cache.activations[-1]
    return s * (1 - s) * net.loss_fn.grad_prediction(s, y)


def _no_output_g_prime(net: Network, cache: ForwardCache, y: Array) -> Array:
    # δ^L = ∂L/∂ŷ, forgetting G(L) on an unfused output.
    return net.loss_fn.grad_prediction(cache.activations[-1], y)


def _next_activation_in_weight_grad(
    net: Network, cache: ForwardCache, deltas: list[Array]
) -> Params:
    # ∂/∂W_L = (Δ^L)ᵀ A^L instead of (Δ^L)ᵀ A^{L-1}; shape-valid when n_L = n_{L-1}.
    grads = backprop.layer_gradients(net, cache, deltas)
    grads[-1] = {**grads[-1], "W": deltas[-1].T @ cache.activations[-1]}
    return grads


def _bias_over_units(net: Network, cache: ForwardCache, deltas: list[Array]) -> Params:
    # ∂/∂b_L summed over the units instead of the batch; shape-valid when batch = n_L.
    grads = backprop.layer_gradients(net, cache, deltas)
    grads[-1] = {**grads[-1], "b": deltas[-1].sum(axis=1)}
    return grads


def _scaled_first_layer(net: Network, cache: ForwardCache, deltas: list[Array]) -> Params:
    # One layer's gradient off by a factor 1 + 1e-3: below what check_grads sees in float32.
    grads = backprop.layer_gradients(net, cache, deltas)
    grads[0] = {name: leaf * (1 + SCALE_BUG) for name, leaf in grads[0].items()}
    return grads


# ----- where each bug is a bug -------------------------------------------------------


def _deep(net: Network) -> bool:
    return net.depth >= 2


def _nonlinear_hidden(net: Network) -> bool:
    return net.depth >= 2 and net.activation != "identity"


def _square_top(net: Network) -> bool:
    return net.depth >= 2 and net.sizes[-1] == net.sizes[-2]


def _unfused(net: Network) -> bool:
    return not net.loss_fn.fused


MUTANTS: dict[str, Mutant] = {
    mutant.name: mutant
    for mutant in (
        Mutant(
            "slide_sign",
            "δ^L = G(L)(y - ŷ) as printed on the slide: the negative gradient",
            "δ^L",
            _output_layer,
            lambda net, batch: True,
            top=_slide_sign,
        ),
        Mutant(
            "g_prime_dropped",
            "δ^{L-1} = W_Lᵀ δ^L: G(L-1) left out",
            "δ^{L-1}",
            _top_hidden,
            lambda net, batch: _nonlinear_hidden(net),
            recursion=_recursion_with(_no_g_prime, _top_hidden),
        ),
        Mutant(
            "g_for_g_prime",
            "G(L-1) = diag(g(z)) instead of diag(g'(z))",
            "δ^{L-1}",
            _top_hidden,
            lambda net, batch: _deep(net),
            recursion=_recursion_with(_g_for_g_prime, _top_hidden),
        ),
        Mutant(
            "own_weights",
            "δ^{L-1} = G(L-1) W_{L-1}ᵀ δ^L: W_ℓ in place of W_{ℓ+1}",
            "δ^{L-1}",
            _top_hidden,
            lambda net, batch: _square_top(net) and net.sizes[-2] == net.sizes[-3],
            recursion=_recursion_with(_own_weights, _top_hidden),
        ),
        Mutant(
            "not_transposed",
            "δ^{L-1} = G(L-1) W_L δ^L: W not transposed (square layer)",
            "δ^{L-1}",
            _top_hidden,
            lambda net, batch: _square_top(net),
            recursion=_recursion_with(_untransposed, _top_hidden),
        ),
        Mutant(
            "next_activation",
            "∂L/∂W_L = δ^L (a^L)ᵀ: a^ℓ in place of a^{ℓ-1}",
            "W_L",
            _output_layer,
            lambda net, batch: net.sizes[-1] == net.sizes[-2],
            gradients=_next_activation_in_weight_grad,
        ),
        Mutant(
            "sum_not_mean",
            "the batch gradient summed instead of averaged (no 1/n)",
            "W_L, b_L",
            _output_layer,
            lambda net, batch: batch > 1,
            mean=False,
        ),
        Mutant(
            "bias_wrong_axis",
            "∂L/∂b_L summed over the units instead of over the batch",
            "b_L",
            _output_layer,
            lambda net, batch: net.bias and batch == net.sizes[-1] and batch > 1,
            gradients=_bias_over_units,
        ),
        Mutant(
            "wrong_layer_z",
            "δ^1 built with g'(z^2): the wrong layer's pre-activation",
            "δ^1",
            _first_layer,
            lambda net, batch: (
                net.depth >= 3 and net.sizes[1] == net.sizes[2] and net.activation != "identity"
            ),
            recursion=_recursion_with(_z_from_layer_above, _first_layer),
        ),
        Mutant(
            "scaled_layer",
            f"∂L/∂W_1, ∂L/∂b_1 multiplied by 1 + {SCALE_BUG:g}",
            "W_1, b_1",
            _first_layer,
            lambda net, batch: True,
            gradients=_scaled_first_layer,
        ),
        Mutant(
            "softmax_elementwise",
            "softmax output treated as elementwise: G(L) = diag(s(1-s))",
            "δ^L",
            _output_layer,
            lambda net, batch: net.output_activation == "softmax" and _unfused(net),
            top=_softmax_elementwise,
        ),
        Mutant(
            "relu_prime_sign",
            "relu'(z) = sign(z): -1 instead of 0 for z < 0, in every hidden layer",
            "δ^{L-1}",
            _top_hidden,
            lambda net, batch: net.activation == "relu" and _deep(net),
            recursion=_recursion_with(_relu_prime_sign, lambda net: None),
        ),
        Mutant(
            "output_g_prime_dropped",
            "δ^L = ∂L/∂ŷ: G(L) left out on an unfused, non-identity output",
            "δ^L",
            _output_layer,
            lambda net, batch: (
                _unfused(net) and net.output.elementwise and net.output_activation != "identity"
            ),
            top=_no_output_g_prime,
        ),
    )
}
"""Every planted bug by name."""


# ----- planted bugs in the Hessian-vector product -------------------------------------------


@dataclass(frozen=True)
class HvpMutant:
    """One planted bug in the R-pass of ``netcheck.nn.hvp.manual_hvp``.

    Attributes:
        name: short identifier.
        description: the mistake, in words.
        corrupts: the quantity it corrupts first, in the R-operator's notation.
        expected_layer: ``net -> ℓ``, the highest layer whose ``(H v)`` leaves the bug moves:
            the first bad one when layers are checked from ``L`` down.
        applies: ``(net, batch) -> bool``: the bug is a real (non-equivalent) one on this
            network (as ``Mutant.applies``; none of these depends on the batch size).
        steps: the R-pass with the bug in one of its steps.
        hvp: ``(net, params, x, y, v) -> H v`` with the bug; the pytree of ``params``.
    """

    name: str
    description: str
    corrupts: str
    expected_layer: Callable[[Network], int]
    applies: Callable[[Network, int], bool]
    steps: hvp.RPass
    hvp: Callable[[Network, Params, Array, Array, Params], Params] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Built once, so that jax.jit's cache (keyed on the function) is reused per mutant.
        object.__setattr__(self, "hvp", self._hvp)

    def _hvp(self, net: Network, params: Params, x: Array, y: Array, v: Params) -> Params:
        return hvp.manual_hvp(net, params, x, y, v, steps=self.steps)


def _step_without_second_derivative(
    net: Network,
    params: Params,
    v: Params,
    cache: ForwardCache,
    tangents: ForwardTangents,
    layer: int,
    delta_above: Array,
    tangent_above: Array,
) -> Array:
    # R{δ^ℓ} = g'(z^ℓ) ⊙ (R{δ^{ℓ+1}} W + δ^{ℓ+1} V): G(ℓ) treated as constant.
    g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
    return g_prime * (tangent_above @ params[layer]["W"] + delta_above @ v[layer]["W"])


def _step_with_first_for_second_derivative(
    net: Network,
    params: Params,
    v: Params,
    cache: ForwardCache,
    tangents: ForwardTangents,
    layer: int,
    delta_above: Array,
    tangent_above: Array,
) -> Array:
    # g'(z^ℓ) where g''(z^ℓ) belongs in the first term.
    z, a = cache.pre_activations[layer - 1], cache.activations[layer]
    weights, direction = params[layer]["W"], v[layer]["W"]
    g_prime = net.hidden.derivative(z, a)
    return g_prime * tangents.pre_activations[layer - 1] * (delta_above @ weights) + g_prime * (
        tangent_above @ weights + delta_above @ direction
    )


def _step_without_weight_tangent(
    net: Network,
    params: Params,
    v: Params,
    cache: ForwardCache,
    tangents: ForwardTangents,
    layer: int,
    delta_above: Array,
    tangent_above: Array,
) -> Array:
    # R{W_{ℓ+1}}ᵀ δ^{ℓ+1} (rows: δ^{ℓ+1} V_{ℓ+1}) forgotten: W_{ℓ+1} treated as constant.
    z, a = cache.pre_activations[layer - 1], cache.activations[layer]
    weights = params[layer]["W"]
    return net.hidden.second_derivative(z, a) * tangents.pre_activations[layer - 1] * (
        delta_above @ weights
    ) + net.hidden.derivative(z, a) * (tangent_above @ weights)


def _top_without_output_second_order(
    net: Network, cache: ForwardCache, tangents: ForwardTangents, y: Array
) -> Array:
    # R{δ^L} = G(L) (∂²L/∂ŷ²) R{a^L}: the R{G(L)} ∂L/∂ŷ term (g_L'', or softmax's) dropped.
    # A fused rule has no such separate term: it keeps the correct one.
    if net.loss_fn.fused:
        return hvp.output_delta_tangent(net, cache, tangents, y)
    return hvp.loss_curvature_tangent(net, cache, tangents, y)


def _top_without_loss_curvature(
    net: Network, cache: ForwardCache, tangents: ForwardTangents, y: Array
) -> Array:
    # R{δ^L} = R{G(L)} ∂L/∂ŷ only: the loss's curvature G(L) (∂²L/∂ŷ²) R{a^L} dropped; a
    # fused rule's R{δ^L} is that curvature alone, so it becomes 0.
    if net.loss_fn.fused:
        return jnp.zeros_like(cache.pre_activations[-1])
    return hvp.output_jacobian_tangent(net, cache, tangents, y)


def _forward_without_input_tangent(
    net: Network, params: Params, v: Params, cache: ForwardCache
) -> ForwardTangents:
    # R{z^ℓ} = a^{ℓ-1} V_ℓᵀ + c_ℓ: the change of a^{ℓ-1} (R{a^{ℓ-1}} W_ℓᵀ) forgotten, i.e. the
    # correct step 1 with every W_ℓ read as zero in that term (and only there).
    zero_weights = [{"W": jnp.zeros_like(weights["W"])} for weights in params]
    return hvp.forward_tangents(net, zero_weights, v, cache)


def _gradients_without_activation_tangent(
    net: Network,
    cache: ForwardCache,
    tangents: ForwardTangents,
    deltas: list[Array],
    delta_tangents: list[Array],
) -> Params:
    # R{∂E/∂W_ℓ} = R{Δ^ℓ}ᵀ A^{ℓ-1}: the product rule's (Δ^ℓ)ᵀ R{A^{ℓ-1}} forgotten.
    return backprop.layer_gradients(net, cache, delta_tangents)


def _hidden_curvature(net: Network) -> bool:
    """Whether the hidden g'' is not identically zero."""
    return not net.hidden.piecewise_linear


HVP_MUTANTS: dict[str, HvpMutant] = {
    mutant.name: mutant
    for mutant in (
        HvpMutant(
            "second_derivative_dropped",
            "R{δ^ℓ} without g''(z^ℓ) ⊙ R{z^ℓ} ⊙ (δ^{ℓ+1} W_{ℓ+1}): G(ℓ) taken as constant",
            "R{δ^{L-1}}",
            _top_hidden,
            lambda net, batch: net.depth >= 2 and _hidden_curvature(net),
            hvp.RPass(step=_step_without_second_derivative),
        ),
        HvpMutant(
            "first_for_second_derivative",
            "g'(z^ℓ) in place of g''(z^ℓ) in R{δ^ℓ}",
            "R{δ^{L-1}}",
            _top_hidden,
            lambda net, batch: net.depth >= 2,
            hvp.RPass(step=_step_with_first_for_second_derivative),
        ),
        HvpMutant(
            "weight_tangent_dropped",
            "R{δ^ℓ} without R{W_{ℓ+1}}ᵀ δ^{ℓ+1}: W_{ℓ+1} taken as constant",
            "R{δ^{L-1}}",
            _top_hidden,
            lambda net, batch: net.depth >= 2,
            hvp.RPass(step=_step_without_weight_tangent),
        ),
        HvpMutant(
            "output_second_order_dropped",
            "R{δ^L} without R{G(L)} ∂L/∂ŷ: the output's second-order term (g_L'' or "
            "softmax's) dropped on an unfused, non-identity output",
            "R{δ^L}",
            _output_layer,
            lambda net, batch: not net.loss_fn.fused and net.output_activation != "identity",
            hvp.RPass(top=_top_without_output_second_order),
        ),
        HvpMutant(
            "loss_curvature_dropped",
            "R{δ^L} without G(L) (∂²L/∂ŷ²) R{a^L} (fused rules: without (∂δ^L/∂z^L) R{z^L})",
            "R{δ^L}",
            _output_layer,
            lambda net, batch: True,
            hvp.RPass(top=_top_without_loss_curvature),
        ),
        HvpMutant(
            "input_tangent_dropped",
            "R{z^ℓ} without R{a^{ℓ-1}} W_ℓᵀ: the previous layer's change not carried forward",
            "R{z^2}",
            _output_layer,
            lambda net, batch: net.depth >= 2,
            hvp.RPass(forward=_forward_without_input_tangent),
        ),
        HvpMutant(
            "activation_tangent_dropped",
            "R{∂E/∂W_ℓ} without (Δ^ℓ)ᵀ R{A^{ℓ-1}}: half of the product rule in step 5",
            "R{∂E/∂W_L}",
            _output_layer,
            lambda net, batch: net.depth >= 2,
            hvp.RPass(gradients=_gradients_without_activation_tangent),
        ),
    )
}
"""Every planted bug in the Hessian-vector product, by name."""
