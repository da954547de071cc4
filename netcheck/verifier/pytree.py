"""``check_gradient``: any hand-written gradient of any pytree, leaf by leaf.

The point is ``(params, *args, **kwargs)``. Floating leaves of ``params`` (arrays and
Python floats) are the quantities; every other leaf of ``params`` (ints, bools, strings,
functions, static fields of a module) is carried along untouched and listed in the verdict
as not judged. Array leaves of ``args``/``kwargs`` are data (floating ones are upcast for
the truth); their other leaves are passed as they are, like static arguments of ``jit``.

One compiled program per (loss, structure, shapes, dtypes) measures the truth, both
floors, the joint witness and every number of the verdict; a second call with new values
reuses it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.verifier import measure
from netcheck.verifier.checks import (
    candidate_in_float64,
    check_callable,
    check_concrete,
    check_seed,
)
from netcheck.verifier.measure import F32, F64
from netcheck.verifier.network import witness_reason, witness_record
from netcheck.verifier.rule import (
    DEFAULT_CONSTANTS,
    Constants,
    checked_constants,
    judge_quantity,
    unit_roundoff,
)
from netcheck.verifier.verdict import Verdict

Array = jax.Array
PyTree = Any


# ----- splitting a pytree into traced arrays and static leaves ---------------------------


class _Static:
    """A static leaf for ``jit``: hashed by value when it can be, else by identity."""

    def __init__(self, value: Any) -> None:
        self.value = value
        try:
            self._key: Any = ("value", type(value), hash(value))
        except TypeError:
            self._key = ("id", id(value))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Static) or self._key != other._key:
            return False
        return self._key[0] == "id" or self.value == other.value


class Layout(NamedTuple):
    """Where the leaves of ``(params, args, kwargs)`` go (static, hashable).

    Attributes:
        treedef: the structure of ``(params, args, kwargs)``.
        roles: per leaf, ``"float"`` (a judged parameter), ``"array"`` (traced data) or
            ``"static"`` (passed as it is).
        statics: the static leaves, in order, wrapped for hashing.
    """

    treedef: Any
    roles: tuple[str, ...]
    statics: tuple[_Static, ...]

    def rebuild(self, floats: Sequence[Any], arrays: Sequence[Any]) -> tuple[Any, tuple, dict]:
        """``(params, args, kwargs)`` from the float leaves and the traced arrays."""
        float_iter, array_iter, static_iter = iter(floats), iter(arrays), iter(self.statics)
        leaves = []
        for role in self.roles:
            if role == "float":
                leaves.append(next(float_iter))
            elif role == "array":
                leaves.append(next(array_iter))
            else:
                leaves.append(next(static_iter).value)
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def split_point(
    params: PyTree, args: tuple, kwargs: dict
) -> tuple[Layout, list, list, list[str], list[str]]:
    """Split the point into float parameter leaves, traced arrays and static leaves.

    Returns:
        ``(layout, floats, arrays, float_names, skipped_names)``: the judged leaves (as
        JAX arrays) and their paths, the traced data, and the parameter leaves not judged.

    Raises:
        ValueError: a float64 parameter while JAX runs in 32-bit mode, data with NaN/Inf,
            or no floating parameter at all.
    """
    with_paths, treedef = jax.tree_util.tree_flatten_with_path((params, args, kwargs))
    roles, statics, floats, arrays, float_names, skipped = [], [], [], [], [], []
    for path, leaf in with_paths:
        top, rest = path[0].idx, jax.tree_util.keystr(path[1:])
        if top == 0:
            name = rest or "params"
            if measure.is_float(leaf):
                floats.append(_float_leaf(leaf, f"params{rest}"))
                float_names.append(name)
                roles.append("float")
                continue
            skipped.append(name)
        where = ("args" if top == 1 else "kwargs") + rest if top else f"params{rest}"
        if _is_array(leaf):
            arrays.append(_data_leaf(leaf, where))
            roles.append("array")
        else:
            statics.append(_Static(leaf))
            roles.append("static")
    if not floats:
        raise ValueError(
            "params has no floating leaves to check"
            + (f" (not floating: {', '.join(skipped)})" if skipped else "")
        )
    return Layout(treedef, tuple(roles), tuple(statics)), floats, arrays, float_names, skipped


def _float_leaf(leaf: Any, where: str) -> Array:
    dtype = jnp.dtype(leaf.dtype) if hasattr(leaf, "dtype") else None
    if dtype is not None and dtype == F64 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"{where} is float64 but JAX runs in 32-bit mode: enable 64-bit mode "
            "(jax.config.update('jax_enable_x64', True)) or pass float32 parameters"
        )
    array = jnp.asarray(leaf)
    if jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(f"{where} must be real, got complex dtype {array.dtype}")
    return array


def _data_leaf(leaf: Any, where: str) -> Array:
    array = jnp.asarray(leaf)
    if jnp.issubdtype(array.dtype, jnp.inexact):
        bad = int(jnp.size(array) - jnp.count_nonzero(jnp.isfinite(array)))
        if bad:
            raise ValueError(
                f"{where} has {bad} non-finite value(s) (NaN or Inf): refused as bad data "
                "(the gradient cannot be judged at such a point)"
            )
    return array


def candidate_leaves(
    result: PyTree, param_names: set[str], float_names: list[str], floats: list[Array], what: str
) -> list[Array]:
    """The candidate's leaves at the float parameters' paths, checked for shape and dtype.

    The candidate may put anything at the other parameters' positions (``None``, zeros,
    ``float0``), but nothing where ``params`` has no leaf.

    Args:
        result: the candidate gradient, a pytree like ``params``.
        param_names: the paths of every leaf of ``params``.
        float_names: the paths of the judged (floating) leaves, in order.
        floats: those leaves (for their shapes and dtypes).
        what: how to name the candidate in errors.
    """
    found = {
        jax.tree_util.keystr(path) or "params": leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(result)[0]
    }
    extra = sorted(set(found) - param_names)
    if extra:
        raise ValueError(f"{what} has leaves where params has none: {', '.join(extra)}")
    leaves = []
    for name, expected in zip(float_names, floats, strict=True):
        where = what + ("" if name == "params" else name)
        if name not in found:
            raise ValueError(f"{what} has no leaf at {name} (params has a floating leaf there)")
        got = found[name]
        if isinstance(got, float):
            got = jnp.asarray(got, expected.dtype)
        if not hasattr(got, "shape") or tuple(got.shape) != tuple(expected.shape):
            raise ValueError(
                f"{where} must have shape {tuple(expected.shape)}, "
                f"got {tuple(getattr(got, 'shape', ()))} ({type(got).__name__})"
            )
        if jnp.dtype(got.dtype) != jnp.dtype(expected.dtype):
            raise ValueError(f"{where} must have dtype {expected.dtype}, got {got.dtype}")
        leaves.append(jnp.asarray(got))
    return leaves


# ----- the measuring program -------------------------------------------------------------


def _loss_value(loss_fn: Callable[..., Any], has_aux: bool, layout: Layout) -> Callable:
    """``(floats, arrays) -> scalar loss``: the user's loss on the rebuilt point."""

    def value(floats: Sequence[Array], arrays: Sequence[Array]) -> Array:
        params, args, kwargs = layout.rebuild(floats, arrays)
        out = loss_fn(params, *args, **kwargs)
        return out[0] if has_aux else out

    return value


def measure_pytree(
    loss_fn: Callable[..., Any],
    has_aux: bool,
    layout: Layout,
    floats: list[Array],
    arrays: list[Array],
    candidates: list[Array],
    candidates64: list[Array] | None,
    noise: list[Array] | None,
) -> dict[str, Any]:
    """Everything :func:`check_gradient`'s verdict needs, as arrays (float64 enabled).

    Returns:
        ``{"metrics": {metric: (R,)}, "loss", "loss_truth", "truth_nonfinite"}`` and, with
        noise, ``"witness"`` (``value, error, kink, truth, candidate, bound``).
    """
    value = _loss_value(loss_fn, has_aux, layout)

    def reference(point: tuple[list[Array], list[Array]]) -> list[Array]:
        return list(jax.grad(value)(list(point[0]), list(point[1])))

    point = (floats, arrays)
    point64 = measure.upcast(point)
    truths = reference(point64)
    floors = measure.floors(
        reference, point, truths, [leaf.dtype for leaf in floats], candidates64 is not None
    )
    shared = {
        "loss": value(floats, arrays).astype(F64),
        "loss_truth": value(*point64),
        "truth_nonfinite": measure.nonfinite_count(truths),
    }
    refs = measure.References(truths, floors, [None] * len(truths), shared)
    if noise is not None:
        directions = measure.relative_direction(noise, point64[0])
        estimate = measure.directional_witness(
            lambda moved: value(moved, point64[1]), point64[0], directions
        )
        refs = refs._replace(estimate=estimate, directions=directions)
    return measure.measure_candidate(refs, candidates, candidates64)


@functools.cache
def _measuring_program(fast_compile: bool) -> Callable[..., Any]:
    options = measure.FAST_COMPILE if fast_compile else {}
    return jax.jit(measure_pytree, static_argnums=(0, 1, 2), compiler_options=options)


# ----- the public entry point ------------------------------------------------------------


def check_gradient(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., PyTree],
    params: PyTree,
    *args: Any,
    has_aux: bool = False,
    seed: int = 0,
    witness: bool = True,
    noise_multiple: float = DEFAULT_CONSTANTS.noise_multiple,
    tie_multiple: float = DEFAULT_CONSTANTS.tie_multiple,
    **kwargs: Any,
) -> Verdict:
    """Judge a hand-written gradient of any pytree, leaf by leaf, formula and precision.

    ``grad_fn(params, *args, **kwargs)`` is judged against
    ``jax.grad(loss_fn)(params, *args, **kwargs)``, each floating leaf in two parts and two
    norms (see :mod:`netcheck.verifier`): the candidate run in float64 on the exactly
    upcast point against the float64 truth (the *formula*; used when ``grad_fn`` runs under
    64-bit mode and returns float64), and the candidate at the working dtype against
    autodiff's own error there (the *precision*). A float64 finite-difference witness along
    one random direction over all leaves checks the truth itself.

    A custom VJP is checked by passing the plain loss as ``loss_fn`` and ``jax.grad`` of the
    custom one as ``grad_fn`` (or with :func:`netcheck.check_custom_rule`).

    Args:
        loss_fn: ``(params, *args, **kwargs) -> scalar`` (or ``(scalar, aux)`` with
            ``has_aux``), differentiable by JAX.
        grad_fn: ``(params, *args, **kwargs) -> pytree like params`` (``(grads, aux)`` with
            ``has_aux``, as ``jax.grad(..., has_aux=True)`` returns), the gradient under test.
            At non-floating leaves of ``params`` it may return anything (``None``, zeros,
            ``float0``): those are not judged.
        params: a pytree; its floating leaves (arrays or Python floats) are judged, every
            other leaf is listed in the verdict as not judged.
        *args: further arguments of both functions (floating arrays are upcast for the truth).
        has_aux: ``loss_fn`` returns ``(loss, aux)`` and ``grad_fn`` ``(grads, aux)``.
        seed: seeds the witness's random direction.
        witness: take the float64 finite-difference witness (on by default).
        noise_multiple: ``K`` (default 8).
        tie_multiple: ``T`` (default 4).
        **kwargs: keyword arguments of both functions (the names above are netcheck's).

    Returns:
        A :class:`~netcheck.verifier.Verdict` with one row per floating leaf, named by its
        path (``jax.tree_util.keystr``).

    Raises:
        TypeError, ValueError: non-callable functions, no floating leaf, a loss that is not
            a real scalar, data with NaN/Inf, a gradient whose floating leaves differ from
            ``params`` in shape or dtype, or values that are not concrete (a call under
            ``jit``/``vmap``/``grad``).
    """
    check_callable(loss_fn, "loss_fn")
    check_callable(grad_fn, "grad_fn")
    check_concrete((params, args, kwargs), "check_gradient")
    if not isinstance(has_aux, bool):
        raise TypeError(f"has_aux must be True or False, got {has_aux!r}")
    seed = check_seed(seed)
    constants = checked_constants(noise_multiple, tie_multiple)
    layout, floats, arrays, float_names, skipped = split_point(params, args, kwargs)
    _check_loss_output(loss_fn, has_aux, layout, floats, arrays)
    params_, args_, kwargs_ = layout.rebuild(floats, arrays)
    param_names = set(float_names) | set(skipped)
    grads = _call_grad(grad_fn, has_aux, params_, args_, kwargs_)
    candidates = candidate_leaves(grads, param_names, float_names, floats, "grad_fn(params, ...)")
    candidates64, formula_note = None, None
    if any(jnp.dtype(leaf.dtype) != F64 for leaf in floats):
        candidates64, formula_note = _candidate64(
            grad_fn, has_aux, layout, floats, arrays, param_names, float_names
        )
    n_elements = sum(leaf.size for leaf in floats) + sum(a.size for a in arrays)
    program = _measuring_program(n_elements <= measure.FAST_COMPILE_ELEMENTS)
    with jax.enable_x64(True):
        noise = measure.witness_noise(seed, floats) if witness else None
        measured = program(
            loss_fn, has_aux, layout, floats, arrays, candidates, candidates64, noise
        )
        measured = jax.tree_util.tree_map(np.asarray, measured)
    self_floors = _degenerate_self_floors(
        measured,
        grad_fn,
        has_aux,
        layout,
        floats,
        arrays,
        candidates,
        candidates64,
        param_names,
        float_names,
    )
    return _verdict(measured, floats, float_names, skipped, constants, formula_note, self_floors)


def _call_grad(
    grad_fn: Callable, has_aux: bool, params: PyTree, args: tuple, kwargs: dict
) -> PyTree:
    result = grad_fn(params, *args, **kwargs)
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError(
                "with has_aux=True, grad_fn must return (grads, aux) as "
                f"jax.grad(..., has_aux=True) does, got {type(result).__name__}"
            )
        return result[0]
    return result


def _check_loss_output(
    loss_fn: Callable, has_aux: bool, layout: Layout, floats: list[Array], arrays: list[Array]
) -> None:
    """Refuse a loss that does not return a real scalar (checked abstractly, nothing runs;
    once per loss, structure, shapes and dtypes)."""
    specs = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (*floats, *arrays))
    _check_loss_output_once(loss_fn, has_aux, layout, len(floats), specs)


@functools.lru_cache(maxsize=256)
def _check_loss_output_once(
    loss_fn: Callable, has_aux: bool, layout: Layout, n_floats: int, specs: tuple
) -> None:
    def call(floats: list[Array], arrays: list[Array]) -> Any:
        params, args, kwargs = layout.rebuild(floats, arrays)
        return loss_fn(params, *args, **kwargs)

    shape = jax.eval_shape(call, list(specs[:n_floats]), list(specs[n_floats:]))
    if has_aux:
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError("with has_aux=True, loss_fn must return (loss, aux)")
        shape = shape[0]
    is_scalar = hasattr(shape, "shape") and shape.shape == ()
    if not is_scalar or not jnp.issubdtype(shape.dtype, jnp.floating):
        got = (
            f"shape {getattr(shape, 'shape', '?')} {getattr(shape, 'dtype', type(shape).__name__)}"
        )
        raise ValueError(f"loss_fn must return a real floating scalar, got {got}")


def _candidate64(
    grad_fn: Callable,
    has_aux: bool,
    layout: Layout,
    floats: list[Array],
    arrays: list[Array],
    param_names: set[str],
    float_names: list[str],
) -> tuple[list[Array] | None, str | None]:
    """The candidate run in float64 on the upcast point, or ``None`` and why not."""

    def call() -> list[Array]:
        point = measure.upcast_jit((floats, arrays))
        params, args, kwargs = layout.rebuild(*point)
        grads = _call_grad(grad_fn, has_aux, params, args, kwargs)
        found = {
            jax.tree_util.keystr(path) or "params": leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]
        }
        return [found.get(name) for name in float_names]

    like = [jax.ShapeDtypeStruct(leaf.shape, F64) for leaf in floats]
    return candidate_in_float64(call, like, "grad_fn")


SELF_FLOOR_DTYPES = (F32, jnp.dtype(jnp.bfloat16))
"""The precisions the candidate is run at, where nothing else measures its rounding."""


def _degenerate_self_floors(
    measured: dict[str, Any],
    grad_fn: Callable,
    has_aux: bool,
    layout: Layout,
    floats: list[Array],
    arrays: list[Array],
    candidates: list[Array],
    candidates64: list[Array] | None,
    param_names: set[str],
    float_names: list[str],
) -> dict[int, tuple[float, float]]:
    """The candidate's own rounding where autodiff is exact and the truth is 0.

    There (``sin²w + cos²w``: autodiff cancels to exactly 0, a correct candidate lands an
    ulp away) no floor from autodiff measures rounding. The candidate's change from a
    lower precision to float64, scaled to float64, does: ``‖c_p - c₆₄‖ u₆₄ / u_p``. One
    sample can be exactly 0 by luck, so the largest over the working dtype, float32 and
    bfloat16 is taken. Only such degenerate leaves, and only when they would fail, pay
    for the extra runs.

    Returns:
        ``{leaf index: (φ₂, φ∞)}`` for the degenerate leaves.
    """
    metrics = measured["metrics"]
    formula = "distance64" in metrics
    degenerate = []
    for i, leaf in enumerate(floats):
        is64 = jnp.dtype(leaf.dtype) == F64
        prefix, distance = (
            ("floor", "max_distance") if is64 or not formula else ("floor64", "max_distance64")
        )
        if (
            metrics[prefix][i] == 0
            and metrics[f"max_{prefix}"][i] == 0
            and metrics["max_magnitude"][i] == 0
            and metrics[distance][i] > 0
        ):
            degenerate.append(i)
    if not degenerate:
        return {}
    reference = candidates if candidates64 is None else candidates64
    samples: dict[int, list[tuple[float, float]]] = {i: [] for i in degenerate}
    for i in degenerate:
        if formula and jnp.dtype(floats[i].dtype) != F64:
            samples[i].append(
                (float(metrics["self_floor64"][i]), float(metrics["max_self_floor64"][i]))
            )
    for dtype in SELF_FLOOR_DTYPES:
        point = measure.cast((floats, arrays), dtype)
        params, args, kwargs = layout.rebuild(*point)
        try:
            with jax.enable_x64(True):
                low = candidate_leaves(
                    _call_grad(grad_fn, has_aux, params, args, kwargs),
                    param_names,
                    float_names,
                    point[0],
                    "grad_fn",
                )
        except Exception:  # a candidate that cannot run at this precision gives no sample
            continue
        scale = unit_roundoff(F64) / unit_roundoff(dtype)
        for i in degenerate:
            own = (np.asarray(low[i], np.float64) - np.asarray(reference[i], np.float64)) * scale
            samples[i].append(
                (float(np.sqrt(np.sum(own * own))), float(np.max(np.abs(own), initial=0.0)))
            )
    return {
        i: (max((a for a, _ in found), default=0.0), max((b for _, b in found), default=0.0))
        for i, found in samples.items()
    }


def _verdict(
    measured: dict[str, Any],
    floats: list[Array],
    float_names: list[str],
    skipped: list[str],
    constants: Constants,
    formula_note: str | None,
    self_floors: dict[int, tuple[float, float]],
) -> Verdict:
    metrics = measured["metrics"]
    truth_bad = int(measured["truth_nonfinite"]) > 0
    rows = []
    for index, (name, leaf) in enumerate(zip(float_names, floats, strict=True)):
        values = {metric: float(array[index]) for metric, array in metrics.items()}
        if index in self_floors:
            keys = ("self_floor", "max_self_floor")
            if "distance64" in values and jnp.dtype(leaf.dtype) != F64:
                keys = ("self_floor64", "max_self_floor64")
            values[keys[0]], values[keys[1]] = self_floors[index]
        rows.append(
            judge_quantity(
                name,
                None,
                "leaf",
                values,
                leaf.dtype,
                tuple(leaf.shape),
                constants,
                truth_nonfinite=truth_bad,
            )
        )
    witness = None if "witness" not in measured else witness_record(measured["witness"])
    reasons = []
    if not math.isfinite(float(measured["loss"])):
        reasons.append("loss: NaN/Inf at the working dtype")
    if not math.isfinite(float(measured["loss_truth"])):
        reasons.append("loss: NaN/Inf in float64")
    if witness is not None and not witness.agrees:
        reasons.append(witness_reason(witness))
    reasons += [f"{row.name}: {row.why}" for row in rows if not row.ok]
    if witness is not None and witness.kink and any(not row.ok for row in rows):
        reasons.append(
            "(finite differences see a kink near this point: if it lies exactly on one, "
            "any subgradient is correct there)"
        )
    dtypes = {jnp.dtype(leaf.dtype).name for leaf in floats}
    return Verdict(
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
        rows=tuple(rows),
        layers=(),
        reasons=tuple(reasons),
        first_bad_layer=None,
        kink=False,
        witness=witness,
        formula_note=formula_note,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
        skipped=tuple(skipped),
    )
