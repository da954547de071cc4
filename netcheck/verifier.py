"""The verifier: the manual gradient judged layer by layer against autodiff's own error.

A fixed tolerance either cries wolf in float32 or lets a 1% bug through. Here every
quantity ``g`` (each ``δ^ℓ``, ``∂L/∂W_ℓ``, ``∂L/∂b_ℓ``, or each leaf of a user's pytree) is
judged against three things computed at the same point:

* the **truth** ``t``: ``jax.grad`` in float64 on the parameters and data upcast exactly
  from the working dtype (so both sides see the same numbers);
* the **noise floor** ``φ = ‖a - t‖``: the distance from ``jax.grad`` *at the working
  dtype* (``a``) to the truth, i.e. how far a correct program in this precision lands
  (on a GPU running float32 matmuls in TF32, ``a`` runs in TF32 too, so the floor grows
  with it). For float64 the working dtype is the truth's own, so ``φ`` is measured one
  precision down, in float32 at the point rounded to float32, and scaled by
  ``u_64 / u_32 = 2^-29``;
* a **finite-difference witness** in float64 (:mod:`netcheck.finite_diff`) along one
  random direction, which checks the truth without autodiff and detects kinks.

The candidate ``c`` passes when::

    ‖c - t‖ ≤ K · φ + T · u · ‖m‖                (norms over the whole array)

with ``u`` the unit roundoff of the working dtype (``2^-53, 2^-24, 2^-11, 2^-8`` for
float64, float32, float16, bfloat16) and ``m`` the magnitude of the terms summed into the
quantity: ``|Δ^ℓ|ᵀ|A^{ℓ-1}|/n`` for ``∂L/∂W_ℓ``, ``Σ_i|δ^ℓ_i|/n`` for ``∂L/∂b_ℓ``, ``|t|``
for ``δ^ℓ`` and for pytree leaves.

Derivation of ``K = 8`` (:data:`NOISE_MULTIPLE`): the manual recursion and ``jax.grad``
evaluate the same products and sums in a different order. Both are backward stable, so
both land within ``γ · cond · u`` of the truth with the *same* condition number: their
distances to the truth are two draws of the same size, not one number, and ``K`` bounds
their ratio. Each distance is a norm over many independent roundings, so such a ratio
stays within a small factor; ``K = 8`` allows the manual code up to eight times
autodiff's own error, still a factor ~10^4 below a 1% bug in float32.

Derivation of ``T = 4`` (:data:`TIE_MULTIPLE`): ``φ`` is one sample of a rounding error
and can be tiny by luck, above all for a quantity of one or two elements (the output
bias of a one-unit layer); then the dtype floor decides. Any correct result is rounded
at least once to the working dtype, and a sum's rounding is relative to the magnitude of
its terms, not of its (possibly cancelling) value: ``T = 4`` roundings of ``‖m‖``.

Measured (``netcheck.suite.detection_power``, 1000 correct cases per dtype): the
largest ``distance / tolerance`` of the correct code was 0.75 (float64), 0.55 (float32),
0.47 (bfloat16) and 0.36 (float16): no false alarm, with headroom. The constants were set
from the derivation, not loosened case by case: an earlier ``T · u · ‖t‖`` floor gave 3
false alarms in 800 cases, all on a single cancelling output bias, which is what led to
the magnitude ``m``.

NaN or Inf in the candidate, in autodiff at the working dtype (no floor can be measured),
in the truth or in the loss is a failure with its own reason; two NaNs never agree.
A failing quantity at a non-differentiable point (a relu pre-activation exactly 0, or a
kink seen by the finite differences) is reported as ``"kink"``, not as a failure: there
any subgradient is correct.

Layers are reported in the lecture's numbering (``δ^ℓ``, ``W_ℓ``, ``b_ℓ``) and read from
``L`` down to 1: the first layer whose ``δ`` disagrees is where the bug sits, because a
wrong ``δ^ℓ`` spoils every ``δ`` below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from netcheck import backprop, finite_diff
from netcheck.network import Network, Params

Array = jax.Array
PyTree = Any
GradFn = Callable[[Network, Params, Array, Array], Params]
DeltasFn = Callable[[Network, Params, Array, Array], list[Array]]

NOISE_MULTIPLE = 8.0
"""``K``: a quantity passes within ``K`` times autodiff's own distance to the truth."""

TIE_MULTIPLE = 4.0
"""``T``: the dtype floor is ``T · u · ‖m‖``, for quantities where autodiff ties the truth."""

FD_MULTIPLE = 10.0
"""The finite-difference witness agrees when ``|FD - t·d| ≤ 10 · error estimate + ...``."""

FD_RELATIVE = 1e-7
"""... ``+ 1e-7 · (|t·d| + ‖t‖)``: what float64 finite differences resolve at best."""

KINKED_ACTIVATIONS = frozenset({"relu", "leaky_relu"})
"""Activations whose derivative jumps at ``z = 0`` (non-differentiable points)."""

STATUSES = ("ok", "fail", "nonfinite", "kink")
"""Row statuses: agrees, disagrees, NaN/Inf somewhere, disagrees at a non-differentiable point."""

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
"""XLA options for the measuring programs: they run once per shape on tiny arrays, so
compile time is what counts (about 2.5x less with these, measured on CPU). They apply to
the candidate and the autodiff reference in the same program alike."""

_F64 = jnp.dtype(jnp.float64)
_F32 = jnp.dtype(jnp.float32)


def unit_roundoff(dtype: Any) -> float:
    """``u = eps / 2`` of a floating dtype: 2^-53, 2^-24, 2^-11 (float16), 2^-8 (bfloat16)."""
    return float(jnp.finfo(dtype).eps) / 2


# ----- the verdict -------------------------------------------------------------------


@dataclass(frozen=True)
class Witness:
    """The finite-difference witness of one quantity along a random unit direction ``d``.

    Attributes:
        value: the float64 finite-difference estimate of ``∇ · d``.
        error: its estimated absolute error.
        truth: ``t · d`` from float64 autodiff.
        candidate: ``c · d`` from the gradient under test.
        kink: the loss is not differentiable at the point along ``d``.
        agrees: ``|value - truth|`` is within the witness tolerance (or there is a kink).
    """

    value: float
    error: float
    truth: float
    candidate: float
    kink: bool
    agrees: bool


@dataclass(frozen=True)
class Agreement:
    """How one quantity (``δ^ℓ``, ``W_ℓ``, ``b_ℓ`` or a pytree leaf) agrees with the truth.

    Attributes:
        name: ``"δ^2"``, ``"W_2"``, ``"b_2"``, or the leaf path (``jax.tree_util.keystr``).
        layer: ``ℓ`` (1-based), or ``None`` for a pytree leaf.
        kind: ``"delta"``, ``"W"``, ``"b"`` or ``"leaf"``.
        status: one of :data:`STATUSES`.
        max_abs_error: ``max |c - t|``.
        relative_error: ``‖c - t‖ / ‖t‖`` (``inf`` if ``t = 0 ≠ c``).
        cosine: ``⟨c, t⟩ / (‖c‖ ‖t‖)`` (1 when both are zero).
        distance: ``‖c - t‖``.
        tolerance: ``K φ + T u ‖m‖``.
        noise_floor: ``φ``, autodiff's own distance to the truth at the working dtype.
        dtype_floor: ``T u ‖m‖`` (``m``: magnitude of the summed terms).
        why: the tolerance spelled out, and the reason for a non-``ok`` status.
        witness: the finite-difference witness, if one was taken.
    """

    name: str
    layer: int | None
    kind: str
    status: str
    max_abs_error: float
    relative_error: float
    cosine: float
    distance: float
    tolerance: float
    noise_floor: float
    dtype_floor: float
    why: str
    witness: Witness | None = None

    @property
    def ok(self) -> bool:
        """Whether this quantity is acceptable (agrees, or disagrees only at a kink)."""
        return self.status in ("ok", "kink")

    @property
    def ratio(self) -> float:
        """``distance / tolerance``: below 1 passes."""
        return _safe_ratio(self.distance, self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (non-finite numbers become ``None``)."""
        record = {key: jsonable(value) for key, value in vars(self).items() if key != "witness"}
        record["ratio"] = jsonable(self.ratio)
        record["witness"] = (
            None
            if self.witness is None
            else {key: jsonable(value) for key, value in vars(self.witness).items()}
        )
        return record


@dataclass(frozen=True)
class LayerAgreement:
    """The rows of layer ``ℓ``: ``δ^ℓ``, ``W_ℓ`` and (with bias) ``b_ℓ``.

    Attributes:
        layer: ``ℓ``, 1-based.
        delta: agreement of ``δ^ℓ`` (per example, ``(batch, n_ℓ)``).
        W: agreement of ``∂L/∂W_ℓ``.
        b: agreement of ``∂L/∂b_ℓ``, or ``None`` without bias.
        kinks: pre-activations ``z^ℓ`` exactly at a kink (relu/leaky_relu at 0).
    """

    layer: int
    delta: Agreement
    W: Agreement
    b: Agreement | None
    kinks: int = 0

    @property
    def rows(self) -> tuple[Agreement, ...]:
        """``(δ^ℓ, W_ℓ, b_ℓ)``, without ``b`` when there is no bias."""
        return tuple(row for row in (self.delta, self.W, self.b) if row is not None)

    @property
    def ok(self) -> bool:
        """Whether every row of the layer is acceptable."""
        return all(row.ok for row in self.rows)


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer.

    Attributes:
        dtype: the working dtype's name (``"float32"``; ``"mixed"`` for a mixed pytree).
        rows: every :class:`Agreement`, for a network from layer ``L`` down to 1.
        layers: for a network, one :class:`LayerAgreement` per layer, ``layers[ℓ-1]``
            for layer ``ℓ``; empty for :func:`check_gradient`.
        reasons: one line per failure, most important first (empty when ``ok``).
        first_bad_layer: walking down from ``L``, the first layer whose ``δ`` disagrees;
            if every ``δ`` agrees, the first layer with any failing row; ``None`` if ok
            (and always for :func:`check_gradient`).
        kink: the point is non-differentiable somewhere (any subgradient is correct there).
    """

    dtype: str
    rows: tuple[Agreement, ...]
    layers: tuple[LayerAgreement, ...]
    reasons: tuple[str, ...]
    first_bad_layer: int | None
    kink: bool

    @property
    def ok(self) -> bool:
        """True when nothing failed (disagreements at a kink are not failures)."""
        return not self.reasons

    @property
    def reason(self) -> str | None:
        """The first reason, or ``None`` when ``ok``."""
        return self.reasons[0] if self.reasons else None

    @property
    def worst_ratio(self) -> float:
        """The largest ``distance / tolerance`` over the finite rows (0 if none)."""
        ratios = [row.ratio for row in self.rows if math.isfinite(row.ratio)]
        return max(ratios, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record: ``ok``, ``dtype``, ``first_bad_layer``, ``kink``,
        ``reasons``, ``constants`` (K, T), ``rows`` (each :meth:`Agreement.to_dict`)."""
        return {
            "ok": self.ok,
            "dtype": self.dtype,
            "first_bad_layer": self.first_bad_layer,
            "kink": self.kink,
            "reasons": list(self.reasons),
            "constants": {"noise_multiple": NOISE_MULTIPLE, "tie_multiple": TIE_MULTIPLE},
            "rows": [row.to_dict() for row in self.rows],
        }

    def __str__(self) -> str:
        header = ("quantity", "status", "max|c-t|", "rel err", "cosine", "tol", "ratio", "FD")
        lines = [header]
        for row in self.rows:
            witness = "-"
            if row.witness is not None:
                witness = "kink" if row.witness.kink else ("ok" if row.witness.agrees else "DIS")
            lines.append(
                (
                    row.name,
                    row.status,
                    f"{row.max_abs_error:.2e}",
                    f"{row.relative_error:.2e}",
                    f"{row.cosine:.6f}",
                    f"{row.tolerance:.2e}",
                    f"{row.ratio:.3g}",
                    witness,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        table = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
        ]
        verdict = "OK" if self.ok else "FAILED"
        title = f"verdict: {verdict} ({self.dtype}; K={NOISE_MULTIPLE:g}, T={TIE_MULTIPLE:g})"
        if self.first_bad_layer is not None:
            title += f"; first bad layer: {self.first_bad_layer}"
        tail = [f"  - {reason}" for reason in self.reasons]
        if self.kink:
            tail.append("  (non-differentiable point: disagreements there are not failures)")
        return "\n".join([title, *table, *tail])


# ----- measuring (pure, jit- and vmap-able; run with float64 enabled) -----------------

METRICS = ("distance", "max_abs", "scale", "magnitude", "cosine", "floor", "nonfinite")
"""What :func:`measure_quantities` returns per quantity (with the ``fd_*`` fields below)."""

WITNESS_METRICS = ("fd_value", "fd_error", "fd_kink", "fd_truth", "fd_candidate")
"""The finite-difference fields of a quantity, when witnesses are taken."""


def measure_quantities(
    candidates: Sequence[Array],
    truths: Sequence[Array],
    workings: Sequence[Array],
    working_truths: Sequence[Array],
    floor_scales: Sequence[float],
    directions: Sequence[Array] | None = None,
    magnitudes: Sequence[Array | None] | None = None,
) -> dict[str, Array]:
    """The distances of ``R`` quantities at once, each metric an ``(R,)`` float64 array.

    All quantities are flattened into one vector and every per-quantity sum is one
    segment sum: a handful of kernels instead of several per quantity (compile time).

    Args:
        candidates: ``c`` per quantity, at the working dtype.
        truths: ``t`` per quantity, float64, same shapes.
        workings: autodiff at the working dtype per quantity (for the floor).
        working_truths: the float64 truth ``workings`` are compared with (the same as
            ``truths`` except for float64 leaves, whose floor is measured in float32).
        floor_scales: per quantity, the factor applied to ``‖working - working_truth‖``
            (1, or ``u_64/u_32`` for float64).
        directions: unit directions per quantity for ``t·d`` and ``c·d`` (optional).
        magnitudes: per quantity, the elementwise sum of the *absolute values* of the
            terms that add up to it (``|Δ|ᵀ|A|/n`` for ``∂L/∂W``), or ``None`` for ``|t|``.
            Rounding error is relative to this, not to ``|t|``, when the terms cancel.

    Returns:
        ``distance ‖c-t‖``, ``max_abs``, ``scale ‖t‖``, ``magnitude`` (the norm of the
        magnitudes), ``cosine``, ``floor φ``,
        ``nonfinite`` (NaN/Inf count in ``c``), and with directions ``fd_truth``,
        ``fd_candidate``; plus ``working_nonfinite`` (NaN/Inf count in ``workings``).
    """
    sizes = [int(np.prod(np.shape(t))) for t in truths]
    count = len(sizes)
    segments = np.repeat(np.arange(count), sizes)

    def flat(arrays: Sequence[Array]) -> Array:
        return jnp.concatenate([jnp.ravel(a).astype(_F64) for a in arrays])

    c, t = flat(candidates), flat(truths)
    w, tw = flat(workings), flat(working_truths)
    if magnitudes is None:
        magnitudes = [None] * count
    m = flat([jnp.abs(t) if a is None else a for a, t in zip(magnitudes, truths, strict=True)])
    columns = [(c - t) ** 2, t * t, c * c, c * t, (w - tw) ** 2, m * m]
    columns += [(~jnp.isfinite(c)).astype(_F64), (~jnp.isfinite(w)).astype(_F64)]
    if directions is not None:
        d = flat(directions)
        columns += [t * d, c * d]
    sums = jax.ops.segment_sum(
        jnp.stack(columns, axis=1), segments, num_segments=count, indices_are_sorted=True
    )
    max_abs = jax.ops.segment_max(
        jnp.abs(c - t), segments, num_segments=count, indices_are_sorted=True
    )
    c_norm, t_norm = jnp.sqrt(sums[:, 2]), jnp.sqrt(sums[:, 1])
    product = c_norm * t_norm
    cosine = jnp.where(
        product > 0,
        sums[:, 3] / jnp.where(product > 0, product, 1.0),
        (c_norm == t_norm).astype(_F64),
    )
    metrics = {
        "distance": jnp.sqrt(sums[:, 0]),
        "max_abs": max_abs,
        "scale": t_norm,
        "cosine": cosine,
        "floor": jnp.sqrt(sums[:, 4]) * jnp.asarray(floor_scales, _F64),
        "magnitude": jnp.sqrt(sums[:, 5]),
        "nonfinite": sums[:, 6],
        "working_nonfinite": sums[:, 7],
    }
    if directions is not None:
        metrics["fd_truth"], metrics["fd_candidate"] = sums[:, 8], sums[:, 9]
    return metrics


def _upcast(tree: PyTree) -> PyTree:
    return _cast(tree, _F64)


def _cast(tree: PyTree, dtype: Any) -> PyTree:
    return jax.tree_util.tree_map(
        lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf,
        tree,
    )


def _nonfinite(tree: PyTree) -> Array:
    return sum(jnp.sum(~jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


def quantity_names(net: Network) -> list[str]:
    """The quantities of a network in measuring order: ``"delta/ℓ"``, ``"W/ℓ"``, ``"b/ℓ"``
    for ``ℓ = 1..L`` (no ``b`` without bias)."""
    kinds = ("delta", "W", "b") if net.bias else ("delta", "W")
    return [f"{kind}/{layer}" for layer in range(1, net.depth + 1) for kind in kinds]


def _quantities(net: Network, grads: Params, deltas: Sequence[Array]) -> list[Array]:
    """The arrays of :func:`quantity_names`, in order."""
    arrays = []
    for name in quantity_names(net):
        kind, layer = name.split("/")
        index = int(layer) - 1
        arrays.append(deltas[index] if kind == "delta" else grads[index][kind])
    return arrays


def _autodiff_quantities(net: Network, params: Params, x: Array, y: Array) -> list[Array]:
    """``jax.grad`` of the mean loss and the per-example ``δ``, in one backward pass.

    The loss is :meth:`Network.mean_loss` with a zero perturbation ``e^ℓ`` added to each
    ``z^ℓ`` (which changes no value): its gradient in the parameters is exactly
    ``jax.grad(net.mean_loss)``, and in ``e^ℓ`` it is ``δ^ℓ / n`` (examples do not
    interact), so ``δ^ℓ = n ∂L/∂e^ℓ``. One trace and one backward pass serve both, which
    matters for compile time. (:mod:`netcheck.autodiff` computes the same two things in
    two passes.)
    """
    batch = x.shape[0]
    zeros = [jnp.zeros((batch, width), x.dtype) for width in net.sizes[1:]]

    def mean_loss(params: Params, perturbations: list[Array]) -> Array:
        cache = net.forward_cache(params, x, perturbations)
        return jnp.mean(net.example_losses(cache, y))

    grads, scaled_deltas = jax.grad(mean_loss, argnums=(0, 1))(params, zeros)
    return _quantities(net, grads, [d * batch for d in scaled_deltas])


def _floor_inputs(
    net: Network, params: Params, x: Array, y: Array, truths: list[Array]
) -> tuple[list[Array], list[Array], float]:
    """Autodiff at the working dtype, the truth to compare it with, and the floor's scale.

    For float64 the working dtype *is* the truth's, so the floor is measured in float32 at
    the point rounded to float32 (against float64 autodiff at that same rounded point) and
    scaled by ``u_64 / u_32``.
    """
    if jnp.dtype(x.dtype) != _F64:
        return _autodiff_quantities(net, params, x, y), truths, 1.0
    params, x, y = _cast(params, _F32), x.astype(_F32), y.astype(_F32)
    scale = unit_roundoff(_F64) / unit_roundoff(_F32)
    working_truths = _autodiff_quantities(net, _upcast(params), x.astype(_F64), y.astype(_F64))
    return _autodiff_quantities(net, params, x, y), working_truths, scale


def _network_magnitudes(
    net: Network, p64: Params, x64: Array, truths: list[Array]
) -> list[Array | None]:
    """The summed absolute terms of each weight and bias gradient (float64 truth).

    ``∂L/∂W_ℓ = Σ_i δ^ℓ_i (a^{ℓ-1}_i)ᵀ / n`` and ``∂L/∂b_ℓ = Σ_i δ^ℓ_i / n`` are sums that
    can cancel (a single output bias of a balanced batch is near 0); rounding then scales
    with ``|Δ^ℓ|ᵀ|A^{ℓ-1}|/n`` and ``Σ_i |δ^ℓ_i|/n``, which are what the dtype floor uses.
    ``δ^ℓ`` keeps ``|t|`` (``None``).
    """
    activations = net.forward_cache(p64, x64).activations
    batch = x64.shape[0]
    named = dict(zip(quantity_names(net), truths, strict=True))
    magnitudes: list[Array | None] = []
    for name in quantity_names(net):
        kind, layer_text = name.split("/")
        delta = jnp.abs(named[f"delta/{layer_text}"])
        if kind == "W":
            magnitudes.append(delta.T @ jnp.abs(activations[int(layer_text) - 1]) / batch)
        elif kind == "b":
            magnitudes.append(jnp.sum(delta, axis=0) / batch)
        else:
            magnitudes.append(None)
    return magnitudes


def witness_directions(net: Network, batch: int, seed: int) -> list[np.ndarray]:
    """Random unit directions (float64, NumPy) for the witnesses, one per quantity.

    Drawn on the host with ``numpy.random.default_rng(seed)``: reproducible, and no random
    number generator has to be compiled into the measuring program.

    Args:
        net: the network.
        batch: the batch size (``δ^ℓ`` directions are ``(batch, n_ℓ)``).
        seed: the seed.

    Returns:
        In :func:`quantity_names` order, arrays shaped like each quantity, each of norm 1.
    """
    rng = np.random.default_rng(seed)
    directions = []
    for name in quantity_names(net):
        kind, layer_text = name.split("/")
        layer = int(layer_text)
        n_out, n_in = net.sizes[layer], net.sizes[layer - 1]
        shape = {"delta": (batch, n_out), "W": (n_out, n_in), "b": (n_out,)}[kind]
        directions.append(finite_diff.random_direction(rng, np.zeros(shape)))
    return directions


def _network_witnesses(
    net: Network, params: Params, x: Array, y: Array, directions: Sequence[Array]
) -> finite_diff.FDEstimate:
    """Float64 finite differences along each quantity's direction, all in one batch.

    The loss differentiated is the *summed* per-example loss of the forward pass with a
    perturbation ``e^ℓ`` added to each ``z^ℓ``: its gradient in ``e^ℓ`` is the per-example
    ``δ^ℓ``, and divided by the batch size its gradient in ``W_ℓ, b_ℓ`` is that of the
    mean loss. Every (quantity, step) point is one row of a single vmapped evaluation.

    Returns:
        An :class:`~netcheck.finite_diff.FDEstimate` with fields of shape ``(R,)``.
    """
    p64, x64, y64 = _upcast(params), x.astype(_F64), y.astype(_F64)
    batch = x.shape[0]
    zero_params = jax.tree_util.tree_map(jnp.zeros_like, p64)
    zero_perturbations = [jnp.zeros((batch, width), _F64) for width in net.sizes[1:]]
    moves = []
    row_scale = []
    for name, direction in zip(quantity_names(net), directions, strict=True):
        kind, layer_text = name.split("/")
        index = int(layer_text) - 1
        params_move = [dict(layer) for layer in zero_params]
        perturbation_move = list(zero_perturbations)
        if kind == "delta":
            perturbation_move[index] = direction
            row_scale.append(1.0)
        else:
            params_move[index][kind] = direction
            row_scale.append(1.0 / batch)
        moves.append((params_move, perturbation_move))
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *moves)
    offsets = finite_diff.ladder_offsets(finite_diff.STEPS, _F64)

    def summed_loss(move: Any, t: Array) -> Array:
        params_move, perturbation_move = move
        moved = jax.tree_util.tree_map(lambda p, d: p + t * d, p64, params_move)
        perturbations = [t * e for e in perturbation_move]
        return jnp.sum(net.example_losses(net.forward_cache(moved, x64, perturbations), y64))

    values = jax.vmap(lambda move: jax.vmap(lambda t: summed_loss(move, t))(offsets))(stacked)
    return finite_diff.ladder_estimate(values * jnp.asarray(row_scale, _F64)[:, None])


def measure_network(
    net: Network,
    grads: Params,
    deltas: Sequence[Array],
    params: Params,
    x: Array,
    y: Array,
    directions: Sequence[Array] | None = None,
) -> dict[str, Any]:
    """Everything the verdict needs about one network case, as arrays (jit/vmap-able).

    Must run with float64 enabled (``jax.enable_x64(True)``). No input checks.

    Args:
        net: the network.
        grads: the candidate gradient, the pytree of ``params``, at the working dtype.
        deltas: the candidate ``[δ^1, ..., δ^L]``, each ``(batch, n_ℓ)``.
        params, x, y: the point, all at the working dtype.
        directions: unit directions for the finite-difference witnesses, one per
            quantity (:func:`witness_directions`), or ``None`` for no witnesses.

    Returns:
        ``{"metrics": {metric: (R,)} for the R quantities of :func:`quantity_names`
        (:data:`METRICS`, and :data:`WITNESS_METRICS` with directions), "loss": the
        working-dtype loss, "loss_truth": the float64 loss, "truth_nonfinite": NaN/Inf
        count of the truth, "kinks": (L,) pre-activations exactly at a kink}``.
    """
    return measure_network_many(net, [(grads, deltas)], params, x, y, directions)[0]


def measure_network_many(
    net: Network,
    candidates: Sequence[tuple[Params, Sequence[Array]]],
    params: Params,
    x: Array,
    y: Array,
    directions: Sequence[Array] | None = None,
) -> list[dict[str, Any]]:
    """:func:`measure_network` for several candidates ``(grads, deltas)`` at one point.

    The truth, the floors and the witnesses are computed once and shared, so one compiled
    program judges many gradients (the kill matrix runs every mutant this way).
    """
    p64, x64, y64 = _upcast(params), x.astype(_F64), y.astype(_F64)
    truths = _autodiff_quantities(net, p64, x64, y64)
    workings, working_truths, scale = _floor_inputs(net, params, x, y, truths)
    magnitudes = _network_magnitudes(net, p64, x64, truths)
    witness = {}
    if directions is not None:
        estimate = _network_witnesses(net, params, x, y, directions)
        witness = {"fd_value": estimate.value, "fd_error": estimate.error, "fd_kink": estimate.kink}
    cache = net.forward_cache(params, x)
    kinked = [
        net.layer_activation(layer).name in KINKED_ACTIVATIONS for layer in range(1, net.depth + 1)
    ]
    kinks = jnp.stack(
        [
            jnp.sum(z == 0, dtype=jnp.int32) if flag else jnp.zeros((), jnp.int32)
            for z, flag in zip(cache.pre_activations, kinked, strict=True)
        ]
    )
    shared = {
        "loss": net.example_losses(cache, y).mean().astype(_F64),
        "loss_truth": net.mean_loss_unchecked(p64, x64, y64),
        "truth_nonfinite": _nonfinite(truths),
        "kinks": kinks,
    }
    measurements = []
    for grads, deltas in candidates:
        metrics = measure_quantities(
            _quantities(net, grads, deltas),
            truths,
            workings,
            working_truths,
            [scale] * len(truths),
            directions,
            magnitudes,
        )
        measurements.append({"metrics": {**metrics, **witness}, **shared})
    return measurements


# ----- judging (host side, plain numbers) --------------------------------------------


def judge_quantity(
    name: str,
    layer: int | None,
    kind: str,
    metrics: dict[str, Any],
    dtype: Any,
    kink_point: bool = False,
    truth_nonfinite: bool = False,
) -> Agreement:
    """Turn one quantity's numbers from :func:`measure_quantities` into an :class:`Agreement`.

    The rule: ``distance ≤ K φ + T u ‖m‖`` (see the module docstring), NaN/Inf failing
    first, a disagreement at a non-differentiable point reported as ``"kink"``.

    Args:
        name, layer, kind: how the row is named.
        metrics: this quantity's entry of every metric of :func:`measure_quantities`
            (plus the optional ``fd_*`` fields), as scalars.
        dtype: the working dtype of the candidate.
        kink_point: the point is non-differentiable (exact relu zero, or an FD kink).
        truth_nonfinite: the float64 truth has NaN/Inf somewhere.

    Returns:
        The :class:`Agreement` row.
    """
    values = {key: float(value) for key, value in metrics.items()}
    u = unit_roundoff(dtype)
    distance, scale, floor = values["distance"], values["scale"], values["floor"]
    magnitude = values.get("magnitude", scale)
    dtype_floor = TIE_MULTIPLE * u * magnitude
    tolerance = NOISE_MULTIPLE * floor + dtype_floor
    floor_source = (
        "autodiff float32 vs float64, x u64/u32"
        if jnp.dtype(dtype) == _F64
        else f"autodiff {jnp.dtype(dtype).name} vs float64"
    )
    why = (
        f"tol = K*floor + T*u*|terms| = {NOISE_MULTIPLE:g}*{floor:.3g} ({floor_source}) "
        f"+ {TIE_MULTIPLE:g}*{u:.3g}*{magnitude:.3g}"
    )
    witness = None
    witness_bad = False
    if "fd_value" in values:
        fd_tolerance = FD_MULTIPLE * values["fd_error"] + FD_RELATIVE * (
            abs(values["fd_truth"]) + scale
        )
        fd_kink = bool(metrics["fd_kink"])
        agrees = fd_kink or abs(values["fd_value"] - values["fd_truth"]) <= fd_tolerance
        witness = Witness(
            values["fd_value"],
            values["fd_error"],
            values["fd_truth"],
            values["fd_candidate"],
            fd_kink,
            bool(agrees),
        )
        witness_bad = not agrees and math.isfinite(values["fd_truth"])
        kink_point = kink_point or fd_kink
    nonfinite = int(values["nonfinite"])
    if nonfinite:
        status, why = "nonfinite", f"{nonfinite} NaN/Inf value(s) in the gradient under test"
    elif truth_nonfinite:
        status, why = "nonfinite", "float64 autodiff is NaN/Inf at this point"
    elif values["working_nonfinite"]:
        status = "nonfinite"
        why = f"autodiff in {jnp.dtype(dtype).name} is NaN/Inf here, so no noise floor exists"
    elif witness_bad:
        status = "fail"
        why = (
            f"float64 finite differences ({witness.value:.6g} ± {witness.error:.2g}) "
            f"disagree with float64 autodiff ({witness.truth:.6g}): the reference is suspect"
        )
    elif not distance <= tolerance:
        status = "kink" if kink_point else "fail"
        why = f"distance {distance:.3g} > {why}"
        if kink_point:
            why += " at a non-differentiable point"
    else:
        status = "ok"
    c_minus_t_rel = distance / scale if scale > 0 else (0.0 if distance == 0 else math.inf)
    return Agreement(
        name=name,
        layer=layer,
        kind=kind,
        status=status,
        max_abs_error=values["max_abs"],
        relative_error=c_minus_t_rel,
        cosine=values["cosine"],
        distance=distance,
        tolerance=tolerance,
        noise_floor=floor,
        dtype_floor=dtype_floor,
        why=why,
        witness=witness,
    )


def network_verdict(net: Network, dtype: Any, measurement: dict[str, Any]) -> Verdict:
    """Build the :class:`Verdict` of one case from :func:`measure_network`'s numbers.

    Args:
        net: the network.
        dtype: the working dtype.
        measurement: :func:`measure_network`'s output for one case (arrays or numbers).

    Returns:
        The verdict, rows from layer ``L`` down to 1.
    """
    kinks = [int(count) for count in measurement["kinks"]]
    metrics = measurement["metrics"]
    fd_kink = bool(np.any(metrics["fd_kink"])) if "fd_kink" in metrics else False
    kink_point = fd_kink or any(kinks)
    truth_bad = int(measurement["truth_nonfinite"]) > 0
    rows: dict[str, Agreement] = {}
    for index, name in enumerate(quantity_names(net)):
        kind, layer_text = name.split("/")
        label = f"δ^{layer_text}" if kind == "delta" else f"{kind}_{layer_text}"
        values = {metric: array[index] for metric, array in metrics.items()}
        rows[name] = judge_quantity(
            label, int(layer_text), kind, values, dtype, kink_point, truth_bad
        )
    layers = [
        LayerAgreement(
            layer,
            rows[f"delta/{layer}"],
            rows[f"W/{layer}"],
            rows.get(f"b/{layer}"),
            kinks[layer - 1],
        )
        for layer in range(1, net.depth + 1)
    ]
    reasons = _loss_reasons(measurement, dtype)
    ordered = [row for layer in reversed(layers) for row in layer.rows]
    reasons += [f"{row.name}: {row.why}" for row in ordered if not row.ok]
    first_bad = None
    if reasons:
        bad_delta = [lay.layer for lay in reversed(layers) if not lay.delta.ok]
        bad_any = [lay.layer for lay in reversed(layers) if not lay.ok]
        first_bad = (bad_delta or bad_any or [None])[0]
    return Verdict(
        dtype=jnp.dtype(dtype).name,
        rows=tuple(ordered),
        layers=tuple(layers),
        reasons=tuple(reasons),
        first_bad_layer=first_bad,
        kink=kink_point,
    )


def _loss_reasons(measurement: dict[str, Any], dtype: Any) -> list[str]:
    reasons = []
    if not math.isfinite(float(measurement["loss"])):
        reasons.append(f"loss: NaN/Inf at {jnp.dtype(dtype).name}")
    if not math.isfinite(float(measurement["loss_truth"])):
        reasons.append("loss: NaN/Inf in float64")
    return reasons


# ----- the public entry points -------------------------------------------------------


def verify(
    net: Network,
    params: Params,
    x: Any,
    y: Any,
    *,
    grad_fn: GradFn | None = None,
    deltas_fn: DeltasFn | None = None,
    seed: int = 0,
    witness: bool = True,
) -> Verdict:
    """Check a manual backprop against autodiff, layer by layer, with calibrated tolerances.

    Args:
        net: the network.
        params: its parameters, one floating dtype (the working dtype).
        x: inputs ``(batch, n_0)``; converted to the parameters' dtype.
        y: targets ``(batch, n_L)``; converted likewise.
        grad_fn: the gradient under test, ``(net, params, x, y) -> grads`` (the pytree of
            ``params``); default :func:`netcheck.backprop.manual_grad` (compiled).
        deltas_fn: its ``δ``, ``(net, params, x, y) -> [δ^1..δ^L]`` each ``(batch, n_ℓ)``;
            default :func:`netcheck.backprop.manual_deltas` (compiled).
        seed: seeds the finite-difference directions.
        witness: take the float64 finite-difference witnesses (on by default).

    Returns:
        The :class:`Verdict`.

    Raises:
        TypeError, ValueError: bad network, parameters, data or functions, or a gradient
            function whose output does not have the structure, shapes and dtype expected.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a netcheck.Network, got {type(net).__name__}")
    x, y = net.check_batch(params, x, y)
    grad_fn = backprop.manual_grad_jit if grad_fn is None else grad_fn
    deltas_fn = backprop.manual_deltas_jit if deltas_fn is None else deltas_fn
    _check_callable(grad_fn, "grad_fn")
    _check_callable(deltas_fn, "deltas_fn")
    seed = _check_seed(seed)
    grads = grad_fn(net, params, x, y)
    deltas = deltas_fn(net, params, x, y)
    _check_like(grads, params, "grad_fn(net, params, x, y)")
    _check_deltas(net, deltas, x)
    directions = witness_directions(net, x.shape[0], seed) if witness else None
    with jax.enable_x64(True):
        measurement = _measure_network_jit(net, grads, list(deltas), params, x, y, directions)
        measurement = jax.tree_util.tree_map(np.asarray, measurement)
    return network_verdict(net, x.dtype, measurement)


_measure_network_jit = jax.jit(measure_network, static_argnums=0, compiler_options=FAST_COMPILE)


def check_gradient(
    loss_fn: Callable[..., Array], grad_fn: Callable[..., PyTree], params: PyTree, *args: Any
) -> Verdict:
    """Judge a hand-written gradient of any pytree, leaf by leaf, the way :func:`verify` does.

    ``grad_fn(params, *args)`` is judged against ``jax.grad(loss_fn)(params, *args)``: the
    truth in float64 on the upcast point, the noise floor from ``jax.grad(loss_fn)`` at
    each leaf's own dtype, a float64 finite-difference witness per leaf. A custom VJP is
    checked by passing the plain loss as ``loss_fn`` and ``jax.grad`` of the custom one as
    ``grad_fn``.

    Args:
        loss_fn: ``(params, *args) -> scalar``, differentiable by JAX.
        grad_fn: ``(params, *args) -> pytree like params``, the gradient under test.
        params: a pytree of floating arrays.
        *args: further arguments of both functions (floating ones are upcast for the truth).

    Returns:
        A :class:`Verdict` with one row per leaf, named by ``jax.tree_util.keystr``.

    Raises:
        TypeError, ValueError: non-callable functions, non-floating leaves, or a gradient
            whose structure, shapes or dtypes differ from ``params``.
    """
    _check_callable(loss_fn, "loss_fn")
    _check_callable(grad_fn, "grad_fn")
    leaves_with_paths = jax.tree_util.tree_leaves_with_path(params)
    if not leaves_with_paths:
        raise ValueError("params has no leaves to check")
    for path, leaf in leaves_with_paths:
        where = f"params{jax.tree_util.keystr(path)}"
        if not hasattr(leaf, "dtype") or not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"{where} must be a floating array, got {type(leaf).__name__}")
    grads = grad_fn(params, *args)
    _check_like(grads, params, "grad_fn(params, *args)")
    working = jax.grad(loss_fn)(params, *args)
    loss = loss_fn(params, *args)
    with jax.enable_x64(True):
        measurement = _measure_pytree(loss_fn, grads, working, params, args, seed=0)
    metrics = measurement["metrics"]
    kink_point = bool(np.any(metrics["fd_kink"]))
    truth_bad = int(measurement["truth_nonfinite"]) > 0
    rows = []
    for index, (path, leaf) in enumerate(leaves_with_paths):
        values = {metric: array[index] for metric, array in metrics.items()}
        name = jax.tree_util.keystr(path) or "params"
        rows.append(judge_quantity(name, None, "leaf", values, leaf.dtype, kink_point, truth_bad))
    reasons = []
    if not math.isfinite(float(loss)):
        reasons.append("loss: NaN/Inf at the working dtype")
    if not math.isfinite(float(measurement["loss_truth"])):
        reasons.append("loss: NaN/Inf in float64")
    reasons += [f"{row.name}: {row.why}" for row in rows if not row.ok]
    dtypes = {jnp.dtype(leaf.dtype).name for _, leaf in leaves_with_paths}
    return Verdict(
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
        rows=tuple(rows),
        layers=(),
        reasons=tuple(reasons),
        first_bad_layer=None,
        kink=kink_point,
    )


def _measure_pytree(
    loss_fn: Callable[..., Array],
    grads: PyTree,
    working: PyTree,
    params: PyTree,
    args: tuple[Any, ...],
    seed: int,
) -> dict[str, Any]:
    """The per-leaf numbers of :func:`check_gradient` (float64 must be enabled).

    Returns:
        ``{"metrics": {metric: (R,) NumPy}, "loss_truth": float, "truth_nonfinite": int}``.
    """
    rng = np.random.default_rng(seed)
    directions = [
        finite_diff.random_direction(rng, leaf) for leaf in jax.tree_util.tree_leaves(params)
    ]
    measured = _measure_pytree_jit(loss_fn, grads, working, params, args, directions)
    return jax.tree_util.tree_map(np.asarray, measured)


def _measure_pytree_core(
    loss_fn: Callable[..., Array],
    grads: PyTree,
    working: PyTree,
    params: PyTree,
    args: tuple[Any, ...],
    directions: list[Array],
) -> dict[str, Any]:
    """The compiled part of :func:`_measure_pytree`."""
    p64, args64 = _upcast(params), _upcast(args)
    truths = jax.tree_util.tree_leaves(jax.grad(loss_fn)(p64, *args64))
    leaves = jax.tree_util.tree_leaves(params)
    workings = jax.tree_util.tree_leaves(working)
    working_truths = list(truths)
    scales = [1.0] * len(leaves)
    if any(jnp.dtype(leaf.dtype) == _F64 for leaf in leaves):
        # float64 leaves: the floor is measured in float32 and scaled by u_64/u_32.
        p32, args32 = _cast(params, _F32), _cast(args, _F32)
        working32 = jax.tree_util.tree_leaves(jax.grad(loss_fn)(p32, *args32))
        truth32 = jax.tree_util.tree_leaves(jax.grad(loss_fn)(_upcast(p32), *_upcast(args32)))
        for index, leaf in enumerate(leaves):
            if jnp.dtype(leaf.dtype) == _F64:
                workings[index], working_truths[index] = working32[index], truth32[index]
                scales[index] = unit_roundoff(_F64) / unit_roundoff(_F32)
    flat_p64, treedef = jax.tree_util.tree_flatten(p64)
    metrics = measure_quantities(
        jax.tree_util.tree_leaves(grads), truths, workings, working_truths, scales, directions
    )
    estimates = []
    for index, direction in enumerate(directions):

        def f(leaf: Array, index: int = index) -> Array:
            replaced = list(flat_p64)
            replaced[index] = leaf
            return loss_fn(jax.tree_util.tree_unflatten(treedef, replaced), *args64)

        estimates.append(finite_diff.directional_derivative(f, flat_p64[index], direction))
    metrics["fd_value"] = jnp.stack([e.value for e in estimates])
    metrics["fd_error"] = jnp.stack([e.error for e in estimates])
    metrics["fd_kink"] = jnp.stack([e.kink for e in estimates])
    return {
        "metrics": metrics,
        "loss_truth": loss_fn(p64, *args64),
        "truth_nonfinite": _nonfinite(truths),
    }


_measure_pytree_jit = jax.jit(_measure_pytree_core, static_argnums=0, compiler_options=FAST_COMPILE)


# ----- input checks ------------------------------------------------------------------


def _check_callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {type(fn).__name__}")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return int(seed)


def _check_like(result: Any, params: PyTree, what: str) -> None:
    """Refuse a gradient whose structure, shapes or dtypes differ from ``params``."""
    expected = jax.tree_util.tree_structure(params)
    actual = jax.tree_util.tree_structure(result)
    if expected != actual:
        raise ValueError(f"{what} must have the structure of params {expected}, got {actual}")
    for (path, leaf), got in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(result), strict=True
    ):
        where = f"{what}{jax.tree_util.keystr(path)}"
        if not hasattr(got, "shape") or tuple(got.shape) != tuple(leaf.shape):
            raise ValueError(
                f"{where} must have shape {tuple(leaf.shape)}, "
                f"got {tuple(getattr(got, 'shape', ()))}"
            )
        if jnp.dtype(got.dtype) != jnp.dtype(leaf.dtype):
            raise ValueError(f"{where} must have dtype {leaf.dtype}, got {got.dtype}")


def _check_deltas(net: Network, deltas: Any, x: Array) -> None:
    if not isinstance(deltas, (list, tuple)):
        raise TypeError(
            f"deltas_fn must return a list of {net.depth} arrays [δ^1..δ^L], "
            f"got {type(deltas).__name__}"
        )
    if len(deltas) != net.depth:
        raise ValueError(f"deltas_fn must return {net.depth} arrays [δ^1..δ^L], got {len(deltas)}")
    for layer, delta in enumerate(deltas, start=1):
        expected = (x.shape[0], net.sizes[layer])
        if not hasattr(delta, "shape") or tuple(delta.shape) != expected:
            raise ValueError(
                f"deltas_fn(...)[{layer - 1}] (δ^{layer}) must have shape {expected}, "
                f"got {tuple(getattr(delta, 'shape', ()))}"
            )
        if jnp.dtype(delta.dtype) != jnp.dtype(x.dtype):
            raise ValueError(f"δ^{layer} must have dtype {x.dtype}, got {delta.dtype}")


def _safe_ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.inf


def jsonable(value: Any) -> Any:
    """``value`` for JSON: a non-finite float becomes ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
