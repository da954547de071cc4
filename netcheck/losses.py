"""Per-example losses ``L(y, ŷ)`` with their hand-written ``∂L/∂ŷ``.

Each loss is one :class:`Loss` record. The batch loss is the lecture's mean
``1/n Σ_i L(y_i, ŷ(x_i))``; the records here are per example (summed over outputs,
never over the batch).

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

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclass(frozen=True)
class Loss:
    """A per-example loss and its derivative with respect to the prediction.

    Attributes:
        name: the registry name.
        value: ``L(y, ŷ)`` per example from ``(ŷ, y)``, each ``(batch, n_L)`` -> ``(batch,)``.
        grad_prediction: ``∂L/∂ŷ`` from ``(ŷ, y)``, shape ``(batch, n_L)``.
        output_activation: the output activation this loss requires, or ``None``.
        value_from_logits: for fused losses, ``L`` from ``(z^L, y)``, stable for any ``z^L``.
        delta_from_logits: for fused losses, ``δ^L = ∂L/∂z^L`` from ``(z^L, y)``.
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad_prediction: Callable[[Array, Array], Array]
    output_activation: str | None = None
    value_from_logits: Callable[[Array, Array], Array] | None = None
    delta_from_logits: Callable[[Array, Array], Array] | None = None

    @property
    def fused(self) -> bool:
        """Whether δ^L comes straight from the logits (sigmoid + BCE, softmax + CE)."""
        return self.delta_from_logits is not None


def _squared_error(y_hat: Array, y: Array) -> Array:
    # The lecture's L = ½‖y - ŷ‖², summed over outputs.
    return 0.5 * jnp.sum(jnp.square(y_hat - y), axis=-1)


def _squared_error_grad(y_hat: Array, y: Array) -> Array:
    return y_hat - y


def _bce(y_hat: Array, y: Array) -> Array:
    return -jnp.sum(y * jnp.log(y_hat) + (1 - y) * jnp.log1p(-y_hat), axis=-1)


def _bce_grad(y_hat: Array, y: Array) -> Array:
    # ∂/∂ŷ [-y log ŷ - (1-y) log(1-ŷ)] = (ŷ - y) / (ŷ (1 - ŷ)).
    return (y_hat - y) / (y_hat * (1 - y_hat))


def _bce_from_logits(z: Array, y: Array) -> Array:
    # -y log σ(z) - (1-y) log(1-σ(z)) = softplus(z) - y z, with softplus = logaddexp(z, 0).
    return jnp.sum(jnp.logaddexp(z, 0) - y * z, axis=-1)


def _bce_delta(z: Array, y: Array) -> Array:
    # ∂/∂z [softplus(z) - y z] = σ(z) - y = ŷ - y.
    return jax.nn.sigmoid(z) - y


def _cross_entropy(y_hat: Array, y: Array) -> Array:
    return -jnp.sum(y * jnp.log(y_hat), axis=-1)


def _cross_entropy_grad(y_hat: Array, y: Array) -> Array:
    return -y / y_hat


def _cross_entropy_from_logits(z: Array, y: Array) -> Array:
    # -Σ_j y_j log softmax(z)_j = (Σ_j y_j) logsumexp(z) - y·z.
    lse = jax.nn.logsumexp(z, axis=-1)
    return jnp.sum(y, axis=-1) * lse - jnp.sum(y * z, axis=-1)


def _cross_entropy_delta(z: Array, y: Array) -> Array:
    # ∂/∂z [(Σy) lse(z) - y·z] = softmax(z) Σy - y, which is ŷ - y for one-hot rows.
    return jax.nn.softmax(z, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y


LOSSES: dict[str, Loss] = {
    record.name: record
    for record in (
        Loss("squared_error", _squared_error, _squared_error_grad),
        Loss(
            "binary_cross_entropy",
            _bce,
            _bce_grad,
            output_activation="sigmoid",
            value_from_logits=_bce_from_logits,
            delta_from_logits=_bce_delta,
        ),
        Loss(
            "softmax_cross_entropy",
            _cross_entropy,
            _cross_entropy_grad,
            output_activation="softmax",
            value_from_logits=_cross_entropy_from_logits,
            delta_from_logits=_cross_entropy_delta,
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
