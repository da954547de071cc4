"""Per-example losses ``L(y, ŷ)`` with their hand-written ``∂L/∂ŷ`` and ``∂²L/∂ŷ²``.

Each loss is one ``Loss`` record. The batch loss is the lecture's mean
``1/n Σ_i L(y_i, ŷ(x_i))``; the records here are per example (summed over outputs,
never over the batch). Beside each loss sit its second-order pieces (for the
Hessian-vector product of ``netcheck.nn.hvp``) and the rule its targets must obey
(``Loss.check_targets``, applied at every public entry through
``Network.check_batch``).

Two losses come with a *fused* output rule, which is also the numerically stable one:
sigmoid + binary cross-entropy and softmax + softmax cross-entropy both give
``δ^L = ∂L/∂z^L = ŷ - y``, computed from the logits ``z^L``. Such a loss requires its
output activation and computes its value from the logits too (log-sum-exp style).

Sign convention: netcheck's ``δ^L`` is ``∂L/∂z^L``. For the lecture's
``L = ½(y - ŷ)²``, ``∂L/∂ŷ = -(y - ŷ) = ŷ - y``; the slide's ``G(L)(y - ŷ)`` is the
*negative* gradient (the descent direction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from netcheck.nn.activations import get_activation, softmax_vjp

Array = jax.Array

TARGET_SUM_TOLERANCE = 1e-4
"""How far a softmax cross-entropy target row may sum from 1: the float32 round-off of a
mixture of labels, with margin. Rows of ``n_L`` entries stored in a coarser dtype may
differ by up to ``n_L · eps(dtype)`` instead, where that is larger (bfloat16, float16)."""


@dataclass(frozen=True)
class Loss:
    """A per-example loss and its derivative with respect to the prediction.

    Attributes:
        name: the registry name.
        value: ``L(y, ŷ)`` per example from ``(ŷ, y)``, each ``(batch, n_L)`` -> ``(batch,)``.
        grad_prediction: ``∂L/∂ŷ`` from ``(ŷ, y)``, shape ``(batch, n_L)``.
        output_activation: the output activation this loss requires, or ``None``.
        grad_prediction_tangent: ``(∂²L/∂ŷ²) t`` from ``(ŷ, y, t)``: how ``∂L/∂ŷ`` moves
            when ``ŷ`` moves along ``t``; each ``(batch, n_L)``.
        output_activation: the output activation this loss requires, or ``None``.
        value_from_logits: for fused losses, ``L`` from ``(z^L, y)``, stable for any ``z^L``.
        delta_from_logits: for fused losses, ``δ^L = ∂L/∂z^L`` from ``(z^L, y)``.
        delta_tangent_from_logits: for fused losses, ``(∂δ^L/∂z^L) t`` from ``(z^L, y, t)``.
        targets_in_unit_interval: targets must lie in ``[0, 1]``.
        target_rows_sum_to_one: each target row must sum to 1 (one-hot or probabilities).
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad_prediction: Callable[[Array, Array], Array]
    grad_prediction_tangent: Callable[[Array, Array, Array], Array]
    output_activation: str | None = None
    value_from_logits: Callable[[Array, Array], Array] | None = None
    delta_from_logits: Callable[[Array, Array], Array] | None = None
    delta_tangent_from_logits: Callable[[Array, Array, Array], Array] | None = None
    targets_in_unit_interval: bool = False
    target_rows_sum_to_one: bool = False

    @property
    def fused(self) -> bool:
        """Whether δ^L comes straight from the logits (sigmoid + BCE, softmax + CE)."""
        return self.delta_from_logits is not None

    def check_targets(self, y: Any, what: str = "y") -> None:
        """Refuse targets this loss is not defined for, with one ``ValueError``.

        Binary cross-entropy needs ``y`` in ``[0, 1]``; softmax cross-entropy also needs
        every row to sum to 1 within ``max(TARGET_SUM_TOLERANCE, n_L · eps(dtype))``.
        Squared error takes any real target. Only concrete values can be checked: under
        a transformation (``jit``, ``vmap``, ``grad``) this does nothing.

        Args:
            y: targets, ``(batch, n_L)``, a floating array (NaN/Inf already refused).
            what: the argument's name, for the message.
        """
        if isinstance(y, jax.core.Tracer) or not self.targets_in_unit_interval:
            return
        y = jnp.asarray(y)
        bounds = jnp.stack([jnp.min(y), jnp.max(y)])
        if isinstance(bounds, jax.core.Tracer):
            return  # under jit even a constant (a closed-over numpy y) is traced
        # `+ 0.0` prints a -0.0 bound as 0.
        low, high = (float(bound) + 0.0 for bound in bounds)
        if low < 0 or high > 1:
            raise ValueError(
                f"{what}: {self.name} needs targets in [0, 1], got values in [{low:g}, {high:g}]"
            )
        if not self.target_rows_sum_to_one:
            return
        # Sum in at least float32: a bfloat16 accumulator would add its own round-off.
        accumulator = y.dtype if jnp.finfo(y.dtype).bits >= 32 else jnp.float32
        sums = jnp.sum(y.astype(accumulator), axis=-1)
        tolerance = max(TARGET_SUM_TOLERANCE, y.shape[-1] * float(jnp.finfo(y.dtype).eps))
        bad = jnp.abs(sums - 1) > tolerance
        count = int(jnp.count_nonzero(bad))
        if count:
            first = int(jnp.argmax(bad))
            raise ValueError(
                f"{what}: {self.name} needs target rows summing to 1 (one-hot or "
                f"probabilities); {count} row(s) do not, e.g. row {first} sums to "
                f"{float(sums[first]):g}"
            )


def _squared_error(y_hat: Array, y: Array) -> Array:
    # The lecture's L = ½‖y - ŷ‖², summed over outputs.
    return 0.5 * jnp.sum(jnp.square(y_hat - y), axis=-1)


def _squared_error_grad(y_hat: Array, y: Array) -> Array:
    return y_hat - y


def _squared_error_grad_tangent(y_hat: Array, y: Array, t: Array) -> Array:
    # ∂²L/∂ŷ² = I.
    return t


def _bce(y_hat: Array, y: Array) -> Array:
    return -jnp.sum(y * jnp.log(y_hat) + (1 - y) * jnp.log1p(-y_hat), axis=-1)


def _bce_grad(y_hat: Array, y: Array) -> Array:
    # ∂/∂ŷ [-y log ŷ - (1-y) log(1-ŷ)] = (ŷ - y) / (ŷ (1 - ŷ)).
    return (y_hat - y) / (y_hat * (1 - y_hat))


def _bce_grad_tangent(y_hat: Array, y: Array, t: Array) -> Array:
    # ∂²L/∂ŷ² = diag(y/ŷ² + (1-y)/(1-ŷ)²), each output on its own.
    return (y / jnp.square(y_hat) + (1 - y) / jnp.square(1 - y_hat)) * t


def _bce_from_logits(z: Array, y: Array) -> Array:
    # -y log σ(z) - (1-y) log(1-σ(z)) = softplus(z) - y z, with softplus = logaddexp(z, 0).
    return jnp.sum(jnp.logaddexp(z, 0) - y * z, axis=-1)


def _bce_delta(z: Array, y: Array) -> Array:
    # ∂/∂z [softplus(z) - y z] = σ(z) - y = ŷ - y.
    return jax.nn.sigmoid(z) - y


def _bce_delta_tangent(z: Array, y: Array, t: Array) -> Array:
    # ∂δ^L/∂z^L = diag(σ'(z)), whatever y is.
    return get_activation("sigmoid").derivative(z, jax.nn.sigmoid(z)) * t


def _cross_entropy(y_hat: Array, y: Array) -> Array:
    return -jnp.sum(y * jnp.log(y_hat), axis=-1)


def _cross_entropy_grad(y_hat: Array, y: Array) -> Array:
    return -y / y_hat


def _cross_entropy_grad_tangent(y_hat: Array, y: Array, t: Array) -> Array:
    # ∂²L/∂ŷ² = diag(y/ŷ²).
    return y / jnp.square(y_hat) * t


def _cross_entropy_from_logits(z: Array, y: Array) -> Array:
    # -Σ_j y_j log softmax(z)_j = (Σ_j y_j) logsumexp(z) - y·z.
    lse = jax.nn.logsumexp(z, axis=-1)
    return jnp.sum(y, axis=-1) * lse - jnp.sum(y * z, axis=-1)


def _cross_entropy_delta(z: Array, y: Array) -> Array:
    # ∂/∂z [(Σy) lse(z) - y·z] = softmax(z) Σy - y, which is ŷ - y for one-hot rows.
    return jax.nn.softmax(z, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y


def _cross_entropy_delta_tangent(z: Array, y: Array, t: Array) -> Array:
    # ∂δ^L/∂z^L = (Σy) G(L), with G(L) = diag(s) - s sᵀ applied as a product.
    return softmax_vjp(jax.nn.softmax(z, axis=-1), t) * jnp.sum(y, axis=-1, keepdims=True)


LOSSES: dict[str, Loss] = {
    record.name: record
    for record in (
        Loss("squared_error", _squared_error, _squared_error_grad, _squared_error_grad_tangent),
        Loss(
            "binary_cross_entropy",
            _bce,
            _bce_grad,
            _bce_grad_tangent,
            output_activation="sigmoid",
            value_from_logits=_bce_from_logits,
            delta_from_logits=_bce_delta,
            delta_tangent_from_logits=_bce_delta_tangent,
            targets_in_unit_interval=True,
        ),
        Loss(
            "softmax_cross_entropy",
            _cross_entropy,
            _cross_entropy_grad,
            _cross_entropy_grad_tangent,
            output_activation="softmax",
            value_from_logits=_cross_entropy_from_logits,
            delta_from_logits=_cross_entropy_delta,
            delta_tangent_from_logits=_cross_entropy_delta_tangent,
            targets_in_unit_interval=True,
            target_rows_sum_to_one=True,
        ),
    )
}
"""Every loss by name."""


def get_loss(name: str) -> Loss:
    """Look a loss up by name, with an error that lists the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a name (str), got {type(name).__name__}")
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
