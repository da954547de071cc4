"""The judgement rule: its constants, and a tolerance in the 2-norm and in the max norm.

Everything here is plain host arithmetic on numbers the measuring program returned; the
derivation of the rule is in the package docstring (``netcheck.verifier``).

A quantity ``c`` is judged against the float64 truth ``t`` in two norms, each with its own
noise floor measured from autodiff in that norm::

    ‖c - t‖₂ ≤ K · φ₂ + T · u · ‖m‖₂        (errors spread thin over the array)
    ‖c - t‖∞ ≤ K · φ∞ + T · u · ‖m‖∞        (one wrong element, row or tile)

``φ`` is autodiff's own distance to the truth in that norm, ``u`` the unit roundoff of the
dtype the part is judged at and ``m`` the magnitudes of the terms summed into ``c``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from netcheck.verifier.verdict import Agreement, Part

NOISE_MULTIPLE = 8.0
"""``K``: a quantity passes within ``K`` times autodiff's own distance to the truth."""

TIE_MULTIPLE = 4.0
"""``T``: the dtype floor is ``T · u · ‖m‖``, for quantities where autodiff ties the truth."""

FD_MULTIPLE = 10.0
"""The finite-difference witness agrees when ``|FD - t·d| ≤ 10 · error estimate + ...``."""

FD_RELATIVE = 1e-7
"""... ``+ 1e-7 · (|t·d| + ‖t‖ ‖d‖)``: what float64 finite differences resolve at best."""

NORMS = ("2", "max")
"""The two norms every quantity is judged in: spread thin, and element by element."""

F64 = jnp.dtype(jnp.float64)
F32 = jnp.dtype(jnp.float32)


def unit_roundoff(dtype: Any) -> float:
    """``u = eps / 2`` of a floating dtype: 2^-53, 2^-24, 2^-11 (float16), 2^-8 (bfloat16)."""
    return float(jnp.finfo(dtype).eps) / 2


STANDIN_SCALE = unit_roundoff(F64) / unit_roundoff(F32)
"""``u₆₄ / u₃₂ = 2^-29``: float64's noise floor is measured in float32 and scaled by this."""


class Constants(NamedTuple):
    """The constants a verdict was judged with.

    Attributes:
        noise_multiple: ``K``.
        tie_multiple: ``T``.
    """

    noise_multiple: float = NOISE_MULTIPLE
    tie_multiple: float = TIE_MULTIPLE


DEFAULT_CONSTANTS = Constants()
"""``K = 8``, ``T = 4``."""


def checked_constants(noise_multiple: Any, tie_multiple: Any) -> Constants:
    """``K`` and ``T`` as floats, refusing anything that is not a finite positive number."""
    values = []
    for value, what in ((noise_multiple, "noise_multiple (K)"), (tie_multiple, "tie_multiple (T)")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number, got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{what} must be a finite positive number, got {value}")
        values.append(float(value))
    return Constants(*values)


def tolerance(constants: Constants, floor: float, u: float, magnitude: float) -> float:
    """``K · φ + T · u · ‖m‖`` in one norm.

    Args:
        constants: ``K`` and ``T``.
        floor: ``φ``, autodiff's own distance to the truth in this norm.
        u: unit roundoff of the dtype judged.
        magnitude: ``‖m‖`` in this norm.
    """
    return constants.noise_multiple * floor + constants.tie_multiple * u * magnitude


def detectable(tol: float, distance: float, size: float) -> float:
    """The smallest relative error of size ``size`` that is caught for sure.

    A candidate ``c' = c + e`` with ``‖e‖ = ε · size`` has ``‖c' - t‖ ≥ ε · size - ‖c - t‖``
    (reverse triangle inequality), so every ``ε > (tol + distance) / size`` fails.

    Args:
        tol: the tolerance in this norm.
        distance: the candidate's present distance in this norm.
        size: ``‖t‖₂`` for an error spread over the array, or the root-mean-square element
            ``‖t‖₂ / √n`` for an error in one element (judged in the max norm).

    Returns:
        ``(tol + distance) / size``, or ``inf`` when ``size`` is 0.
    """
    if size > 0 and math.isfinite(tol + distance):
        return (tol + distance) / size
    return math.inf


def safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` with ``0/0 = 0`` and ``x/0 = inf``."""
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.inf


# ----- judging: floors with their fallbacks, and the pass/fail rule (vectorised) ------
# Every function below takes a quantity's metrics as floats or as NumPy arrays of any
# shape (cases x variants x quantities), so the detection-power sweep judges a million
# variants with the very code that judges one row.

MEASURED, FALLBACK, NOT_JUDGED, SELF = 0, 1, 2, 3
"""How a floor was obtained: measured from autodiff; one rounding of the terms (the
reference it needs is NaN/Inf or overflows); not judged (autodiff exact and the truth
0, and a formula part decides); the candidate's own rounding (autodiff exact, truth 0)."""


def _degenerate(floor: Any, max_floor: Any, values: dict[str, Any]) -> Any:
    """Autodiff is exact and the truth is zero: nothing measures the rounding of the terms."""
    return (floor == 0) & (max_floor == 0) & (values["max_magnitude"] == 0)


def precision_floors(values: dict[str, Any], dtype: Any, has_formula: bool) -> tuple[Any, Any, Any]:
    """The precision part's ``(φ₂, φ∞, how)`` (``how``: ``MEASURED`` ...)."""
    u = unit_roundoff(dtype)
    floor, max_floor = np.asarray(values["floor"]), np.asarray(values["max_floor"])
    how = np.zeros(np.shape(floor), int)
    degenerate = _degenerate(floor, max_floor, values)
    if has_formula:
        how = np.where(degenerate, NOT_JUDGED, how)
    elif "self_floor" in values:
        floor = np.where(degenerate, values["self_floor"], floor)
        max_floor = np.where(degenerate, values["max_self_floor"], max_floor)
        how = np.where(degenerate, SELF, how)
    bad = np.asarray(values["working_nonfinite"]) > 0
    floor = np.where(bad, u * np.asarray(values["magnitude"]), floor)
    max_floor = np.where(bad, u * np.asarray(values["max_magnitude"]), max_floor)
    how = np.where(bad, FALLBACK, how)
    return floor, max_floor, how


def formula_floors(values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The formula part's ``(φ₂, φ∞, how)`` in float64."""
    u = unit_roundoff(F64)
    floor, max_floor = np.asarray(values["floor64"]), np.asarray(values["max_floor64"])
    degenerate = _degenerate(floor, max_floor, values)
    floor = np.where(degenerate, values["self_floor64"], floor)
    max_floor = np.where(degenerate, values["max_self_floor64"], max_floor)
    how = np.where(degenerate, SELF, MEASURED)
    bad = np.asarray(values["standin_nonfinite"]) > 0
    floor = np.where(bad, u * np.asarray(values["magnitude"]), floor)
    max_floor = np.where(bad, u * np.asarray(values["max_magnitude"]), max_floor)
    return floor, max_floor, np.where(bad, FALLBACK, how)


def part_passes(
    distance: Any,
    max_distance: Any,
    floor: Any,
    max_floor: Any,
    u: float,
    values: dict[str, Any],
    constants: Constants,
) -> Any:
    """``‖c-t‖₂ ≤ K φ₂ + T u ‖m‖₂`` and ``‖c-t‖∞ ≤ K φ∞ + T u ‖m‖∞`` (NaN fails)."""
    tol = tolerance(constants, floor, u, values["magnitude"])
    max_tol = tolerance(constants, max_floor, u, values["max_magnitude"])
    return (np.asarray(distance) <= tol) & (np.asarray(max_distance) <= max_tol)


def has_formula_part(values: dict[str, Any], dtype: Any) -> bool:
    """Whether the quantity has a formula part: the candidate ran in float64 and the
    working dtype is not float64 (in float64 the two parts coincide)."""
    return "distance64" in values and jnp.dtype(dtype) != F64


def rows_pass(
    values: dict[str, Any],
    dtype: Any,
    constants: Constants,
    *,
    kink_point: Any = False,
    truth_nonfinite: Any = False,
) -> Any:
    """Whether each quantity is acceptable: the vectorised form of an Agreement's ``ok``.

    A quantity fails with NaN/Inf in the candidate (also its float64 run) or the truth,
    or when a judged part fails; a part failure at a non-differentiable point is a kink,
    which is acceptable.
    """
    formula = has_formula_part(values, dtype)
    floor, max_floor, how = precision_floors(values, dtype, formula)
    u = unit_roundoff(dtype)
    precision_ok = part_passes(
        values["distance"], values["max_distance"], floor, max_floor, u, values, constants
    )
    judged_ok = precision_ok | (how == NOT_JUDGED)
    finite = (np.asarray(values["nonfinite"]) == 0) & ~np.asarray(truth_nonfinite)
    if formula:
        floor64, max_floor64, _ = formula_floors(values)
        judged_ok = judged_ok & part_passes(
            values["distance64"],
            values["max_distance64"],
            floor64,
            max_floor64,
            unit_roundoff(F64),
            values,
            constants,
        )
        finite = finite & (np.asarray(values["nonfinite64"]) == 0)
    return finite & (judged_ok | np.asarray(kink_point))


# ----- one row, with its words ------------------------------------------------------------

_PRECISION_NOTES = {
    MEASURED: "floor: autodiff in {dtype} vs float64",
    FALLBACK: "autodiff in {dtype} is NaN/Inf here: floor = one rounding of the terms",
    NOT_JUDGED: (
        "not judged: autodiff is exact and the truth is 0 here, so no floor measures "
        "rounding; the formula part decides"
    ),
    SELF: (
        "autodiff is exact and the truth is 0 here: the floor is the candidate's own "
        "rounding (its change from lower precisions to float64, scaled to float64)"
    ),
}
_FLOAT64_NOTES = {
    MEASURED: "float64: formula and precision coincide; floor: float32 autodiff x u64/u32",
    FALLBACK: "float64, and the float32 stand-in overflows here: floor = one rounding of the terms",
}
_FORMULA_NOTES = {
    MEASURED: "floor: float32 autodiff vs float64 at the point rounded to float32, x u64/u32",
    FALLBACK: "the float32 stand-in overflows here: floor = one float64 rounding of the terms",
    SELF: (
        "autodiff is exact and the truth is 0 here: the floor is the candidate's own "
        "rounding (its change from lower precisions to float64, scaled to float64)"
    ),
}


def judge_quantity(
    name: str,
    layer: int | None,
    kind: str,
    values: dict[str, float],
    dtype: Any,
    shape: tuple[int, ...],
    constants: Constants,
    *,
    kink_point: bool = False,
    truth_nonfinite: bool = False,
) -> Agreement:
    """Turn one quantity's numbers from the measuring program into an ``Agreement``.

    Args:
        name, layer, kind: how the row is named.
        values: this quantity's entry of every metric of
            ``netcheck.verifier.measure.measure_quantity``, as floats; the formula
            part's metrics are present when the candidate ran in float64 (and
            ``self_floor``/``max_self_floor`` for float64 leaves where they were needed).
        dtype: the working dtype of the candidate.
        shape: the quantity's shape.
        constants: ``K`` and ``T``.
        kink_point: the point is known to be non-differentiable (a relu pre-activation
            exactly 0): failures there are reported as ``"kink"``.
        truth_nonfinite: the float64 truth has NaN/Inf somewhere.

    Returns:
        The row, with its ``precision`` part and (when the candidate ran in float64 and
        the working dtype is not float64) its ``formula`` part. Its ``ok`` equals
        ``rows_pass`` on the same numbers.
    """
    dtype = jnp.dtype(dtype)
    size = math.prod(shape)
    rms = values["scale"] / math.sqrt(size) if size else 0.0
    formula = None
    if has_formula_part(values, dtype):
        floor, max_floor, how = formula_floors(values)
        formula = _part(
            "formula",
            F64,
            values["distance64"],
            values["max_distance64"],
            floor,
            max_floor,
            values,
            shape,
            rms,
            constants,
            (values["worst_index64"], values["worst_candidate64"], values["worst_truth64"], None),
            _FORMULA_NOTES[int(how)],
        )
    floor, max_floor, how = precision_floors(values, dtype, formula is not None)
    notes = _FLOAT64_NOTES if dtype == F64 and int(how) in _FLOAT64_NOTES else _PRECISION_NOTES
    precision = _part(
        "precision",
        dtype,
        values["distance"],
        values["max_distance"],
        floor,
        max_floor,
        values,
        shape,
        rms,
        constants,
        (
            values["worst_index"],
            values["worst_candidate"],
            values["worst_truth"],
            values["worst_autodiff"],
        ),
        notes[int(how)].format(dtype=dtype.name),
        judged=int(how) != NOT_JUDGED,
    )
    status, why = _status(values, dtype, precision, formula, kink_point, truth_nonfinite)
    scale, distance = values["scale"], values["distance"]
    relative = distance / scale if scale > 0 else (0.0 if distance == 0 else math.inf)
    return Agreement(
        name=name,
        layer=layer,
        kind=kind,
        status=status,
        precision=precision,
        formula=formula,
        relative_error=relative,
        max_abs_error=values["max_distance"],
        cosine=values["cosine"],
        shape=tuple(shape),
        why=why,
    )


def _part(
    part: str,
    dtype: Any,
    distance: float,
    max_distance: float,
    floor: Any,
    max_floor: Any,
    values: dict[str, float],
    shape: tuple[int, ...],
    rms: float,
    constants: Constants,
    worst: tuple[float, float, float, float | None],
    note: str,
    judged: bool = True,
) -> Part:
    u = unit_roundoff(dtype)
    floor, max_floor = float(floor), float(max_floor)
    tol = tolerance(constants, floor, u, values["magnitude"])
    max_tol = tolerance(constants, max_floor, u, values["max_magnitude"])
    passes = part_passes(distance, max_distance, floor, max_floor, u, values, constants)
    index, candidate, truth, autodiff = worst
    return Part(
        part=part,
        dtype=jnp.dtype(dtype).name,
        ok=bool(passes) if judged else None,
        distance=distance,
        tolerance=tol,
        floor=floor,
        max_floor=max_floor,
        max_distance=max_distance,
        max_tolerance=max_tol,
        worst_index=_unravel(index, shape),
        worst_candidate=candidate,
        worst_truth=truth,
        worst_autodiff=autodiff,
        detectable_spread=detectable(tol, distance, values["scale"]),
        detectable_element=detectable(max_tol, max_distance, rms),
        note=note,
    )


def _unravel(index: float, shape: tuple[int, ...]) -> tuple[int, ...]:
    flat = int(index)
    if not 0 <= flat < math.prod(shape):
        return ()
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _status(
    values: dict[str, float],
    dtype: Any,
    precision: Part,
    formula: Part | None,
    kink_point: bool,
    truth_nonfinite: bool,
) -> tuple[str, str]:
    """The row's status and reason: NaN/Inf first, then the formula, then the precision."""
    if values["nonfinite"]:
        return (
            "nonfinite",
            f"{int(values['nonfinite'])} NaN/Inf value(s) in the gradient under test",
        )
    if formula is not None and values["nonfinite64"]:
        return "nonfinite", (
            f"{int(values['nonfinite64'])} NaN/Inf value(s) in the gradient under test "
            "run in float64"
        )
    if truth_nonfinite:
        return "nonfinite", "float64 autodiff is NaN/Inf at this point"
    at_kink = " at a non-differentiable point" if kink_point else ""
    if formula is not None and not formula.ok:
        status = "kink" if kink_point else "wrong_formula"
        return status, f"wrong formula{at_kink}: {_excess(formula)}"
    if precision.ok is False:
        name = jnp.dtype(dtype).name
        if formula is not None:
            status = "kink" if kink_point else "imprecise"
            return status, (
                f"right formula, {precision.times_autodiff:.3g}x less accurate than autodiff "
                f"in {name}{at_kink}: {_excess(precision)}"
            )
        status = "kink" if kink_point else "fail"
        return status, f"disagrees{at_kink}: {_excess(precision)} ({precision.note})"
    return "ok", precision.note


def _excess(part: Part) -> str:
    """Which norm failed, by how much, and the worst element."""
    if not part.distance <= part.tolerance:
        norm = f"{part.dtype} distance {part.distance:.3g} > tolerance {part.tolerance:.3g}"
    else:
        norm = (
            f"{part.dtype} largest element error {part.max_distance:.3g} > "
            f"tolerance {part.max_tolerance:.3g}"
        )
    autodiff = "" if part.worst_autodiff is None else f", autodiff {part.worst_autodiff:.8g}"
    return (
        f"{norm}; worst element {list(part.worst_index)}: {part.worst_candidate:.8g} "
        f"vs truth {part.worst_truth:.8g}{autodiff}"
    )
