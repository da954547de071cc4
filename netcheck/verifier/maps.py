"""Checking a hand-written linear map of a pytree against autodiff's: the shared core of
``check_gradient`` (order 1 and 2) and of ``check_custom_rule``.

A *map* is what autodiff computes at a point and the candidate claims to compute too: the
gradient of a loss, a Hessian-vector product, a custom rule's VJP along a cotangent or
its JVP along a tangent. It is a small frozen (hashable) record that says, in
``jax.numpy``, how to compute

* the **reference**: the map by autodiff, at whatever dtype the point has (float64 on the
  upcast point gives the truth, the working dtype the floor, float32 the stand-in);
* the **linear map** behind the reference, ``(L, probe)`` with ``L(probe)`` the reference,
  whose summed absolute terms (``netcheck.verifier.term_magnitudes.term_magnitudes``) scale the
  dtype part of the tolerance, so that a result that cancels to nearly 0 is judged
  against the size of what cancelled;
* the **value**: a scalar of the point whose NaN/Inf the verdict reports (the loss);
* the **witness**: a float64 finite-difference estimate of ``⟨reference, pair⟩`` for some
  ``pair`` (moving the point along a direction and differencing a scalar), which checks
  the truth itself without autodiff.

``measure_map`` computes everything a verdict needs in one compiled program per
(map, shapes, dtypes); ``map_verdict`` judges it. The candidate itself is run by
the caller, outside the program, at the working dtype and in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.verifier import measure
from netcheck.verifier.measure import F64
from netcheck.verifier.point import Layout
from netcheck.verifier.term_magnitudes import term_magnitudes
from netcheck.verifier.tolerance import Constants, judge_quantity
from netcheck.verifier.verdict import Agreement, Verdict
from netcheck.verifier.witness import witness_reason, witness_record

Array = jax.Array
PyTree = Any


class Map(Protocol):
    """What ``measure_map`` needs of a map (a frozen, hashable record)."""

    def reference(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> list[Array]:
        """The map by autodiff at the point's dtype: one array per quantity."""

    def linear(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> tuple[Callable[[Any], list[Array]], Any]:
        """``(L, v)``: the reference as a function ``L`` linear in ``v``, ``L(v)`` it."""

    def value(self, floats: list[Array], arrays: list[Array], probe: list[Array]) -> Array:
        """A scalar of the point whose NaN/Inf is reported (the loss)."""

    def witness(
        self,
        floats: list[Array],
        arrays: list[Array],
        probe: list[Array],
        noise: list[Array],
    ) -> tuple[Any, list[Array]]:
        """``(FDEstimate of ⟨reference, pair⟩, pair)`` in float64, from ``noise``."""


class LinearInProbe:
    """For a map whose reference is already linear in its probe (a VJP, a JVP, ``H v``):
    ``Map.linear`` is the reference itself, as a function of the probe."""

    def linear(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> tuple[Callable[[list[Array]], list[Array]], list[Array]]:
        return (lambda v: self.reference(floats, arrays, v)), probe  # type: ignore[attr-defined]


def loss_value(loss_fn: Callable, has_aux: bool, layout: Layout) -> Callable:
    """``(floats, arrays) -> scalar``: the user's loss on the rebuilt point."""

    def value(floats: Sequence[Array], arrays: Sequence[Array]) -> Array:
        params, args, kwargs = layout.rebuild(floats, arrays)
        out = loss_fn(params, *args, **kwargs)
        return out[0] if has_aux else out

    return value


@dataclass(frozen=True)
class GradientMap:
    """``∇L``: the gradient of a loss in its floating parameter leaves.

    The witness moves every leaf along one random direction ``d`` scaled to the leaf's
    own size and differences the loss: ``∂L/∂t (p + t d) = ⟨∇L, d⟩``, so the pair is ``d``.
    """

    loss_fn: Callable[..., Any]
    has_aux: bool
    layout: Layout

    def reference(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> list[Array]:
        return list(jax.grad(loss_value(self.loss_fn, self.has_aux, self.layout))(floats, arrays))

    def linear(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> tuple[Callable[[Array], list[Array]], Array]:
        """The gradient as the pullback of the loss's cotangent ``1``."""
        value = loss_value(self.loss_fn, self.has_aux, self.layout)
        loss, pullback = jax.vjp(lambda moved: value(moved, arrays), list(floats))
        return (lambda seed: list(pullback(seed)[0])), jnp.ones_like(loss)

    def value(self, floats: list[Array], arrays: list[Array], probe: list[Array]) -> Array:
        return loss_value(self.loss_fn, self.has_aux, self.layout)(floats, arrays)

    def witness(
        self, floats: list[Array], arrays: list[Array], probe: list[Array], noise: list[Array]
    ) -> tuple[Any, list[Array]]:
        value = loss_value(self.loss_fn, self.has_aux, self.layout)
        directions = measure.relative_direction(noise, floats)
        estimate = measure.directional_witness(
            lambda moved: value(moved, arrays), floats, directions
        )
        return estimate, directions


@dataclass(frozen=True)
class HessianMap(LinearInProbe):
    """``H v``: the Hessian of a loss times the probe ``v`` (forward over reverse).

    The witness moves the point along ``v`` and differences ``⟨w, ∇L⟩`` for a random
    ``w``: ``∂/∂t ⟨w, ∇L(p + t v)⟩ = ⟨w, H v⟩``, so the pair is ``w``.
    """

    loss_fn: Callable[..., Any]
    has_aux: bool
    layout: Layout

    def _gradient(self, arrays: list[Array]) -> Callable[[list[Array]], list[Array]]:
        value = loss_value(self.loss_fn, self.has_aux, self.layout)
        return lambda floats: list(jax.grad(value)(floats, arrays))

    def reference(
        self, floats: list[Array], arrays: list[Array], probe: list[Array]
    ) -> list[Array]:
        return list(jax.jvp(self._gradient(arrays), (floats,), (probe,))[1])

    def value(self, floats: list[Array], arrays: list[Array], probe: list[Array]) -> Array:
        return loss_value(self.loss_fn, self.has_aux, self.layout)(floats, arrays)

    def witness(
        self, floats: list[Array], arrays: list[Array], probe: list[Array], noise: list[Array]
    ) -> tuple[Any, list[Array]]:
        gradient = self._gradient(arrays)
        pair = [draw.astype(F64) for draw in noise]
        estimate = measure.directional_witness(
            lambda moved: measure.dot(gradient(moved), pair), floats, probe
        )
        return estimate, pair


def measure_map(
    map_: Map,
    floats: list[Array],
    arrays: list[Array],
    probe: list[Array],
    candidates: list[Array],
    candidates64: list[Array] | None,
    noise: list[Array] | None,
) -> dict[str, Any]:
    """Everything a map's verdict needs, as arrays (run with float64 enabled).

    Args:
        map_: the ``Map``.
        floats, arrays: the point (judged leaves and traced data) at the working dtype(s).
        probe: the map's probe (a cotangent, tangent or Hessian direction), or ``[]``.
        candidates: the candidate per quantity at the working dtype.
        candidates64: the candidate run in float64 on the upcast point, or ``None``.
        noise: the witness's standard-normal noise, or ``None`` for no witness.

    Returns:
        ``measure_candidate``'s dict, whose shared numbers are
        ``"loss"``, ``"loss_truth"`` and ``"truth_nonfinite"``.
    """

    def reference(point: tuple[list[Array], list[Array], list[Array]]) -> list[Array]:
        return map_.reference(list(point[0]), list(point[1]), list(point[2]))

    point = (floats, arrays, probe)
    point64 = measure.upcast(point)
    truths = reference(point64)
    magnitudes = term_magnitudes(*map_.linear(*point64)) or [None] * len(truths)
    floors = measure.floors(
        reference, point, truths, [c.dtype for c in candidates], candidates64 is not None
    )
    shared = {
        "loss": map_.value(*point).astype(F64),
        "loss_truth": map_.value(*point64),
        "truth_nonfinite": measure.nonfinite_count(truths),
    }
    refs = measure.References(truths, floors, magnitudes, shared)
    if noise is not None:
        estimate, pair = map_.witness(*point64, noise)
        refs = refs._replace(estimate=estimate, directions=pair)
    return measure.measure_candidate(refs, candidates, candidates64)


@functools.cache
def measuring_program(fast_compile: bool) -> Callable[..., Any]:
    """``measure_map``, jit-compiled (the map static), with or without fast compiling."""
    options = measure.FAST_COMPILE if fast_compile else {}
    return jax.jit(measure_map, static_argnums=0, compiler_options=options)


def run_map(
    map_: Map,
    floats: list[Array],
    arrays: list[Array],
    probe: list[Array],
    candidates: list[Array],
    candidates64: list[Array] | None,
    noise: list[Array] | None,
) -> dict[str, Any]:
    """Run the measuring program of ``map_`` (compiled once per map, shapes and dtypes)."""
    sizes = [a.size for a in (*floats, *arrays, *probe)]
    program = measuring_program(sum(sizes) <= measure.FAST_COMPILE_ELEMENTS)
    with jax.enable_x64(True):
        measured = program(map_, floats, arrays, probe, candidates, candidates64, noise)
        return jax.tree_util.tree_map(np.asarray, measured)


def map_rows(
    measured: dict[str, Any],
    names: Sequence[str],
    kind: str,
    like: Sequence[Any],
    constants: Constants,
    self_floors: dict[int, tuple[float, float]] | None = None,
) -> list[Agreement]:
    """One ``Agreement`` per quantity of a measured map.

    Args:
        measured: ``run_map``'s numbers.
        names: the quantities' names.
        kind: the rows' kind (``"leaf"``, ``"hvp"``, ``"vjp"``, ``"jvp"``).
        like: per quantity an array (or shape-dtype struct) of its shape and working dtype.
        constants: ``K`` and ``T``.
        self_floors: where autodiff is exact and the truth 0, the candidate's own rounding
            ``{index: (φ₂, φ∞)}`` (see ``netcheck.verifier.pytree.degenerate_self_floors``).
    """
    metrics = measured["metrics"]
    truth_bad = int(measured["truth_nonfinite"]) > 0
    rows = []
    for index, (name, array) in enumerate(zip(names, like, strict=True)):
        values = {metric: float(column[index]) for metric, column in metrics.items()}
        if self_floors and index in self_floors:
            keys = ("self_floor", "max_self_floor")
            if "distance64" in values and jnp.dtype(array.dtype) != F64:
                keys = ("self_floor64", "max_self_floor64")
            values[keys[0]], values[keys[1]] = self_floors[index]
        rows.append(
            judge_quantity(
                name,
                None,
                kind,
                values,
                array.dtype,
                tuple(array.shape),
                constants,
                truth_nonfinite=truth_bad,
            )
        )
    return rows


def map_reasons(
    measured: dict[str, Any], rows: Sequence[Agreement], what: str = "loss"
) -> list[str]:
    """The verdict's reasons: a NaN/Inf value, a disagreeing witness, each failing row."""
    reasons = []
    if not math.isfinite(float(measured["loss"])):
        reasons.append(f"{what}: NaN/Inf at the working dtype")
    if not math.isfinite(float(measured["loss_truth"])):
        reasons.append(f"{what}: NaN/Inf in float64")
    if "witness" in measured:
        witness = witness_record(measured["witness"])
        if not witness.agrees:
            reasons.append(witness_reason(witness))
        if witness.kink and any(not row.ok for row in rows):
            reasons.append(
                "(finite differences see a kink near this point: if it lies exactly on one, "
                "any subgradient is correct there)"
            )
    return reasons + [f"{row.name}: {row.why}" for row in rows if not row.ok]


def dtype_name(like: Sequence[Any]) -> str:
    """The working dtype's name, or ``"mixed"``."""
    names = {jnp.dtype(array.dtype).name for array in like}
    return names.pop() if len(names) == 1 else "mixed"


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """Several verdicts of one check (e.g. order 1 and the Hessian-vector products) as one:
    rows and reasons in order; the first verdict's witness, the others' in the reasons."""
    first = verdicts[0]
    return Verdict(
        dtype=first.dtype,
        rows=tuple(row for verdict in verdicts for row in verdict.rows),
        layers=first.layers,
        reasons=tuple(reason for verdict in verdicts for reason in verdict.reasons),
        first_bad_layer=first.first_bad_layer,
        kink=any(verdict.kink for verdict in verdicts),
        witness=first.witness,
        formula_note="; ".join(dict.fromkeys(v.formula_note for v in verdicts if v.formula_note))
        or None,
        noise_multiple=first.noise_multiple,
        tie_multiple=first.tie_multiple,
        skipped=first.skipped,
    )
