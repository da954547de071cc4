"""The verifier's answer: per-part judgements, rows, layers, the verdict and its table.

Plain frozen records built on the host from the measuring program's numbers. A verdict
carries the constants it was judged with, so this module never imports the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "wrong_formula", "imprecise", "fail", "nonfinite", "kink", "no_reference")
"""Row statuses: agrees; the formula is wrong (float64 disagrees); the formula is right but
rounds worse than autodiff at the working dtype; disagrees (no float64 run to say which);
NaN/Inf somewhere; disagrees at a non-differentiable point (not a failure); nothing to
judge against, because autodiff cannot differentiate the reference (a custom rule whose
primal is a ``pure_callback`` or a kernel: not a failure, the row says why)."""

PARTS = ("formula", "precision")
"""``formula``: the candidate run in float64 on the upcast point against the float64
truth. ``precision``: the candidate at the working dtype against autodiff's own error."""


@dataclass(frozen=True)
class Witness:
    """The float64 finite-difference witness along one random direction over all quantities.

    Attributes:
        value: the finite-difference estimate of ``∇ · d``.
        error: its estimated absolute error.
        truth: ``t · d`` from float64 autodiff.
        candidate: ``c · d`` from the gradient under test.
        tolerance: how far ``value`` may be from ``truth``.
        kink: the loss is not smooth along ``d`` at the ladder's scale, or (for the
            lecture's network) a relu/leaky_relu pre-activation is exactly 0; then the
            witness abstains: finite differences cannot judge there.
        agrees: ``|value - truth| ≤ tolerance``, or a kink.
    """

    value: float
    error: float
    truth: float
    candidate: float
    tolerance: float
    kink: bool
    agrees: bool


@dataclass(frozen=True)
class Part:
    """One part of a quantity's judgement (``formula`` or ``precision``), in both norms.

    Attributes:
        part: ``"formula"`` or ``"precision"``.
        dtype: the dtype judged (float64 for the formula part).
        ok: passes in both norms; ``None`` when not judged (see ``note``).
        distance: ``‖c - t‖₂``.
        tolerance: ``K φ₂ + T u ‖m‖₂``.
        floor: ``φ₂``, autodiff's own distance to the truth in the 2-norm.
        max_distance: ``‖c - t‖∞``.
        max_tolerance: ``K φ∞ + T u ‖m‖∞``.
        max_floor: ``φ∞``.
        worst_index: where ``|c - t|`` is largest (an index into the quantity's shape).
        worst_candidate: ``c`` there.
        worst_truth: ``t`` there.
        worst_autodiff: autodiff at the working dtype there (precision part), or ``None``.
        detectable_spread: the smallest relative error spread over the whole array that
            this part catches for sure (``(tol₂ + ‖c - t‖₂) / ‖t‖₂``).
        detectable_element: the smallest relative error in one element of
            root-mean-square size that it catches for sure, in the max norm.
        note: how the floor was measured, or why the part was not judged.
    """

    part: str
    dtype: str
    ok: bool | None
    distance: float
    tolerance: float
    floor: float
    max_distance: float
    max_tolerance: float
    max_floor: float
    worst_index: tuple[int, ...]
    worst_candidate: float
    worst_truth: float
    worst_autodiff: float | None
    detectable_spread: float
    detectable_element: float
    note: str

    @property
    def ratio(self) -> float:
        """The larger of ``distance / tolerance`` in the two norms (below 1 passes)."""
        return max(
            _ratio(self.distance, self.tolerance), _ratio(self.max_distance, self.max_tolerance)
        )

    @property
    def times_autodiff(self) -> float:
        """How many times autodiff's own error the candidate's is (the larger of the norms)."""
        return max(_ratio(self.distance, self.floor), _ratio(self.max_distance, self.max_floor))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (non-finite numbers become ``None``)."""
        record = {key: jsonable(value) for key, value in vars(self).items()}
        record["worst_index"] = list(self.worst_index)
        record["ratio"] = jsonable(self.ratio)
        return record


@dataclass(frozen=True)
class Agreement:
    """How one quantity (``δ^ℓ``, ``W_ℓ``, ``b_ℓ``, a pytree leaf) agrees with the truth.

    Attributes:
        name: ``"δ^2"``, ``"W_2"``, ``"b_2"``, or the leaf path (``jax.tree_util.keystr``).
        layer: ``ℓ`` (1-based), or ``None`` for a pytree leaf.
        kind: ``"delta"``, ``"W"``, ``"b"``, ``"leaf"`` or ``"hvp"``.
        status: one of ``STATUSES``.
        precision: the candidate at the working dtype against autodiff's own error.
        formula: the candidate in float64 against the float64 truth, or ``None`` when the
            candidate cannot run in float64 (the verdict says why) or the working dtype
            is float64 (then the two parts coincide: ``precision`` is the float64 one).
        relative_error: ``‖c - t‖₂ / ‖t‖₂`` at the working dtype.
        max_abs_error: ``‖c - t‖∞`` at the working dtype.
        cosine: ``⟨c, t⟩ / (‖c‖ ‖t‖)`` (1 when both are zero).
        shape: the quantity's shape.
        why: the reason for a non-``ok`` status, or how it was judged.
    """

    name: str
    layer: int | None
    kind: str
    status: str
    precision: Part
    formula: Part | None
    relative_error: float
    max_abs_error: float
    cosine: float
    shape: tuple[int, ...]
    why: str

    @property
    def ok(self) -> bool:
        """Whether this quantity is acceptable (agrees, disagrees only at a kink, or has no
        reference to disagree with)."""
        return self.status in ("ok", "kink", "no_reference")

    @property
    def parts(self) -> tuple[Part, ...]:
        """The judged parts, formula first."""
        return tuple(p for p in (self.formula, self.precision) if p is not None)

    @property
    def distance(self) -> float:
        """``‖c - t‖₂`` at the working dtype."""
        return self.precision.distance

    @property
    def tolerance(self) -> float:
        """The precision part's 2-norm tolerance ``K φ₂ + T u ‖m‖₂``."""
        return self.precision.tolerance

    @property
    def noise_floor(self) -> float:
        """``φ₂``, autodiff's own 2-norm distance to the truth at the working dtype."""
        return self.precision.floor

    @property
    def ratio(self) -> float:
        """The largest ``distance / tolerance`` over the judged parts and norms."""
        ratios = [p.ratio for p in self.parts if p.ok is not None]
        return max(ratios, default=0.0)

    @property
    def detectable_spread(self) -> float:
        """The smallest relative error spread over the array caught for sure (best part)."""
        return min((p.detectable_spread for p in self.parts if p.ok), default=math.inf)

    @property
    def detectable_element(self) -> float:
        """The smallest relative error in one RMS-sized element caught for sure (best part)."""
        return min((p.detectable_element for p in self.parts if p.ok), default=math.inf)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record of the row and both parts."""
        return {
            "name": self.name,
            "layer": self.layer,
            "kind": self.kind,
            "status": self.status,
            "shape": list(self.shape),
            "relative_error": jsonable(self.relative_error),
            "max_abs_error": jsonable(self.max_abs_error),
            "cosine": jsonable(self.cosine),
            "ratio": jsonable(self.ratio),
            "detectable_spread": jsonable(self.detectable_spread),
            "detectable_element": jsonable(self.detectable_element),
            "why": self.why,
            "precision": self.precision.to_dict(),
            "formula": None if self.formula is None else self.formula.to_dict(),
        }


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
        rows: every ``Agreement``; for a network from layer ``L`` down to 1.
        layers: for a network, one ``LayerAgreement`` per layer, ``layers[ℓ-1]``
            for layer ``ℓ``; empty for ``check_gradient``.
        reasons: one line per failure, most important first (empty when ``ok``).
        first_bad_layer: walking down from ``L``, the first layer whose ``δ`` disagrees;
            if every ``δ`` agrees, the first layer with any failing row; ``None`` if ok
            (and always for a pytree).
        kink: the point is non-differentiable somewhere (disagreements there are allowed).
        witness: the finite-difference witness, if one was taken.
        formula_note: why no row has a formula part, or ``None`` when they have one.
        noise_multiple: ``K`` the verdict was judged with.
        tie_multiple: ``T`` the verdict was judged with.
        skipped: pytree leaves that are not floating (ints, bools, non-arrays): not judged.
    """

    dtype: str
    rows: tuple[Agreement, ...]
    layers: tuple[LayerAgreement, ...]
    reasons: tuple[str, ...]
    first_bad_layer: int | None
    kink: bool
    witness: Witness | None = None
    formula_note: str | None = None
    noise_multiple: float = 8.0
    tie_multiple: float = 4.0
    skipped: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing failed (disagreements at a kink are not failures)."""
        return not self.reasons

    @property
    def reason(self) -> str | None:
        """The first reason, or ``None`` when ``ok``."""
        return self.reasons[0] if self.reasons else None

    @property
    def reference_suspect(self) -> bool:
        """The finite differences disagree with float64 autodiff: the truth itself is in doubt."""
        return self.witness is not None and not self.witness.agrees

    @property
    def worst_ratio(self) -> float:
        """The largest ``distance / tolerance`` over the finite rows (0 if none)."""
        ratios = [row.ratio for row in self.rows if math.isfinite(row.ratio)]
        return max(ratios, default=0.0)

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` carrying the verdict's table when it failed.

        For pytest: ``verdict.raise_if_failed()`` fails a test with the whole table, the
        failing rows first, instead of a truncated dataclass.
        """
        if not self.ok:
            raise AssertionError(self.table(failures_first=True))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record of everything above (each row as ``Agreement.to_dict``)."""
        return {
            "ok": self.ok,
            "dtype": self.dtype,
            "first_bad_layer": self.first_bad_layer,
            "kink": self.kink,
            "reference_suspect": self.reference_suspect,
            "reasons": list(self.reasons),
            "constants": {"noise_multiple": self.noise_multiple, "tie_multiple": self.tie_multiple},
            "formula_note": self.formula_note,
            "skipped": list(self.skipped),
            "witness": None
            if self.witness is None
            else {key: jsonable(value) for key, value in vars(self.witness).items()},
            "rows": [row.to_dict() for row in self.rows],
        }

    def table(self, failures_first: bool = False) -> str:
        """The verdict as text: a title, one line per quantity, then the reasons.

        Args:
            failures_first: list failing rows before passing ones (for assertion messages).
        """
        rows = list(self.rows)
        if failures_first:
            rows.sort(key=lambda row: row.ok)
        header = (
            "quantity",
            "status",
            "formula d/tol",
            "precision d/tol",
            "x autodiff",
            "worst element: index  cand | truth | autodiff",
            "catches (spread | element)",
        )
        lines = [header] + [_table_row(row) for row in rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        table = [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        return "\n".join([self._title(), *table, *self._footer()])

    def __str__(self) -> str:
        return self.table()

    def _title(self) -> str:
        title = (
            f"verdict: {'OK' if self.ok else 'FAILED'} ({self.dtype}; "
            f"K={self.noise_multiple:g}, T={self.tie_multiple:g})"
        )
        if self.first_bad_layer is not None:
            title += f"; first bad layer: {self.first_bad_layer}"
        return title

    def _footer(self) -> list[str]:
        tail = [f"  - {reason}" for reason in self.reasons]
        if self.formula_note:
            tail.append(f"  formula part: {self.formula_note}")
        if self.witness is not None:
            w = self.witness
            verdict = "kink: abstains" if w.kink else ("agrees" if w.agrees else "DISAGREES")
            tail.append(
                f"  witness (float64 finite differences along one random direction): {verdict}"
                f" (FD {w.value:.6g} ± {w.error:.2g}, autodiff {w.truth:.6g})"
            )
        if self.skipped:
            tail.append(f"  not floating, not judged: {', '.join(self.skipped)}")
        if self.kink:
            tail.append("  (non-differentiable point: disagreements there are not failures)")
        return tail


def _table_row(row: Agreement) -> tuple[str, ...]:
    precision, formula = row.precision, row.formula
    worst = formula if formula is not None and formula.ok is False else precision
    autodiff = "-" if worst.worst_autodiff is None else f"{worst.worst_autodiff:.6g}"
    return (
        row.name,
        row.status,
        "-" if formula is None else _part_cell(formula),
        _part_cell(precision),
        f"{precision.times_autodiff:.3g}" if precision.ok is not None else "-",
        f"{list(worst.worst_index)}  {worst.worst_candidate:.6g} | "
        f"{worst.worst_truth:.6g} | {autodiff}",
        f"{row.detectable_spread:.1e} | {row.detectable_element:.1e}",
    )


def _part_cell(part: Part) -> str:
    if part.ok is None:
        return "not judged"
    return f"{part.ratio:.3g}"


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.inf


def jsonable(value: Any) -> Any:
    """``value`` for JSON: a non-finite float becomes ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
