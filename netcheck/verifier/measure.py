"""The measuring program's building blocks: pure ``jax.numpy``, jit-, vmap- and shard-able.

Every number a verdict needs is computed on the device, per quantity, by reductions over
the quantity's own array (no concatenation, no gather: an array sharded over a
``jax.sharding.Mesh`` stays sharded and only scalars come back). Everything here runs
with float64 enabled (``jax.enable_x64(True)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.verifier import finite_diff
from netcheck.verifier.tolerance import F32, F64, STANDIN_SCALE, unit_roundoff

Array = jax.Array
PyTree = Any

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
"""XLA options for measuring programs on small arrays, where compile time is what counts
(about 2.5x less with these, measured on CPU); see ``compiler_options``."""

FAST_COMPILE_ELEMENTS = 20_000
"""Above this many elements in a point, the measuring program is compiled with XLA's
default optimisation: there the run time, not the compile time, dominates (measured on
a 33-layer width-64 MLP, 140k parameters: twice as fast warm, no slower cold)."""


def compiler_options(n_elements: int) -> dict[str, Any]:
    """``FAST_COMPILE`` for small points, XLA's defaults for large ones."""
    return FAST_COMPILE if n_elements <= FAST_COMPILE_ELEMENTS else {}


def is_float(leaf: Any) -> bool:
    """Whether a leaf is a floating array or a Python float (the leaves that are judged)."""
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, float):
        return True
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def cast(tree: PyTree, dtype: Any) -> PyTree:
    """Floating leaves of ``tree`` cast to ``dtype``; every other leaf as it is."""
    return jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype) if is_float(leaf) else leaf, tree)


def upcast(tree: PyTree) -> PyTree:
    """Floating leaves exactly upcast to float64 (every float dtype embeds in float64)."""
    return cast(tree, F64)


upcast_jit = jax.jit(upcast)
"""``upcast`` as one compiled call (one dispatch, not one per leaf); run it with
float64 enabled."""


def nonfinite_count(arrays: Sequence[Array]) -> Array:
    """The number of NaN/Inf values over a list of arrays (an int scalar)."""
    counts = [jnp.sum(~jnp.isfinite(a), dtype=jnp.int32) for a in arrays]
    return sum(counts, jnp.zeros((), jnp.int32))


class Quantity(NamedTuple):
    """The arrays one quantity is judged with, all of the quantity's shape.

    Attributes:
        candidate: ``c``, the gradient under test at the working dtype.
        truth: ``t``, float64 autodiff on the exactly upcast point.
        working: autodiff at the working dtype (the precision part's floor), or for a
            float64 quantity autodiff in float32 at the point rounded to float32.
        working_truth: what ``working`` is compared with (``t``, or float64 autodiff at
            the rounded point).
        floor_scale: 1, or ``u₆₄/u₃₂`` when ``working`` is a float32 stand-in.
        standin: autodiff in float32 at the point rounded to float32 (the formula part's
            floor, scaled by ``u₆₄/u₃₂``).
        standin_truth: float64 autodiff at that rounded point.
        magnitude: the elementwise magnitude of the terms summed into ``t`` (float64), or
            ``None`` for ``|t|``.
        candidate64: the candidate run in float64 on the upcast point, or ``None``.
    """

    candidate: Array
    truth: Array
    working: Array
    working_truth: Array
    floor_scale: float
    standin: Array
    standin_truth: Array
    magnitude: Array | None
    candidate64: Array | None


METRICS = (
    "distance",
    "max_distance",
    "worst_index",
    "worst_candidate",
    "worst_truth",
    "worst_autodiff",
    "floor",
    "max_floor",
    "nonfinite",
    "working_nonfinite",
    "scale",
    "max_scale",
    "magnitude",
    "max_magnitude",
    "cosine",
)
"""What ``measure_quantity`` returns for the precision part and the shared numbers."""

FORMULA_METRICS = (
    "distance64",
    "max_distance64",
    "worst_index64",
    "worst_candidate64",
    "worst_truth64",
    "floor64",
    "max_floor64",
    "nonfinite64",
    "standin_nonfinite",
)
"""The formula part's numbers, present when the candidate ran in float64 (with
``self_floor64``/``max_self_floor64``, the candidate's own rounding)."""


def _flat_index(shape: tuple[int, ...]) -> Array:
    """The row-major flat index of every element, shaped ``shape`` (no reshape of data)."""
    index = jnp.zeros(shape, jnp.int64)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        index = index + jax.lax.broadcasted_iota(jnp.int64, shape, axis) * stride
        stride *= shape[axis]
    return index


class _Columns:
    """Elementwise columns of one quantity, reduced together by ONE variadic reduction.

    Sums, maxima and the worst element (the largest key, with values carried along) are
    all folded by a single ``lax.reduce``: a quantity costs one kernel, which keeps the
    compile time of a many-quantity program low, and a reduction over a sharded array
    stays sharded.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Array] = {}
        self.maxes: dict[str, Array] = {}
        self.worst: dict[str, tuple[Array, dict[str, Array]]] = {}

    def reduce(self, flat: Array) -> dict[str, Array]:
        """Reduce every column over all elements; ``flat`` is the flat index of each element.

        Returns:
            ``{name: scalar}`` for every sum and maximum, and for each worst-element group
            ``name`` (the largest key; NaN counts as ``inf``), ``name_index`` (its flat
            index, the first one on ties) and ``name_<value>`` (each carried value there).
        """
        names, operands, inits = [], [], []
        for name, column in self.sums.items():
            names.append(("sum", name))
            operands.append(column)
            inits.append(jnp.zeros((), column.dtype))
        for name, column in self.maxes.items():
            names.append(("max", name))
            operands.append(column)
            inits.append(jnp.zeros((), column.dtype))
        for group, (key, carried) in self.worst.items():
            names.append(("key", group))
            operands.append(jnp.where(jnp.isnan(key), jnp.inf, key))
            inits.append(jnp.asarray(-1.0, key.dtype))
            names.append(("index", group))
            operands.append(flat)
            inits.append(jnp.asarray(-1, flat.dtype))
            for value_name, value in carried.items():
                names.append(("value", f"{group}_{value_name}"))
                operands.append(value)
                inits.append(jnp.zeros((), value.dtype))
        kinds = [kind for kind, _ in names]

        def combine(a: Sequence[Array], b: Sequence[Array]) -> list[Array]:
            out: list[Array] = []
            take_b = None
            for position, kind in enumerate(kinds):
                if kind == "sum":
                    out.append(a[position] + b[position])
                elif kind == "max":
                    out.append(jnp.maximum(a[position], b[position]))
                elif kind == "key":
                    ka, kb = a[position], b[position]
                    ia, ib = a[position + 1], b[position + 1]
                    take_b = (kb > ka) | ((kb == ka) & (ib >= 0) & ((ia < 0) | (ib < ia)))
                    out.append(jnp.where(take_b, kb, ka))
                else:  # the index and carried values follow their key
                    out.append(jnp.where(take_b, b[position], a[position]))
            return out

        axes = tuple(range(flat.ndim))
        reduced = jax.lax.reduce(operands, inits, combine, axes)
        result = {}
        for (kind, name), value in zip(names, reduced, strict=True):
            if kind == "key":
                result[name] = jnp.maximum(value, 0.0)
            elif kind == "index":
                result[f"{name}_index"] = value
            else:
                result[name] = value
        return result


def measure_quantity(q: Quantity) -> dict[str, Array]:
    """Every number of one quantity, as float64/int64 scalars (see ``METRICS`` and
    ``FORMULA_METRICS``), from one variadic reduction."""
    t = q.truth.astype(F64)
    c = q.candidate.astype(F64)
    w = q.working.astype(F64)
    m = jnp.abs(t) if q.magnitude is None else q.magnitude.astype(F64)
    m = jnp.where(jnp.isfinite(m), m, jnp.abs(t))  # an overflowing bound bounds nothing
    d = c - t
    f = w - q.working_truth.astype(F64)
    columns = _Columns()
    columns.sums |= {
        "d2": d * d,
        "t2": t * t,
        "c2": c * c,
        "ct": c * t,
        "f2": f * f,
        "m2": m * m,
        "nonfinite": (~jnp.isfinite(c)).astype(F64),
        "working_nonfinite": (~jnp.isfinite(w)).astype(F64),
    }
    columns.maxes |= {"max_floor": jnp.abs(f), "max_magnitude": m, "max_scale": jnp.abs(t)}
    columns.worst["worst"] = (jnp.abs(d), {"candidate": c, "truth": t, "autodiff": w})
    if q.candidate64 is not None:
        c64 = q.candidate64.astype(F64)
        d64 = c64 - t
        standin = q.standin.astype(F64) - q.standin_truth.astype(F64)
        # The candidate's own rounding, working dtype to float64, scaled to float64: the
        # formula part's floor where autodiff is exact and the truth is 0 (0 for float64).
        own = (c - c64) * (unit_roundoff(F64) / unit_roundoff(q.candidate.dtype))
        columns.sums |= {
            "d64_2": d64 * d64,
            "s2": standin * standin,
            "own2": own * own,
            "nonfinite64": (~jnp.isfinite(c64)).astype(F64),
            "standin_nonfinite": (~jnp.isfinite(standin)).astype(F64),
        }
        columns.maxes |= {"max_standin": jnp.abs(standin), "max_own": jnp.abs(own)}
        columns.worst["worst64"] = (jnp.abs(d64), {"candidate": c64, "truth": t})
    r = columns.reduce(_flat_index(t.shape))
    c_norm, t_norm = jnp.sqrt(r["c2"]), jnp.sqrt(r["t2"])
    product = c_norm * t_norm
    cosine = jnp.where(
        product > 0, r["ct"] / jnp.where(product > 0, product, 1.0), (c_norm == t_norm).astype(F64)
    )
    metrics = {
        "distance": jnp.sqrt(r["d2"]),
        "max_distance": r["worst"],
        "worst_index": r["worst_index"],
        "worst_candidate": r["worst_candidate"],
        "worst_truth": r["worst_truth"],
        "worst_autodiff": r["worst_autodiff"],
        "floor": jnp.sqrt(r["f2"]) * q.floor_scale,
        "max_floor": r["max_floor"] * q.floor_scale,
        "nonfinite": r["nonfinite"],
        "working_nonfinite": r["working_nonfinite"],
        "scale": t_norm,
        "max_scale": r["max_scale"],
        "magnitude": jnp.sqrt(r["m2"]),
        "max_magnitude": r["max_magnitude"],
        "cosine": cosine,
    }
    if q.candidate64 is not None:
        metrics |= {
            "distance64": jnp.sqrt(r["d64_2"]),
            "max_distance64": r["worst64"],
            "worst_index64": r["worst64_index"],
            "worst_candidate64": r["worst64_candidate"],
            "worst_truth64": r["worst64_truth"],
            "floor64": jnp.sqrt(r["s2"]) * STANDIN_SCALE,
            "max_floor64": r["max_standin"] * STANDIN_SCALE,
            "nonfinite64": r["nonfinite64"],
            "standin_nonfinite": r["standin_nonfinite"],
            "self_floor64": jnp.sqrt(r["own2"]),
            "max_self_floor64": r["max_own"],
        }
    return metrics


class References(NamedTuple):
    """What every candidate at one point is judged against, computed once.

    Attributes:
        truths: float64 autodiff per quantity.
        floors: autodiff's own errors (``Floors``).
        magnitudes: per quantity the magnitude of the summed terms, or ``None`` (``|t|``).
        shared: numbers of the point itself (the losses, NaN/Inf counts, ...).
        estimate: the witness's finite-difference estimate, or ``None`` without witness.
        directions: the witness direction per quantity (or ``None``).
        weights: per quantity, how its ``⟨t, d⟩`` enters the witnessed derivative.
    """

    truths: list[Array]
    floors: Floors
    magnitudes: list[Array | None]
    shared: dict[str, Array]
    estimate: Any = None
    directions: list[Array] | None = None
    weights: list[float] | None = None


def measure_candidate(
    refs: References, candidates: Sequence[Array], candidates64: Sequence[Array] | None
) -> dict[str, Any]:
    """One candidate's numbers against the references.

    Args:
        refs: the ``References`` of the point.
        candidates: the candidate per quantity, at the working dtype.
        candidates64: the candidate run in float64 on the upcast point, or ``None``.

    Returns:
        ``{"metrics": {metric: (R,)}, **refs.shared}`` and with a witness ``"witness"``:
        ``value, error, kink`` (the finite differences), ``truth`` (``Σ w ⟨t, d⟩``),
        ``candidate`` (``Σ w ⟨c, d⟩``) and ``bound`` (``‖w t‖ ‖d‖``).
    """
    floors = refs.floors
    quantity_list = [
        Quantity(
            candidate=c,
            truth=t,
            working=floors.working[i],
            working_truth=floors.working_truth[i],
            floor_scale=floors.floor_scale[i],
            standin=floors.standin[i],
            standin_truth=floors.standin_truth[i],
            magnitude=refs.magnitudes[i],
            candidate64=None if candidates64 is None else candidates64[i],
        )
        for i, (c, t) in enumerate(zip(candidates, refs.truths, strict=True))
    ]
    result = {"metrics": measure_quantities(quantity_list), **refs.shared}
    if refs.estimate is not None:
        weights = refs.weights or [1.0] * len(candidates)
        truth = [w * t for w, t in zip(weights, refs.truths, strict=True)]
        candidate = [w * c.astype(F64) for w, c in zip(weights, candidates, strict=True)]
        result["witness"] = {
            "value": refs.estimate.value,
            "error": refs.estimate.error,
            "kink": refs.estimate.kink,
            "truth": dot(truth, refs.directions),
            "candidate": dot(candidate, refs.directions),
            "bound": norm(truth) * norm(refs.directions),
        }
    return result


def measure_quantities(quantities: Sequence[Quantity]) -> dict[str, Array]:
    """``measure_quantity`` of each quantity, each metric stacked into an ``(R,)`` array."""
    measured = [measure_quantity(q) for q in quantities]
    return {key: jnp.stack([one[key] for one in measured]) for key in measured[0]}


# ----- the floors: autodiff at the working dtype and the float32 stand-in ---------------


class Floors(NamedTuple):
    """Autodiff's own errors, as lists aligned with the quantities.

    Attributes:
        working, working_truth, floor_scale: the precision part's floor inputs.
        standin, standin_truth: the formula part's floor inputs (float32 at the point
            rounded to float32 against float64 at that same point).
    """

    working: list[Array]
    working_truth: list[Array]
    floor_scale: list[float]
    standin: list[Array]
    standin_truth: list[Array]


def floors(
    reference: Callable[[PyTree], list[Array]],
    point: PyTree,
    truths: list[Array],
    quantity_dtypes: Sequence[Any],
    want_standin: bool,
) -> Floors:
    """Run the reference at the working dtype and (where needed) as a float32 stand-in.

    Args:
        reference: ``point -> [quantity arrays]``, autodiff at whatever dtype ``point`` has.
        point: the point at the working dtype(s) (floating leaves of any dtype).
        truths: ``reference(upcast(point))``, already computed.
        quantity_dtypes: the working dtype of each quantity.
        want_standin: whether the formula part needs the float32 stand-in.

    Returns:
        The ``Floors``. A float64 quantity's precision floor is the stand-in's
        (scaled); float32 points reuse the working run as the stand-in, and points exactly
        representable in float32 (everything but float64) reuse the truth.
    """
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(point) if is_float(leaf)]
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    all_f64 = all(jnp.dtype(d) == F64 for d in quantity_dtypes)
    working = truths if all_f64 else reference(point)
    standin, standin_truth = working, truths
    need_standin = want_standin or any(jnp.dtype(d) == F64 for d in quantity_dtypes)
    if need_standin and dtypes != {F32}:
        rounded = cast(point, F32)
        standin = reference(rounded)
        standin_truth = reference(upcast(rounded)) if F64 in dtypes else truths
    working_truth, scales = list(truths), []
    working = list(working)
    for index, dtype in enumerate(quantity_dtypes):
        if jnp.dtype(dtype) == F64:
            working[index], working_truth[index] = standin[index], standin_truth[index]
            scales.append(STANDIN_SCALE)
        else:
            scales.append(1.0)
    return Floors(working, working_truth, scales, list(standin), list(standin_truth))


# ----- the finite-difference witness, along one joint direction ----------------------


def witness_noise(seed: int, like: Sequence[Any]) -> list[Any]:
    """Standard-normal float32 noise shaped like each array of ``like``, drawn on the host.

    NumPy draws it (``default_rng(seed)``): reproducible, and no random number generator
    is compiled into the measuring program (one costs seconds of compile time per
    program on a CPU). The draws of the last few (seed, shapes) are kept, since checks
    repeat on the same model. A sharded array's noise is placed with the same sharding,
    so nothing is gathered.
    """
    draws = _noise(seed, tuple(tuple(np.shape(array)) for array in like))
    noise = []
    for draw, array in zip(draws, like, strict=True):
        sharding = getattr(array, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            draw = jax.device_put(draw, sharding)
        noise.append(draw)
    return noise


@functools.lru_cache(maxsize=4)
def _noise(seed: int, shapes: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    draws = tuple(rng.standard_normal(shape, dtype=np.float32) for shape in shapes)
    for draw in draws:
        draw.flags.writeable = False
    return draws


def relative_direction(noise: Sequence[Array], leaves: Sequence[Array]) -> list[Array]:
    """The witness direction: each leaf's noise scaled to the leaf's own size.

    Leaf ``i`` gets its noise times the root-mean-square of its values (or of all values,
    for an all-zero leaf; 1 if everything is zero), so a step ``h`` moves every leaf by
    about ``h`` of its own size: the ladder's steps are relative.

    Args:
        noise: standard-normal arrays shaped like ``leaves`` (``witness_noise``).
        leaves: float64 arrays (the point).

    Returns:
        Float64 arrays shaped like ``leaves``.
    """
    squares = [jnp.sum(leaf * leaf) for leaf in leaves]
    total = sum(squares, jnp.zeros((), F64))
    count = sum(leaf.size for leaf in leaves)
    overall = jnp.sqrt(total / max(count, 1))
    overall = jnp.where(overall > 0, overall, 1.0)
    directions = []
    for draw, leaf, square in zip(noise, leaves, squares, strict=True):
        rms = jnp.sqrt(square / max(leaf.size, 1))
        directions.append(draw.astype(F64) * jnp.where(rms > 0, rms, overall))
    return directions


WITNESS_STEPS: tuple[float, ...] = (1e-3, 1e-4, 1e-5)
"""The witness's step ladder, relative to each leaf's size (``relative_direction``):
seven loss evaluations in all, where one gradient costs about three."""


def directional_witness(
    loss: Callable[[list[Array]], Array], leaves: Sequence[Array], directions: Sequence[Array]
) -> finite_diff.FDEstimate:
    """Float64 central differences of ``loss`` along ``directions`` on ``WITNESS_STEPS``.

    Args:
        loss: a scalar function of the list of float64 leaves.
        leaves: the float64 point.
        directions: one direction per leaf (``relative_direction``).

    Returns:
        The ``FDEstimate`` of ``∇loss · d``.
    """
    return finite_diff.directional_derivative(loss, list(leaves), list(directions), WITNESS_STEPS)


def dot(a: Sequence[Array], b: Sequence[Array]) -> Array:
    """``Σ_i ⟨a_i, b_i⟩`` in float64."""
    terms = [jnp.sum(x.astype(F64) * y.astype(F64)) for x, y in zip(a, b, strict=True)]
    return sum(terms, jnp.zeros((), F64))


def norm(a: Sequence[Array]) -> Array:
    """``sqrt(Σ_i ‖a_i‖²)`` in float64."""
    return jnp.sqrt(dot(a, a))
