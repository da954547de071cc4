"""Planted bugs in custom rules: the catalogue that measures ``check_custom_rule`` and ``audit``.

Four families of rules that JAX engineers write by hand, each a correct rule beside the
slips people make in it:

* ``layer_norm(h, gain, bias)``, a ``custom_vjp`` (rows of ``h`` normalised, ``ε = 1e-5``);
* ``softmax_cross_entropy(logits, labels)``, a ``custom_vjp`` returning one loss per row,
  ``-Σ_k y_k log softmax(z)_k``, for soft labels that need not sum to 1 (a padded row has
  none);
* ``causal_attention(q, k, v)``, a ``custom_vjp`` that saves the rows' log-sum-exp and
  recomputes the probabilities in its backward pass, as flash attention does;
* ``soft_round(x, alpha)``, a soft-rounding quantiser as a ``custom_jvp`` (its sharpness
  ``alpha`` a ``nondiff_argnums`` argument):
  ``s(x) = m + tanh(α r) / (2 tanh(α/2))``, ``m = ⌊x⌋ + ½``, ``r = x - m``.

Every variant of a family shares the family's primal function (so the checks of a family's
mutants share their compiled measuring programs), and ``rule`` builds each variant
once. ``rule_arguments`` draws a point for a family; ``model`` is a small program
with one rule of each family, for ``netcheck.audit``. ``straight_through_round`` is a
deliberate surrogate (its backward pass is the identity, the derivative of ``round`` is 0):
not a bug, the kind of rule ``audit(..., skip=...)`` is for.

Run as a script, it measures everything ``reports/artifacts/custom_rules.json`` holds (the
cost of ``check_custom_rule`` and ``audit`` against one ``jax.grad``, the kill matrix, the
rule ``audit`` names, and false alarms over Hypothesis-generated correct rules)::

    python -m netcheck.bench.rule_mutants --json reports/artifacts/custom_rules.json
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

EPS = 1e-5
"""The layer norm's ``ε``."""

ALPHA = 4.0
"""The soft-round quantiser's sharpness in ``model`` and the catalogue's points."""

FAMILIES = ("layer_norm", "softmax_cross_entropy", "causal_attention", "soft_round")


@dataclass(frozen=True)
class RuleMutant:
    """One planted bug in a custom rule.

    Attributes:
        name: ``"family/bug"``.
        family: one of ``FAMILIES``.
        bug: the bug's short name within the family.
        description: the slip, in words.
    """

    name: str
    family: str
    bug: str
    description: str


def _mutant(family: str, bug: str, description: str) -> RuleMutant:
    return RuleMutant(f"{family}/{bug}", family, bug, description)


MUTANTS: tuple[RuleMutant, ...] = (
    _mutant(
        "layer_norm",
        "eps_forgotten",
        "the backward pass divides by sqrt(σ²), not sqrt(σ² + ε) (relative ~ε/2σ²)",
    ),
    _mutant("layer_norm", "mean_term_dropped", "dh forgets to subtract mean(g ⊙ γ)"),
    _mutant(
        "layer_norm",
        "unbiased_variance",
        "the backward pass recomputes σ² with 1/(m-1) instead of 1/m (relative ~1/2m)",
    ),
    _mutant("softmax_cross_entropy", "labels_sign", "d/dlabels = +log softmax(z) (sign slip)"),
    _mutant(
        "softmax_cross_entropy",
        "cotangent_ignored",
        "d/dlogits is not multiplied by the incoming per-row cotangent",
    ),
    _mutant(
        "softmax_cross_entropy",
        "one_hot_assumed",
        "d/dlogits = softmax - y, right only when each row's labels sum to 1 (wrong on a "
        "padded row)",
    ),
    _mutant(
        "causal_attention",
        "rowsum_dropped",
        "dS = P ⊙ dP, the row sums rowsum(P ⊙ dP) forgotten",
    ),
    _mutant("causal_attention", "dk_unscaled", "dK = dSᵀ Q without the 1/sqrt(d)"),
    _mutant("causal_attention", "dk_transposed", "dK = dS Q / sqrt(d): dS not transposed"),
    _mutant(
        "causal_attention",
        "mask_off_by_one",
        "the recomputed probabilities mask j > i + 1 instead of j > i (one extra diagonal)",
    ),
    _mutant(
        "soft_round",
        "normaliser_dropped",
        "the tangent forgets the 1 / (2 tanh(α/2)) normalisation",
    ),
    _mutant(
        "soft_round",
        "nearest_offset",
        "the tangent's offset r = x - round(x) instead of x - ⌊x⌋ - ½",
    ),
)
"""The catalogue: 12 planted bugs over the four families."""


# ----- the primals (shared by every variant of a family) ----------------------------------


def _row_stats(h: Array) -> tuple[Array, Array]:
    mean = h.mean(axis=-1, keepdims=True)
    return mean, ((h - mean) ** 2).mean(axis=-1, keepdims=True)


def layer_norm(h: Array, gain: Array, bias: Array) -> Array:
    """``γ ⊙ (h - μ) / sqrt(σ² + ε) + β`` per row; ``h (rows, m)``, ``gain, bias (m,)``."""
    mean, variance = _row_stats(h)
    return gain[None, :] * (h - mean) / jnp.sqrt(variance + EPS) + bias[None, :]


def _log_softmax(logits: Array) -> Array:
    shift = jax.lax.stop_gradient(logits.max(axis=-1, keepdims=True))
    shifted = logits - shift
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True))


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """``-Σ_k y_k log softmax(z)_k`` per row; ``logits, labels (rows, classes)`` -> ``(rows,)``."""
    return -jnp.sum(labels * _log_softmax(logits), axis=-1)


def _causal_scores(q: Array, k: Array) -> tuple[Array, Array]:
    """``S = Q Kᵀ / sqrt(d)`` and the causal mask ``j ≤ i``."""
    scores = q @ k.T / math.sqrt(q.shape[-1])
    rows, cols = scores.shape
    mask = jnp.arange(cols)[None, :] <= jnp.arange(rows)[:, None]
    return scores, mask


def causal_attention(q: Array, k: Array, v: Array) -> Array:
    """``softmax(Q Kᵀ / sqrt(d), causal) V``; ``q, k (L, d)``, ``v (L, d_v)`` -> ``(L, d_v)``."""
    scores, mask = _causal_scores(q, k)
    return jnp.exp(_log_softmax(jnp.where(mask, scores, -jnp.inf))) @ v


def _soft_round_parts(x: Array, alpha: float) -> tuple[Array, Array, Array]:
    middle = jnp.floor(x) + 0.5
    offset = x - middle
    return middle, offset, 2 * jnp.tanh(jnp.asarray(alpha / 2, x.dtype))


def soft_round(x: Array, alpha: float) -> Array:
    """``⌊x⌋ + ½ + tanh(α r) / (2 tanh(α/2))``, ``r = x - ⌊x⌋ - ½``: rounds as ``α → ∞``."""
    middle, offset, normaliser = _soft_round_parts(x, alpha)
    return middle + jnp.tanh(alpha * offset) / normaliser


def round_to_integer(x: Array) -> Array:
    """``round(x)``: its derivative is 0 wherever it exists."""
    return jnp.round(x)


# ----- the rules and their planted bugs -----------------------------------------------------


def _layer_norm_rule(bug: str | None) -> Any:
    rule = jax.custom_vjp(layer_norm)

    def forward(h: Array, gain: Array, bias: Array) -> tuple[Array, tuple]:
        mean, variance = _row_stats(h)
        inv_std = 1 / jnp.sqrt(variance + EPS)
        x_hat = (h - mean) * inv_std
        if bug == "eps_forgotten":
            inv_std = 1 / jnp.sqrt(variance)
        if bug == "unbiased_variance":
            m = h.shape[-1]
            inv_std = 1 / jnp.sqrt(variance * m / (m - 1) + EPS)
        return gain[None, :] * x_hat + bias[None, :], (x_hat, inv_std, gain)

    def backward(saved: tuple, g: Array) -> tuple[Array, Array, Array]:
        x_hat, inv_std, gain = saved
        g_bar = g * gain[None, :]
        centred = g_bar if bug == "mean_term_dropped" else g_bar - g_bar.mean(-1, keepdims=True)
        dh = inv_std * (centred - x_hat * (g_bar * x_hat).mean(axis=-1, keepdims=True))
        return dh, (g * x_hat).sum(axis=0), g.sum(axis=0)

    rule.defvjp(forward, backward)
    return rule


def _softmax_cross_entropy_rule(bug: str | None) -> Any:
    rule = jax.custom_vjp(softmax_cross_entropy)

    def forward(logits: Array, labels: Array) -> tuple[Array, tuple]:
        log_p = _log_softmax(logits)
        return -jnp.sum(labels * log_p, axis=-1), (log_p, labels)

    def backward(saved: tuple, g: Array) -> tuple[Array, Array]:
        log_p, labels = saved
        g = g[:, None]
        total = labels.sum(axis=-1, keepdims=True)
        d_logits = jnp.exp(log_p) * (1 if bug == "one_hot_assumed" else total) - labels
        if bug != "cotangent_ignored":
            d_logits = g * d_logits
        sign = 1 if bug == "labels_sign" else -1
        return d_logits, sign * g * log_p

    rule.defvjp(forward, backward)
    return rule


def _causal_attention_rule(bug: str | None) -> Any:
    rule = jax.custom_vjp(causal_attention)

    def forward(q: Array, k: Array, v: Array) -> tuple[Array, tuple]:
        scores, mask = _causal_scores(q, k)
        masked = jnp.where(mask, scores, -jnp.inf)
        top = jax.lax.stop_gradient(masked.max(axis=-1, keepdims=True))
        lse = top + jnp.log(jnp.sum(jnp.exp(masked - top), axis=-1, keepdims=True))
        out = jnp.exp(masked - lse) @ v
        return out, (q, k, v, out, lse)

    def backward(saved: tuple, g: Array) -> tuple[Array, Array, Array]:
        q, k, v, out, lse = saved
        scores, mask = _causal_scores(q, k)
        if bug == "mask_off_by_one":
            rows, cols = scores.shape
            mask = jnp.arange(cols)[None, :] <= jnp.arange(rows)[:, None] + 1
        p = jnp.where(mask, jnp.exp(scores - lse), 0)  # recomputed, as flash attention does
        dv = p.T @ g
        dp = g @ v.T
        ds = p * dp if bug == "rowsum_dropped" else p * (dp - jnp.sum(g * out, -1, keepdims=True))
        scale = 1 / math.sqrt(q.shape[-1])
        dq = ds @ k * scale
        dk = ds.T @ q
        if bug == "dk_transposed":
            dk = ds @ q
        if bug != "dk_unscaled":
            dk = dk * scale
        return dq, dk, dv

    rule.defvjp(forward, backward)
    return rule


def _soft_round_rule(bug: str | None) -> Any:
    rule = jax.custom_jvp(soft_round, nondiff_argnums=(1,))

    def tangent_rule(alpha: float, primals: tuple, tangents: tuple) -> tuple[Array, Array]:
        (x,), (t,) = primals, tangents
        _, offset, normaliser = _soft_round_parts(x, alpha)
        if bug == "nearest_offset":
            offset = x - jnp.round(x)
        slope = alpha * (1 - jnp.tanh(alpha * offset) ** 2)
        if bug != "normaliser_dropped":
            slope = slope / normaliser
        return soft_round(x, alpha), slope * t

    rule.defjvp(tangent_rule)
    return rule


def _straight_through_rule() -> Any:
    rule = jax.custom_vjp(round_to_integer)
    rule.defvjp(lambda x: (round_to_integer(x), None), lambda _, g: (g,))
    return rule


_BUILDERS: dict[str, Callable[[str | None], Any]] = {
    "layer_norm": _layer_norm_rule,
    "softmax_cross_entropy": _softmax_cross_entropy_rule,
    "causal_attention": _causal_attention_rule,
    "soft_round": _soft_round_rule,
}


@functools.cache
def rule(family: str, bug: str | None = None) -> Any:
    """The custom rule of ``family``: correct (``bug=None``) or with a planted bug.

    Built once per (family, bug), so repeated checks reuse their compiled programs.

    Raises:
        ValueError: an unknown family or bug.
    """
    if family not in _BUILDERS:
        raise ValueError(f"unknown rule family {family!r}; known: {', '.join(FAMILIES)}")
    if bug is not None and f"{family}/{bug}" not in {m.name for m in MUTANTS}:
        known = ", ".join(m.bug for m in MUTANTS if m.family == family)
        raise ValueError(f"unknown bug {bug!r} of {family}; known: {known}")
    return _BUILDERS[family](bug)


straight_through_round = _straight_through_rule()
"""``round(x)`` whose backward pass is the identity: a straight-through estimator, on
purpose not the derivative (``round``'s is 0)."""


# ----- points --------------------------------------------------------------------------------


def rule_arguments(
    family: str,
    dtype: Any = jnp.float32,
    seed: int = 0,
    rows: int = 6,
    width: int = 8,
    scale: float = 1.0,
) -> tuple:
    """A point at which to check ``family``'s rule, drawn with NumPy.

    Args:
        family: one of ``FAMILIES``.
        dtype: the working dtype.
        seed: the NumPy seed.
        rows: rows of ``h``/``logits``, the sequence length ``L`` of attention.
        width: the normalised width, the classes, the head size ``d``, or the length of
            the quantised vector (times ``rows``).
        scale: the spread of the inputs (pre-activations, logits, scores, quantised values).

    Returns:
        The positional arguments: ``(h, gain, bias)``, ``(logits, labels)`` (soft labels;
        the last row padded with zeros when ``rows > 1``), ``(q, k, v)`` or ``(x, ALPHA)``.
    """
    rng = np.random.default_rng(seed)

    def cast(values: np.ndarray) -> Array:
        return jnp.asarray(values, dtype)

    if family == "layer_norm":
        shift = rng.normal(size=(rows, 1))
        return (
            cast(scale * (rng.normal(size=(rows, width)) + shift)),
            cast(1 + 0.25 * rng.normal(size=width)),
            cast(0.5 * rng.normal(size=width)),
        )
    if family == "softmax_cross_entropy":
        labels = rng.dirichlet(np.ones(width), size=rows)
        if rows > 1:
            labels[-1] = 0.0
        return cast(scale * rng.normal(size=(rows, width))), cast(labels)
    if family == "causal_attention":
        q, k, v = (rng.normal(size=(rows, width)) for _ in range(3))
        return cast(scale * q), cast(k), cast(v)
    if family == "soft_round":
        return cast(scale * 3 * rng.normal(size=rows * width)), ALPHA
    raise ValueError(f"unknown rule family {family!r}; known: {', '.join(FAMILIES)}")


def model(
    rules: dict[str, Any] | None = None, straight_through: bool = False
) -> Callable[..., Array]:
    """A small program with one rule of each family (one may be a mutant), for ``audit``.

    Tokens ``x (L, n_in)`` -> dense -> layer norm -> causal self-attention -> soft-round
    quantiser -> dense -> softmax cross-entropy against soft labels, averaged.

    Args:
        rules: ``{family: rule}`` replacing the correct rule of those families.
        straight_through: round the quantiser's output with ``straight_through_round``
            (hard values forward, the soft-round slope backward): a fifth rule, a
            surrogate that ``audit`` must be told to skip (``skip=("round_to_integer",)``).

    Returns:
        ``loss(params, x, labels) -> scalar``.
    """
    chosen = {family: rule(family) for family in FAMILIES} | (rules or {})

    def loss(params: dict[str, Array], x: Array, labels: Array) -> Array:
        h = chosen["layer_norm"](x @ params["w_in"], params["gain"], params["bias"])
        q, k, v = (h @ params[name] for name in ("w_q", "w_k", "w_v"))
        a = chosen["causal_attention"](q, k, v)
        a = chosen["soft_round"](params["step"] * a, ALPHA)
        if straight_through:
            a = straight_through_round(a)
        logits = a @ params["w_out"]
        return jnp.mean(chosen["softmax_cross_entropy"](logits, labels))

    return loss


def model_arguments(
    dtype: Any = jnp.float32, seed: int = 0
) -> tuple[dict[str, Array], Array, Array]:
    """``(params, x (8, 6), labels (8, 3))`` for ``model``; the last row of labels padded."""
    rng = np.random.default_rng(seed)
    n_in, width, head, classes, tokens = 6, 8, 4, 3, 8
    params = {
        "w_in": rng.normal(size=(n_in, width)) / math.sqrt(n_in),
        "gain": 1 + 0.25 * rng.normal(size=width),
        "bias": 0.5 * rng.normal(size=width),
        "w_q": rng.normal(size=(width, head)) / math.sqrt(width),
        "w_k": rng.normal(size=(width, head)) / math.sqrt(width),
        "w_v": rng.normal(size=(width, head)) / math.sqrt(width),
        "step": np.asarray(2.5),
        "w_out": rng.normal(size=(head, classes)),
    }
    labels = rng.dirichlet(np.ones(classes), size=tokens)
    labels[-1] = 0.0
    cast = functools.partial(jnp.asarray, dtype=dtype)
    return (
        {name: cast(value) for name, value in params.items()},
        cast(rng.normal(size=(tokens, n_in))),
        cast(labels),
    )


def main(argv: list[str] | None = None) -> int:
    """Measure the catalogue (see the module docstring): ``netcheck.bench.custom_rules.main``."""
    from netcheck.bench import custom_rules  # needs Hypothesis, a development dependency

    return custom_rules.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
