"""``check_gradient``: any hand-written gradient of any pytree, leaf by leaf, and with
``order=2`` its own derivative (Hessian-vector products through the candidate).

The point is ``(params, *args, **kwargs)``, split by ``netcheck.verifier.point``; the
measuring is the shared map core of ``netcheck.verifier.maps`` (``GradientMap``,
``HessianMap``). One compiled program per (loss, structure, shapes, dtypes) measures
the truth, both floors, the witness and every number of the verdict; a second call with
new values reuses it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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
from netcheck.verifier.maps import (
    GradientMap,
    HessianMap,
    combine,
    dtype_name,
    map_reasons,
    map_rows,
    run_map,
)
from netcheck.verifier.measure import F32, F64
from netcheck.verifier.point import Layout, candidate_leaves, split_point
from netcheck.verifier.second_order import (
    HVP_DIRECTIONS,
    first_line,
    hvp_verdict,
)
from netcheck.verifier.tolerance import (
    DEFAULT_CONSTANTS,
    checked_constants,
    unit_roundoff,
)
from netcheck.verifier.verdict import Verdict
from netcheck.verifier.witness import witness_record

Array = jax.Array
PyTree = Any


def check_gradient(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., PyTree],
    params: PyTree,
    *args: Any,
    order: int = 1,
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
    norms (see ``netcheck.verifier``): the candidate run in float64 on the exactly
    upcast point against the float64 truth (the *formula*; used when ``grad_fn`` runs under
    64-bit mode and returns float64), and the candidate at the working dtype against
    autodiff's own error there (the *precision*). A float64 finite-difference witness along
    one random direction over all leaves checks the truth itself.

    With ``order=2`` the candidate's own derivative is judged too: Hessian-vector products
    ``H v`` through ``grad_fn`` (forward over reverse, or reverse over reverse where the
    candidate only supports reverse mode) against autodiff's ``jax.jvp(jax.grad(loss_fn))``,
    along ``HVP_DIRECTIONS`` random directions, with the same calibration; rows
    ``H·v1 ['w']``, ... A candidate that cannot be differentiated gets a row saying why.

    A custom VJP is checked by passing the plain loss as ``loss_fn`` and ``jax.grad`` of the
    custom one as ``grad_fn`` (or with ``netcheck.check_custom_rule``).

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
        order: 1 (the gradient) or 2 (also its Hessian-vector products).
        has_aux: ``loss_fn`` returns ``(loss, aux)`` and ``grad_fn`` ``(grads, aux)``.
        seed: seeds the witness's and the Hessian directions.
        witness: take the float64 finite-difference witness (on by default).
        noise_multiple: ``K`` (default 8).
        tie_multiple: ``T`` (default 4).
        **kwargs: keyword arguments of both functions (the names above are netcheck's).

    Returns:
        A ``Verdict`` with one row per floating leaf, named by its
        path (``jax.tree_util.keystr``), then the ``H·v`` rows with ``order=2``.

    Raises:
        TypeError, ValueError: non-callable functions, no floating leaf, a loss that is not
            a real scalar, data with NaN/Inf, a gradient whose floating leaves differ from
            ``params`` in shape or dtype, a bad ``order``, or values that are not concrete
            (a call under ``jit``/``vmap``/``grad``).
    """
    check_callable(loss_fn, "loss_fn")
    check_callable(grad_fn, "grad_fn")
    check_concrete((params, args, kwargs), "check_gradient")
    if not isinstance(has_aux, bool):
        raise TypeError(f"has_aux must be True or False, got {has_aux!r}")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    seed = check_seed(seed)
    constants = checked_constants(noise_multiple, tie_multiple)
    layout, floats, arrays, float_names, skipped = split_point(params, args, kwargs)
    _check_loss_output(loss_fn, has_aux, layout, floats, arrays)
    candidate = Candidate(
        grad_fn, has_aux, layout, frozenset(float_names) | set(skipped), tuple(float_names)
    )
    grads = candidate(floats, arrays)
    grads64, formula_note = None, None
    if any(jnp.dtype(leaf.dtype) != F64 for leaf in floats):
        grads64, formula_note = candidate_in_float64(
            lambda: candidate(*measure.upcast_jit((floats, arrays))),
            [jax.ShapeDtypeStruct(leaf.shape, F64) for leaf in floats],
            "grad_fn",
        )
    noise = measure.witness_noise(seed, floats) if witness else None
    gradient = GradientMap(loss_fn, has_aux, layout)
    measured = run_map(gradient, floats, arrays, [], grads, grads64, noise)
    self_floors = degenerate_self_floors(measured, candidate, floats, arrays, grads, grads64)
    rows = map_rows(measured, float_names, "leaf", floats, constants, self_floors)
    verdict = Verdict(
        dtype=dtype_name(floats),
        rows=tuple(rows),
        layers=(),
        reasons=tuple(map_reasons(measured, rows)),
        first_bad_layer=None,
        kink=False,
        witness=None if noise is None else witness_record(measured["witness"]),
        formula_note=formula_note,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
        skipped=tuple(skipped),
    )
    if order == 1:
        return verdict
    hessian = HessianMap(loss_fn, has_aux, layout)
    second = [
        hvp_verdict(
            hessian,
            functools.partial(candidate_hvp, candidate),
            floats,
            arrays,
            float_names,
            constants,
            seed,
            k,
            witness,
            "the second derivative of grad_fn",
        )
        for k in range(1, HVP_DIRECTIONS + 1)
    ]
    return combine([verdict, *second])


class Candidate:
    """The gradient under test as a function of the split point: its floating leaves, in
    the judged leaves' order, checked for shape and dtype (traceable, for ``order=2``)."""

    def __init__(
        self,
        grad_fn: Callable,
        has_aux: bool,
        layout: Layout,
        param_names: frozenset[str],
        float_names: tuple[str, ...],
    ) -> None:
        self.grad_fn, self.has_aux, self.layout = grad_fn, has_aux, layout
        self.param_names, self.float_names = param_names, float_names

    def __call__(self, floats: list[Array], arrays: list[Array]) -> list[Array]:
        params, args, kwargs = self.layout.rebuild(floats, arrays)
        result = self.grad_fn(params, *args, **kwargs)
        if self.has_aux:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise ValueError(
                    "with has_aux=True, grad_fn must return (grads, aux) as "
                    f"jax.grad(..., has_aux=True) does, got {type(result).__name__}"
                )
            result = result[0]
        return candidate_leaves(
            result, set(self.param_names), list(self.float_names), floats, "grad_fn(params, ...)"
        )


def candidate_hvp(
    candidate: Candidate, floats: list[Array], arrays: list[Array], v: list[Array]
) -> tuple[list[Array], str]:
    """``H v`` through the candidate: forward over reverse, else reverse over reverse.

    Returns:
        ``(H v per leaf, how)``.

    Raises:
        ValueError: neither mode can differentiate the candidate (both errors named).
    """
    try:
        return list(
            jax.jvp(lambda f: candidate(f, arrays), (floats,), (v,))[1]
        ), "forward over reverse"
    except Exception as forward:  # e.g. a custom_vjp inside: no forward mode; try reverse

        def along_v(f: list[Array]) -> Array:
            terms = [jnp.sum(c * d) for c, d in zip(candidate(f, arrays), v, strict=True)]
            return sum(terms[1:], terms[0])

        try:
            grads = jax.grad(along_v)(floats)
        except Exception as reverse:
            raise ValueError(
                "grad_fn cannot be differentiated, in forward mode "
                f"({first_line(forward)}) nor in reverse mode ({first_line(reverse)})"
            ) from reverse
        return [g.astype(leaf.dtype) for g, leaf in zip(grads, floats, strict=True)], (
            "reverse over reverse"
        )


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


SELF_FLOOR_DTYPES = (F32, jnp.dtype(jnp.bfloat16))
"""The precisions the candidate is run at, where nothing else measures its rounding."""


def degenerate_self_floors(
    measured: dict[str, Any],
    candidate: Candidate,
    floats: list[Array],
    arrays: list[Array],
    candidates: list[Array],
    candidates64: list[Array] | None,
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
        use64 = formula and jnp.dtype(leaf.dtype) != F64
        floor, distance = ("floor64", "max_distance64") if use64 else ("floor", "max_distance")
        if (
            metrics[floor][i] == 0
            and metrics[f"max_{floor}"][i] == 0
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
        low_floats, low_arrays = measure.cast((floats, arrays), dtype)
        try:
            with jax.enable_x64(True):
                low = candidate(low_floats, low_arrays)
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
