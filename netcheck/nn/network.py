"""``Network``: the lecture's network with its derivatives, by hand and by autodiff.

``Network`` is ``netcheck.nn.spec.NetworkSpec`` (sizes, activations, loss,
parameters, forward pass, input checks) plus one method per derivative: the δ recursion by
hand (``netcheck.nn.backprop``), ``jax.grad`` of the very same mean loss
(``netcheck.nn.autodiff``), and Hessian-vector products by hand (``netcheck.nn.hvp``). Each
method checks its input at the public boundary, then calls a jit-compiled function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax

from netcheck.nn import autodiff, backprop, hvp
from netcheck.nn.spec import NetworkSpec, Params

Array = jax.Array


@dataclass(frozen=True)
class Network(NetworkSpec):
    """A fully connected network ``ŷ = g_L(W_L g(⋯ g(W_1 x)))``, as on the slides.

    Attributes:
        sizes: layer widths ``(n_0, n_1, ..., n_L)``; ``n_0`` is the input's feature count.
        activation: hidden activation ``g`` (a name from ``HIDDEN_ACTIVATIONS``).
        output_activation: output activation ``g_L`` (any activation, or ``"softmax"``).
        loss: per-example loss ``L(y, ŷ)``: ``squared_error``, ``binary_cross_entropy``
            (needs a sigmoid output) or ``softmax_cross_entropy`` (needs a softmax output).
        bias: whether each layer has a bias ``b_ℓ``.
    """

    def manual_grad(self, params: Params, x: Any, y: Any) -> Params:
        """``∂(mean loss)/∂params`` by the hand-written δ recursion, jit-compiled.

        See ``netcheck.nn.backprop.manual_grad``; returns the same pytree as ``params``.
        """
        x, y = self.check_batch(params, x, y)
        return backprop.manual_grad_jit(self, params, x, y)

    def autodiff_grad(self, params: Params, x: Any, y: Any) -> Params:
        """``jax.grad`` of the very same mean loss, jit-compiled; same pytree as ``params``."""
        x, y = self.check_batch(params, x, y)
        return autodiff.autodiff_grad_jit(self, params, x, y)

    def manual_deltas(self, params: Params, x: Any, y: Any) -> list[Array]:
        """``[δ^1, ..., δ^L]`` by hand, each ``(batch, n_ℓ)``; ``δ^ℓ_i = ∂L(y_i, ŷ_i)/∂z^ℓ_i``."""
        x, y = self.check_batch(params, x, y)
        return backprop.manual_deltas_jit(self, params, x, y)

    def autodiff_deltas(self, params: Params, x: Any, y: Any) -> list[Array]:
        """``∂L(y_i, ŷ_i)/∂z^ℓ_i`` by autodiff, the layout of ``manual_deltas``."""
        x, y = self.check_batch(params, x, y)
        return autodiff.autodiff_deltas_jit(self, params, x, y)

    def manual_hvp(self, params: Params, x: Any, y: Any, v: Params) -> Params:
        """``H v``: the Hessian of the mean loss times ``v``, by hand, jit-compiled.

        Pearlmutter's R-operator carried through the forward pass and the δ recursion
        (see ``netcheck.nn.hvp.manual_hvp``).

        Args:
            params: the parameters.
            x: inputs, ``(batch, n_0)``.
            y: targets, ``(batch, n_L)``.
            v: the direction: the structure, shapes and dtype of ``params``.

        Returns:
            ``H v``, the same pytree as ``params``.
        """
        x, y = self.check_batch(params, x, y)
        self.check_direction(params, v)
        return hvp.manual_hvp_jit(self, params, x, y, v)

    def autodiff_hvp(self, params: Params, x: Any, y: Any, v: Params) -> Params:
        """``H v`` by ``jax.jvp(jax.grad(mean loss))``, jit-compiled; the layout of ``params``."""
        x, y = self.check_batch(params, x, y)
        self.check_direction(params, v)
        return autodiff.autodiff_hvp_jit(self, params, x, y, v)
