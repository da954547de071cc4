"""``verify``: a network's manual backprop measured layer by layer, in one compiled program.

The quantities of a network, in measuring order, are ``δ^ℓ`` (per example,
``(batch, n_ℓ)``), ``∂L/∂W_ℓ`` and ``∂L/∂b_ℓ`` for ``ℓ = 1..L``. Their truth, the floors,
the magnitudes of the summed terms and the joint finite-difference witness all come from
one jit-compiled program per (network, shapes, dtype), so a second call with new values
does not recompile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.nn import Network, Params, backprop, hvp
from netcheck.verifier import measure
from netcheck.verifier.checks import (
    WrongDtype,
    candidate_in_float64,
    check_callable,
    check_concrete,
    check_like,
    check_seed,
)
from netcheck.verifier.maps import HessianMap, combine
from netcheck.verifier.measure import F64
from netcheck.verifier.point import candidate_leaves, split_point
from netcheck.verifier.second_order import HVP_DIRECTIONS, hvp_verdict
from netcheck.verifier.tolerance import (
    DEFAULT_CONSTANTS,
    Constants,
    checked_constants,
    judge_quantity,
)
from netcheck.verifier.verdict import Agreement, LayerAgreement, Verdict
from netcheck.verifier.witness import witness_reason, witness_record

Array = jax.Array
GradFn = Callable[[Network, Params, Array, Array], Params]
DeltasFn = Callable[[Network, Params, Array, Array], list[Array]]
HvpFn = Callable[[Network, Params, Array, Array, Params], Params]

KINKED_ACTIVATIONS = frozenset({"relu", "leaky_relu"})
"""Activations whose derivative jumps at ``z = 0`` (non-differentiable points)."""


def quantity_names(net: Network) -> list[str]:
    """The quantities of a network in measuring order: ``"delta/ℓ"``, ``"W/ℓ"``, ``"b/ℓ"``
    for ``ℓ = 1..L`` (no ``b`` without bias)."""
    kinds = ("delta", "W", "b") if net.bias else ("delta", "W")
    return [f"{kind}/{layer}" for layer in range(1, net.depth + 1) for kind in kinds]


def quantities(net: Network, grads: Params, deltas: Sequence[Array]) -> list[Array]:
    """The arrays of ``quantity_names``, in order."""
    arrays = []
    for name in quantity_names(net):
        kind, layer = name.split("/")
        index = int(layer) - 1
        arrays.append(deltas[index] if kind == "delta" else grads[index][kind])
    return arrays


def autodiff_quantities(net: Network, params: Params, x: Array, y: Array) -> list[Array]:
    """``jax.grad`` of the mean loss and the per-example ``δ``, in one backward pass.

    The loss is ``Network.mean_loss`` with a zero perturbation ``e^ℓ`` added to each
    ``z^ℓ`` (which changes no value): its gradient in the parameters is exactly
    ``jax.grad(net.mean_loss)``, and in ``e^ℓ`` it is ``δ^ℓ / n`` (examples do not
    interact), so ``δ^ℓ = n ∂L/∂e^ℓ``.
    """
    batch = x.shape[0]
    zeros = [jnp.zeros((batch, width), x.dtype) for width in net.sizes[1:]]

    def mean_loss(params: Params, perturbations: list[Array]) -> Array:
        cache = net.forward_cache(params, x, perturbations)
        return jnp.mean(net.example_losses(cache, y))

    grads, scaled_deltas = jax.grad(mean_loss, argnums=(0, 1))(params, zeros)
    return quantities(net, grads, [d * batch for d in scaled_deltas])


def delta_magnitudes(net: Network, params: Params, cache: Any, y: Array) -> list[Array]:
    """The summed absolute terms of each ``δ^ℓ`` (float64), ``[m^1..m^L]``, ``(batch, n_ℓ)``.

    The δ recursion adds terms that can cancel, and rounding scales with the terms, not
    with the sum: ``δ^L = ŷ - y`` (fused losses) or ``G(L)(ŷ - y)`` (squared error, the
    only loss not fused), whose terms are ``|ŷ| + |y|``; a softmax output's Jacobian
    ``diag(s) - s sᵀ`` adds ``s ⊙ e`` and ``-s (s·e)``; each ``δ^ℓ = G(ℓ) W_{ℓ+1}ᵀ δ^{ℓ+1}``
    sums over ``W``'s columns. So ``m^L = |ŷ| + |y|`` (fused), ``|g'(z^L)| ⊙ (|ŷ| + |y|)``
    or ``s ⊙ (e + s·e)`` with ``e = |ŷ| + |y|`` (softmax), and
    ``m^ℓ = |g'(z^ℓ)| ⊙ (|W_{ℓ+1}|ᵀ m^{ℓ+1})``: each at least ``|δ^ℓ|``.
    """
    z_out, y_hat = cache.pre_activations[-1], cache.activations[-1]
    terms = jnp.abs(y_hat) + jnp.abs(y)
    if net.loss_fn.fused:
        top = terms
    elif net.output.elementwise:
        top = jnp.abs(net.output.derivative(z_out, y_hat)) * terms
    else:  # softmax: ŷ = s ≥ 0
        top = y_hat * (terms + jnp.sum(y_hat * terms, axis=-1, keepdims=True))
    magnitudes = [top]
    for layer in range(net.depth - 1, 0, -1):
        g_prime = net.hidden.derivative(cache.pre_activations[layer - 1], cache.activations[layer])
        magnitudes.append(jnp.abs(g_prime) * (magnitudes[-1] @ jnp.abs(params[layer]["W"])))
    return magnitudes[::-1]


def network_magnitudes(net: Network, p64: Params, x64: Array, y64: Array) -> list[Array]:
    """The summed absolute terms of every quantity (float64), in ``quantity_names``' order.

    ``δ^ℓ``: ``delta_magnitudes``. ``∂L/∂W_ℓ = Σ_i δ^ℓ_i (a^{ℓ-1}_i)ᵀ / n`` and
    ``∂L/∂b_ℓ = Σ_i δ^ℓ_i / n`` are sums that can cancel too (a single output bias of a
    balanced batch is near 0); rounding then scales with ``(M^ℓ)ᵀ|A^{ℓ-1}|/n`` and
    ``Σ_i m^ℓ_i/n``.
    """
    cache = net.forward_cache(p64, x64)
    deltas = delta_magnitudes(net, p64, cache, y64)
    batch = x64.shape[0]
    magnitudes: list[Array] = []
    for name in quantity_names(net):
        kind, layer_text = name.split("/")
        layer = int(layer_text)
        delta = deltas[layer - 1]
        if kind == "W":
            magnitudes.append(delta.T @ jnp.abs(cache.activations[layer - 1]) / batch)
        elif kind == "b":
            magnitudes.append(jnp.sum(delta, axis=0) / batch)
        else:
            magnitudes.append(delta)
    return magnitudes


def network_witness(
    net: Network, p64: Params, x64: Array, y64: Array, noise: Sequence[Array]
) -> tuple[Any, list[Array], list[float]]:
    """The joint finite-difference witness: one float64 step ladder for every quantity.

    The function differentiated is the *summed* per-example loss ``S`` with a perturbation
    ``e^ℓ`` added to each ``z^ℓ``, moved along one direction over all parameters and
    perturbations at once (each scaled to its own size, so steps are relative: parameters
    by their root-mean-square, ``e^ℓ`` by that of ``z^ℓ``). Its derivative is
    ``n Σ ⟨∂L/∂θ, d_θ⟩ + Σ_ℓ ⟨δ^ℓ, d_e^ℓ⟩``: the quantities' weights are ``n`` for
    ``W, b`` and 1 for ``δ``.

    Args:
        net, p64, x64, y64: the float64 point.
        noise: standard-normal arrays shaped like the quantities, in
            ``quantity_names`` order (``witness_noise``).

    Returns:
        ``(estimate, directions, weights)``, directions and weights in
        ``quantity_names`` order.
    """
    batch = x64.shape[0]
    names = quantity_names(net)
    is_delta = [name.startswith("delta") for name in names]
    param_names = [name for name, delta in zip(names, is_delta, strict=True) if not delta]
    param_directions = iter(
        measure.relative_direction(
            [n for n, delta in zip(noise, is_delta, strict=True) if not delta],
            [_param(p64, name) for name in param_names],
        )
    )
    z_sizes = [jnp.sqrt(jnp.mean(z * z)) for z in net.forward_cache(p64, x64).pre_activations]
    directions, weights, start = [], [], []
    for name, delta, draw in zip(names, is_delta, noise, strict=True):
        layer = int(name.split("/")[1])
        if delta:
            z_size = z_sizes[layer - 1]
            directions.append(draw.astype(F64) * jnp.where(z_size > 0, z_size, 1.0))
            weights.append(1.0)
            start.append(jnp.zeros((batch, net.sizes[layer]), F64))
        else:
            directions.append(next(param_directions))
            weights.append(float(batch))
            start.append(_param(p64, name))

    def summed(moved: list[Array]) -> Array:
        moved_params = [dict(layer) for layer in p64]
        perturbations = []
        for name, value in zip(names, moved, strict=True):
            kind, layer_text = name.split("/")
            if kind == "delta":
                perturbations.append(value)
            else:
                moved_params[int(layer_text) - 1][kind] = value
        return jnp.sum(net.example_losses(net.forward_cache(moved_params, x64, perturbations), y64))

    return measure.directional_witness(summed, start, directions), directions, weights


def _param(params: Params, name: str) -> Array:
    """The parameter leaf of a ``"W/ℓ"`` or ``"b/ℓ"`` quantity."""
    kind, layer_text = name.split("/")
    return params[int(layer_text) - 1][kind]


def _kinks(net: Network, params: Params, x: Array) -> Array:
    """Per layer, pre-activations exactly at a kink (relu/leaky_relu at 0), ``(L,)``."""
    cache = net.forward_cache(params, x)
    counts = []
    for layer, z in enumerate(cache.pre_activations, start=1):
        kinked = net.layer_activation(layer).name in KINKED_ACTIVATIONS
        counts.append(jnp.sum(z == 0, dtype=jnp.int32) if kinked else jnp.zeros((), jnp.int32))
    return jnp.stack(counts)


def network_references(
    net: Network,
    params: Params,
    x: Array,
    y: Array,
    noise: Sequence[Array] | None,
    want_formula: bool,
) -> measure.References:
    """The truth, floors, magnitudes and witness of a network point (float64 enabled).

    Args:
        net: the network.
        params, x, y: the point, all at the working dtype.
        noise: the witness direction's noise, one standard-normal array per quantity
            (``witness_noise``), or ``None`` for no witness.
        want_formula: some candidate has a float64 run (the formula part needs the float32
            stand-in's floor).

    Returns:
        The ``References``; ``shared`` holds ``"loss"``,
        ``"loss_truth"``, ``"truth_nonfinite"`` and ``"kinks"`` ``(L,)`` (pre-activations
        exactly at a kink, at the working dtype or in float64).
    """
    p64, x64, y64 = measure.upcast(params), x.astype(F64), y.astype(F64)
    truths = autodiff_quantities(net, p64, x64, y64)
    floors = measure.floors(
        lambda point: autodiff_quantities(net, *point),
        (params, x, y),
        truths,
        [x.dtype] * len(truths),
        want_formula,
    )
    shared = {
        "loss": net.mean_loss_unchecked(params, x, y).astype(F64),
        "loss_truth": net.mean_loss_unchecked(p64, x64, y64),
        "truth_nonfinite": measure.nonfinite_count(truths),
        "kinks": _kinks(net, params, x) + _kinks(net, p64, x64),
    }
    refs = measure.References(truths, floors, network_magnitudes(net, p64, x64, y64), shared)
    if noise is None:
        return refs
    estimate, directions, weights = network_witness(net, p64, x64, y64, noise)
    # A pre-activation exactly at a kink: the differences straddle it and average the two
    # one-sided slopes, autodiff takes one subgradient; the witness abstains, as the rows do.
    estimate = estimate._replace(kink=estimate.kink | (jnp.sum(shared["kinks"]) > 0))
    return refs._replace(estimate=estimate, directions=directions, weights=weights)


def measure_network_many(
    net: Network,
    candidates: Sequence[tuple[Params, Sequence[Array], Params | None, Sequence[Array] | None]],
    params: Params,
    x: Array,
    y: Array,
    noise: Sequence[Array] | None = None,
) -> list[dict[str, Any]]:
    """Everything the verdicts need about several candidates at one point, as arrays.

    Must run with float64 enabled. No input checks. The references are computed once and
    shared (the kill matrix judges every planted bug with one program this way).

    Args:
        net: the network.
        candidates: ``(grads, deltas, grads64, deltas64)`` per candidate: the candidate
            at the working dtype, and run in float64 on the upcast point (``None, None``
            when it cannot run in float64).
        params, x, y: the point, all at the working dtype.
        noise: the witness direction's noise (see ``network_references``).

    Returns:
        One ``measure_candidate`` dict per candidate, its
        metrics in ``quantity_names`` order.
    """
    want_formula = any(candidate[2] is not None for candidate in candidates)
    refs = network_references(net, params, x, y, noise, want_formula)
    return [measure_network_candidate(net, refs, candidate) for candidate in candidates]


def measure_network_candidate(
    net: Network,
    refs: measure.References,
    candidate: tuple[Params, Sequence[Array], Params | None, Sequence[Array] | None],
) -> dict[str, Any]:
    """One candidate ``(grads, deltas, grads64, deltas64)`` against a point's references."""
    grads, deltas, grads64, deltas64 = candidate
    candidates64 = None if grads64 is None else quantities(net, grads64, deltas64)
    return measure.measure_candidate(refs, quantities(net, grads, deltas), candidates64)


@functools.cache
def _measuring_program(n_elements_fast: bool) -> Callable[..., Any]:
    options = measure.FAST_COMPILE if n_elements_fast else {}

    def program(net, grads, deltas, grads64, deltas64, params, x, y, noise):
        candidate = (grads, deltas, grads64, deltas64)
        return measure_network_many(net, [candidate], params, x, y, noise)[0]

    return jax.jit(program, static_argnums=0, compiler_options=options)


# ----- from numbers to a verdict (host side) --------------------------------------------


def network_verdict(
    net: Network,
    dtype: Any,
    batch: int,
    measurement: dict[str, Any],
    constants: Constants = DEFAULT_CONSTANTS,
    formula_note: str | None = None,
) -> Verdict:
    """Build the ``Verdict`` of one case from ``measure_network_many``'s numbers.

    Args:
        net: the network.
        dtype: the working dtype.
        batch: the batch size (``δ^ℓ`` is ``(batch, n_ℓ)``).
        measurement: one candidate's measurement (arrays or numbers).
        constants: ``K`` and ``T``.
        formula_note: why the candidate has no float64 run, if it has none.

    Returns:
        The verdict, rows from layer ``L`` down to 1.
    """
    kinks = [int(count) for count in measurement["kinks"]]
    metrics = measurement["metrics"]
    kink_point = any(kinks)
    truth_bad = int(measurement["truth_nonfinite"]) > 0
    shapes = quantity_shapes(net, batch)
    rows: dict[str, Agreement] = {}
    for index, name in enumerate(quantity_names(net)):
        kind, layer_text = name.split("/")
        label = f"δ^{layer_text}" if kind == "delta" else f"{kind}_{layer_text}"
        values = {metric: float(array[index]) for metric, array in metrics.items()}
        rows[name] = judge_quantity(
            label,
            int(layer_text),
            kind,
            values,
            dtype,
            shapes[index],
            constants,
            kink_point=kink_point,
            truth_nonfinite=truth_bad,
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
    witness = None if "witness" not in measurement else witness_record(measurement["witness"])
    reasons = loss_reasons(measurement, dtype)
    if witness is not None and not witness.agrees:
        reasons.append(witness_reason(witness))
    ordered = [row for layer in reversed(layers) for row in layer.rows]
    row_reasons = [f"{row.name}: {row.why}" for row in ordered if not row.ok]
    first_bad = None
    if row_reasons:
        bad_delta = [lay.layer for lay in reversed(layers) if not lay.delta.ok]
        bad_any = [lay.layer for lay in reversed(layers) if not lay.ok]
        first_bad = (bad_delta or bad_any)[0]
    return Verdict(
        dtype=jnp.dtype(dtype).name,
        rows=tuple(ordered),
        layers=tuple(layers),
        reasons=tuple(reasons + row_reasons),
        first_bad_layer=first_bad,
        kink=kink_point,
        witness=witness,
        formula_note=formula_note,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
    )


def quantity_shapes(net: Network, batch: int) -> list[tuple[int, ...]]:
    """The shapes of ``quantity_names``, in order."""
    shapes = []
    for name in quantity_names(net):
        kind, layer_text = name.split("/")
        layer = int(layer_text)
        n_out, n_in = net.sizes[layer], net.sizes[layer - 1]
        shapes.append({"delta": (batch, n_out), "W": (n_out, n_in), "b": (n_out,)}[kind])
    return shapes


def loss_reasons(measurement: dict[str, Any], dtype: Any) -> list[str]:
    """Reasons for a NaN/Inf loss at the working dtype or in float64."""
    reasons = []
    if not np.isfinite(float(measurement["loss"])):
        reasons.append(f"loss: NaN/Inf at {jnp.dtype(dtype).name}")
    if not np.isfinite(float(measurement["loss_truth"])):
        reasons.append("loss: NaN/Inf in float64")
    return reasons


# ----- the public entry point ------------------------------------------------------------


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
    noise_multiple: float = DEFAULT_CONSTANTS.noise_multiple,
    tie_multiple: float = DEFAULT_CONSTANTS.tie_multiple,
    order: int = 1,
    hvp_fn: HvpFn | None = None,
) -> Verdict:
    """Check a manual backprop against autodiff, layer by layer, formula and precision.

    Every quantity (``δ^ℓ``, ``∂L/∂W_ℓ``, ``∂L/∂b_ℓ``) is judged in two parts and two
    norms (see ``netcheck.verifier``): the candidate run in float64 on the exactly
    upcast point against the float64 truth (the *formula*), and the candidate at the
    working dtype against autodiff's own error there (the *precision*), each in the
    2-norm and element by element.

    Args:
        net: the network.
        params: its parameters, one floating dtype (the working dtype); a list (or tuple)
            of per-layer dicts.
        x: inputs ``(batch, n_0)``; converted to the parameters' dtype.
        y: targets ``(batch, n_L)``; converted likewise.
        grad_fn: the gradient under test, ``(net, params, x, y) -> grads`` (the pytree of
            ``params``); default ``netcheck.nn.backprop.manual_grad`` (compiled). It is
            also run in float64 on the upcast point when it can be: if it fails there or
            returns another dtype, the verdict says so and judges precision alone.
        deltas_fn: its ``δ``, ``(net, params, x, y) -> [δ^1..δ^L]`` each ``(batch, n_ℓ)``;
            default ``netcheck.nn.backprop.manual_deltas`` (compiled).
        seed: seeds the finite-difference witness's random direction.
        witness: take the float64 finite-difference witness (on by default).
        noise_multiple: ``K`` (default 8).
        tie_multiple: ``T`` (default 4).
        order: 1, or 2 to also judge the Hessian-vector product ``H v`` of the mean loss
            along two random directions ``v_k`` (rows ``H·v_k W_ℓ``, ``H·v_k b_ℓ``), against
            ``jax.jvp(jax.grad)`` with the same calibration (see
            ``netcheck.verifier.second_order``).
        hvp_fn: with ``order=2``, the ``H v`` under test, ``(net, params, x, y, v) -> H v``
            (the pytree of ``params``); default the R-operator by hand,
            ``netcheck.nn.hvp.manual_hvp`` (compiled).

    Returns:
        The ``Verdict``.

    Raises:
        TypeError, ValueError: bad network, parameters, data, constants or functions; a
            gradient function whose output does not have the structure, shapes and dtype
            expected; values that are not concrete (called under ``jit``/``vmap``/``grad``).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a netcheck.Network, got {type(net).__name__}")
    check_concrete((params, x, y), "verify")
    if isinstance(params, tuple):
        params = list(params)
    x, y = net.check_batch(params, x, y)
    constants = checked_constants(noise_multiple, tie_multiple)
    grad_fn = backprop.manual_grad_jit if grad_fn is None else grad_fn
    deltas_fn = backprop.manual_deltas_jit if deltas_fn is None else deltas_fn
    check_callable(grad_fn, "grad_fn")
    check_callable(deltas_fn, "deltas_fn")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    hvp_fn = hvp.manual_hvp_jit if hvp_fn is None else hvp_fn
    check_callable(hvp_fn, "hvp_fn")
    seed = check_seed(seed)
    grads = grad_fn(net, params, x, y)
    deltas = deltas_fn(net, params, x, y)
    check_like(grads, params, "grad_fn(net, params, x, y)")
    _check_deltas(net, deltas, x)
    grads64 = deltas64 = None
    formula_note = None
    if jnp.dtype(x.dtype) != F64:

        def run64() -> tuple[Params, list[Array]]:
            point64 = measure.upcast_jit((params, x, y))
            return grad_fn(net, *point64), list(deltas_fn(net, *point64))

        ran, formula_note = candidate_in_float64(
            run64,
            (params, list(deltas)),
            "grad_fn/deltas_fn",
        )
        if ran is not None:
            grads64, deltas64 = ran
    n_elements = sum(leaf.size for leaf in jax.tree_util.tree_leaves((params, x)))
    program = _measuring_program(n_elements <= measure.FAST_COMPILE_ELEMENTS)
    with jax.enable_x64(True):
        noise = None
        if witness:
            noise = measure.witness_noise(seed, quantities(net, grads, list(deltas)))
        measured = program(net, grads, list(deltas), grads64, deltas64, params, x, y, noise)
        measured = jax.tree_util.tree_map(np.asarray, measured)
    verdict = network_verdict(net, x.dtype, x.shape[0], measured, constants, formula_note)
    if order == 1:
        return verdict
    return combine([verdict, *_hvp_verdicts(net, params, x, y, hvp_fn, constants, seed, witness)])


def _hvp_verdicts(
    net: Network,
    params: Params,
    x: Array,
    y: Array,
    hvp_fn: HvpFn,
    constants: Constants,
    seed: int,
    witness: bool,
) -> list[Verdict]:
    """The ``H·v_k`` rows of ``verify`` with ``order=2``, one verdict per direction."""
    layout, floats, arrays, float_names, _ = split_point(params, (x, y), {})
    names = [f"{kind}_{layer}" for layer in range(1, net.depth + 1) for kind in sorted(params[0])]
    param_names = set(float_names)

    def hv_of(floats: list[Array], arrays: list[Array], v: list[Array]) -> tuple[list, str]:
        point, (x_, y_), _ = layout.rebuild(floats, arrays)
        direction = layout.rebuild(v, arrays)[0]
        result = hvp_fn(net, point, x_, y_, direction)
        leaves = candidate_leaves(
            result, param_names, float_names, floats, "hvp_fn(net, params, x, y, v)"
        )
        return leaves, ""

    hessian = HessianMap(net.mean_loss_unchecked, False, layout)
    return [
        hvp_verdict(hessian, hv_of, floats, arrays, names, constants, seed, k, witness, "hvp_fn")
        for k in range(1, HVP_DIRECTIONS + 1)
    ]


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
            raise WrongDtype(f"δ^{layer}", x.dtype, delta.dtype)
