"""Second order: a candidate Hessian-vector product ``H v`` judged against autodiff's.

Shared by ``check_gradient`` (``order=2``: ``H v`` through the
gradient under test) and ``verify`` (``order=2``: the network's
hand-written R-operator, ``netcheck.Network.manual_hvp``). Along each of
``HVP_DIRECTIONS`` random directions ``v_k`` the rows ``H·v_k <leaf>`` are judged like
first-order ones (formula and precision, two norms), against ``jax.jvp(jax.grad(loss))``,
with ``∂/∂t ⟨w, ∇L(p + t v)⟩`` in finite differences as the witness.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.verifier import measure
from netcheck.verifier.checks import candidate_in_float64
from netcheck.verifier.maps import HessianMap, dtype_name, map_reasons, map_rows, run_map
from netcheck.verifier.measure import F64
from netcheck.verifier.tolerance import Constants
from netcheck.verifier.verdict import Agreement, Part, Verdict

Array = jax.Array

HVP_DIRECTIONS = 2
"""With ``order=2``, the Hessian-vector products are checked along this many random
directions (each scaled to the leaves' own sizes)."""


def hvp_direction(seed: int, k: int, floats: list[Array]) -> list[Array]:
    """Direction ``v_k``: normal noise scaled to each leaf's root-mean-square, rounded to the
    leaf's dtype (so the working run, the float64 truth and the candidate all see it)."""
    noise = measure.witness_noise(seed + 7919 * k, floats)
    directions = []
    for draw, leaf in zip(noise, floats, strict=True):
        rms = float(jnp.sqrt(jnp.mean(jnp.square(leaf.astype(jnp.float32))))) or 1.0
        directions.append(jnp.asarray(np.asarray(draw) * rms, leaf.dtype))
    return directions


HvOf = Callable[[list[Array], list[Array], list[Array]], tuple[list[Array], str]]
"""``(floats, arrays, v) -> (H v per judged leaf, how it was computed)``."""


def hvp_verdict(
    hessian: HessianMap,
    hv_of: HvOf,
    floats: list[Array],
    arrays: list[Array],
    names: list[str],
    constants: Constants,
    seed: int,
    k: int,
    witness: bool,
    what: str,
) -> Verdict:
    """The ``H·v_k`` rows: a candidate ``H v_k`` against autodiff's (``jax.jvp(jax.grad)``).

    Args:
        hessian: the loss's ``HessianMap`` (the reference).
        hv_of: the candidate ``H v`` at a point, traceable; also run in float64 on the
            upcast point for the formula part.
        floats, arrays: the point (judged leaves, traced data).
        names: the judged leaves' names.
        constants: ``K`` and ``T``.
        seed, k: the direction ``v_k`` (``hvp_direction``) and the witness's noise.
        witness: take the finite-difference witness.
        what: how to name the candidate in notes.
    """
    v = hvp_direction(seed, k, floats)
    names = [f"H·v{k} {name}" for name in names]
    try:
        hv, how = hv_of(floats, arrays, v)
    except Exception as error:  # the candidate's own failure is the verdict, not a traceback
        why = f"{what} failed: {first_line(error)}; second order not checked"
        return _undifferentiable(names[0].split()[0], why, constants, floats)
    hv64, note = None, None
    if any(jnp.dtype(leaf.dtype) != F64 for leaf in floats):

        def run64() -> list[Array]:
            return hv_of(*measure.upcast_jit((floats, arrays, v)))[0]

        hv64, note = candidate_in_float64(
            run64,
            [jax.ShapeDtypeStruct(leaf.shape, F64) for leaf in floats],
            f"{what} ({how})" if how else what,
        )
    noise = measure.witness_noise(seed + 104729 * k, floats) if witness else None
    measured = run_map(hessian, floats, arrays, v, hv, hv64, noise)
    rows = map_rows(measured, names, "hvp", floats, constants)
    return Verdict(
        dtype=dtype_name(floats),
        rows=tuple(rows),
        layers=(),
        reasons=tuple(map_reasons(measured, rows)),
        first_bad_layer=None,
        kink=False,
        formula_note=note,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
    )


def first_line(error: Exception) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _undifferentiable(name: str, why: str, constants: Constants, floats: list[Array]) -> Verdict:
    """A verdict whose one row says the candidate ``H v`` cannot be computed, and why."""
    nan = float("nan")
    part = Part(
        "precision",
        dtype_name(floats),
        False,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        (),
        nan,
        nan,
        None,
        float("inf"),
        float("inf"),
        why,
    )
    row = Agreement(name, None, "hvp", "fail", part, None, nan, nan, nan, (), why)
    return Verdict(
        dtype=dtype_name(floats),
        rows=(row,),
        layers=(),
        reasons=(f"{name}: {why}",),
        first_bad_layer=None,
        kink=False,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
    )
