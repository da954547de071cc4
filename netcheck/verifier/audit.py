"""``audit``: every custom rule a program reaches, checked where the program reaches it.

A model's gradient check says *that* something is wrong; with several hand-written rules
inside (a layer norm, a fused loss, an attention kernel, a quantiser) it does not say
*which*. ``audit(fn, *args)`` finds every ``jax.custom_vjp`` / ``jax.custom_jvp`` rule that
``fn(*args)`` reaches (``netcheck._jaxpr.find_rules``: inside ``jit``, ``vmap``,
``scan``, ``cond``, ``remat``, and rules called inside other rules' primals) and judges
each one with ``netcheck.check_custom_rule`` at the values the program hands it
there: under ``vmap`` one example's (example 0), in a loop the first iteration's. Where
those values cannot be recovered (a branch not taken, a region JAX stages under ``vmap``,
a program that cannot run op by op), the rule is checked at random values of the same
shapes and dtypes (floats standard normal, integers and booleans zero), and the report
says so.

Choices:

* **JAX's own rules are not audited by default.** ``jax.nn.relu``, ``jax.nn.softmax``,
  ``jax.numpy.linalg`` and friends are custom rules too, reached by most models; they are
  JAX's, tested by JAX, and auditing them would fill the table with rows the user cannot
  act on. The report lists them by name; ``include_jax_rules=True`` audits them as well
  (cheap proof that the machinery works on rules known to be right).
* **Surrogates are skipped by name.** A straight-through estimator, a gradient clip or a
  stop-gradient trick is deliberately not the derivative of its primal. ``skip`` takes
  such rules' names (the primal's ``__qualname__`` or its last part): they are listed as
  skipped. An unskipped rule whose gradient differs grossly from its primal's (relative
  error above ``SURROGATE_RELATIVE``) fails with a hint to skip it if intended; a
  small error gets no such hint: no one writes a surrogate that is off by ``1e-4``.
* Every name in ``skip`` must match a rule the program reaches (a misspelt name would
  otherwise pass a test silently).

Cost: ``fn`` is traced once and run once op by op (see ``netcheck._jaxpr``), then each
rule is checked (compiled once per rule, shapes and dtypes).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from netcheck._jaxpr import ReachedRule, UnsupportedJaxVersion, find_rules
from netcheck.verifier.checks import check_callable, check_concrete, check_seed
from netcheck.verifier.custom_rule import check_custom_rule
from netcheck.verifier.verdict import Verdict

SURROGATE_RELATIVE = 1e-2
"""A failing rule whose worst relative error (at the working dtype) reaches this is likely a
deliberate surrogate: its failure carries a hint to ``skip`` it if so."""

STATUSES = ("failed", "error", "no_reference", "ok", "skipped")
"""An audited rule's status, worst first: its rule disagrees with autodiff of its primal;
it could not be checked (its rule does not fit its primal, the error says how); autodiff
cannot differentiate its primal (nothing to judge against: not a failure); it agrees; it
was skipped on purpose."""

_JAX_DIRS = tuple(
    os.path.dirname(module.__file__) + os.sep
    for module in (jax, __import__("jaxlib"))
    if getattr(module, "__file__", None)
)


@dataclass(frozen=True)
class AuditedRule:
    """One rule at one call site of the program, and how it was judged.

    Attributes:
        name: the primal's ``__qualname__`` (``layer_norm``, ``Model.__call__.<locals>.f``).
        kind: ``"custom_vjp"`` or ``"custom_jvp"``.
        status: one of ``STATUSES``.
        verdict: ``check_custom_rule``'s verdict, or ``None`` when skipped or
            not checkable.
        location: where the primal is defined, ``"path/to/file.py:12"``.
        call_site: the line of the program that calls it.
        path: the transformations around the call, ``"jit(loss) > vmap"`` (``""`` at top
            level).
        count: how many times the program evaluates it per call (per example; 0 for a
            branch not taken).
        values_recovered: whether it was checked at the program's own values.
        note: the random values' reason, the error, or the surrogate hint (``""`` if none).
        rule: the ``jax.custom_vjp`` / ``jax.custom_jvp`` object.
    """

    name: str
    kind: str
    status: str
    verdict: Verdict | None
    location: str
    call_site: str
    path: str
    count: int
    values_recovered: bool
    note: str = ""
    rule: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Nothing wrong: it agrees, has no reference to disagree with, or was skipped."""
        return self.status in ("ok", "no_reference", "skipped")

    @property
    def worst_ratio(self) -> float:
        """The verdict's largest distance/tolerance (0 without a verdict)."""
        return 0.0 if self.verdict is None else self.verdict.worst_ratio


@dataclass(frozen=True)
class AuditReport:
    """What ``audit`` found: every rule reached, worst first.

    Attributes:
        rules: one ``AuditedRule`` per rule and call site, worst first (failed and
            not checkable ones, then by the verdict's worst distance/tolerance).
        jax_rules: JAX's own rules the program reaches and that were not audited
            (``include_jax_rules=False``), by name.
    """

    rules: tuple[AuditedRule, ...]
    jax_rules: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no audited rule failed (an empty report is ok)."""
        return all(rule.ok for rule in self.rules)

    @property
    def failed(self) -> tuple[AuditedRule, ...]:
        """The rules that are not ok."""
        return tuple(rule for rule in self.rules if not rule.ok)

    def __getitem__(self, name: str) -> AuditedRule:
        """The (first) audited rule called ``name`` (qualified or last part)."""
        for rule in self.rules:
            if _matches(name, rule.name):
                return rule
        raise KeyError(f"no rule {name!r} in this audit; rules: {[r.name for r in self.rules]}")

    def table(self, verdicts: bool = False) -> str:
        """The report as text: a title, one line per rule, then the notes.

        Args:
            verdicts: append each failing rule's verdict table (failing rows first).
        """
        lines = [self._title()]
        if self.rules:
            header = ("rule", "kind", "status", "worst d/tol", "defined at", "called at", "path",
                      "count", "values")  # fmt: skip
            body = [header, *(_rule_cells(rule) for rule in self.rules)]
            widths = [max(len(row[i]) for row in body) for i in range(len(header))]
            lines += [
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in body
            ]
        for rule in self.rules:
            lines += [f"  - {rule.name}: {reason}" for reason in _reasons(rule)]
        if self.jax_rules:
            lines.append(
                f"  JAX's own rules reached, not audited: {', '.join(self.jax_rules)} "
                "(include_jax_rules=True audits them)"
            )
        if verdicts:
            for rule in self.failed:
                if rule.verdict is not None:
                    lines += ["", f"{rule.name} ({_short(rule.location)}):"]
                    lines.append(rule.verdict.table(failures_first=True))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` carrying the report and each failing rule's verdict."""
        if not self.ok:
            raise AssertionError(self.table(verdicts=True))

    def _title(self) -> str:
        if not self.rules:
            return "audit: OK: the program reaches no custom_vjp/custom_jvp rule of its own"
        counts = {status: 0 for status in STATUSES}
        for rule in self.rules:
            counts[rule.status] += 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        return f"audit: {'OK' if self.ok else 'FAILED'}: {len(self.rules)} rule(s): {summary}"


def audit(
    fn: Callable[..., Any],
    *args: Any,
    skip: str | Iterable[str] = (),
    include_jax_rules: bool = False,
    seed: int = 0,
    **kwargs: Any,
) -> AuditReport:
    """Check every custom rule ``fn(*args, **kwargs)`` reaches, where it reaches it.

    Args:
        fn: any JAX-traceable function (jitted or not); traced once and run once.
        *args: its arguments (concrete values).
        skip: names of rules that are deliberately not the derivative of their primal
            (straight-through estimators, gradient clipping): the primal's
            ``__qualname__`` or its last part. Each must match a rule the program reaches.
        include_jax_rules: also audit the rules JAX itself defines (``jax.nn.relu``, ...).
        seed: seeds the checks' probes and the random values where none were recovered.
        **kwargs: keyword arguments of ``fn`` (the names above are netcheck's).

    Returns:
        An ``AuditReport``: ``.ok``, ``.rules`` worst first, ``str(report)`` a table.

    Raises:
        TypeError: ``fn`` is not callable, ``skip`` is not names, or values are traced.
        ValueError: ``fn`` cannot be traced at these arguments (the error names JAX's
            message), or a ``skip`` name matches no rule the program reaches.
        UnsupportedJaxVersion: the rule finder is not tested on this JAX.
    """
    check_callable(fn, "fn")
    check_concrete((args, kwargs), "audit")
    skip = _skip_names(skip)
    seed = check_seed(seed)
    try:
        reached = find_rules(fn, *args, **kwargs)
    except UnsupportedJaxVersion:
        raise
    except Exception as error:  # the user's program at the user's arguments
        text = str(error).strip()
        first = text.splitlines()[0][:300] if text else ""
        raise ValueError(
            f"audit: fn cannot be traced at these arguments ({type(error).__name__}: {first})"
        ) from error
    unmatched = [name for name in skip if not any(_matches(name, r.name) for r in reached)]
    if unmatched:
        names = sorted({r.name for r in reached})
        raise ValueError(
            f"skip names {unmatched}, which match no rule the program reaches "
            f"(it reaches: {', '.join(names) or 'none'})"
        )
    ours = [r for r in reached if include_jax_rules or not _is_jax_rule(r)]
    jax_rules = tuple(dict.fromkeys(r.name for r in reached if not any(r is o for o in ours)))
    audited = [_audit_one(r, skip, seed) for r in ours]
    audited.sort(key=lambda rule: (STATUSES.index(rule.status), -_finite(rule.worst_ratio)))
    return AuditReport(tuple(audited), jax_rules)


def _skip_names(skip: Any) -> tuple[str, ...]:
    names = (skip,) if isinstance(skip, str) else skip
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"skip must be rule names, got {type(skip).__name__}") from None
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"skip must be rule names (strings), got {names!r}")
    return names


def _matches(name: str, qualname: str) -> bool:
    return name == qualname or name == qualname.rpartition(".")[2]


def _is_jax_rule(record: ReachedRule) -> bool:
    return record.location.startswith(_JAX_DIRS)


def _finite(value: float) -> float:
    return math.inf if math.isnan(value) else value


def _audit_one(record: ReachedRule, skip: tuple[str, ...], seed: int) -> AuditedRule:
    """Check one reached rule (or skip it) and say how."""
    common = {
        "name": record.name,
        "kind": record.kind,
        "location": record.location,
        "call_site": record.call_site,
        "path": record.path,
        "count": record.count,
        "values_recovered": record.values_recovered,
        "rule": record.rule,
    }
    if any(_matches(name, record.name) for name in skip):
        return AuditedRule(status="skipped", verdict=None, note="skipped on purpose", **common)
    args, note = record.args, ""
    if not record.values_recovered:
        args = random_like(record.args, seed)
        note = f"checked at random values of the same shapes and dtypes: {record.why_not_recovered}"
    try:
        verdict = check_custom_rule(record.rule, *args, seed=seed)
    except (TypeError, ValueError) as error:  # the rule itself does not fit its primal
        return AuditedRule(status="error", verdict=None, note=_join(note, str(error)), **common)
    if not verdict.ok:
        return AuditedRule(
            status="failed",
            verdict=verdict,
            note=_join(note, _hint(record.name, verdict)),
            **common,
        )
    status = "no_reference" if any(r.status == "no_reference" for r in verdict.rows) else "ok"
    return AuditedRule(status=status, verdict=verdict, note=note, **common)


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _hint(name: str, verdict: Verdict) -> str:
    """Whether a failure looks like a deliberate surrogate (then: skip it) or a slip, and
    which arguments get exactly zero (a ``None`` cotangent) where the primal's is not."""
    failing = [row for row in verdict.rows if not row.ok]
    zero = [row.name for row in failing if row.relative_error == 1 and row.cosine == 0]
    short = name.rpartition(".")[2]
    notes = []
    if zero:
        notes.append(
            f"the rule gives exactly zero for {', '.join(zero)} (a None cotangent?) where its "
            "primal's derivative is not zero: harmless only where that argument is never "
            "differentiated (labels, a mask)"
        )
    rest = [row.relative_error for row in failing if row.name not in zero]
    worst = max(rest, default=0.0)
    if not rest:
        return "; ".join(notes)
    if math.isnan(worst) or worst >= SURROGATE_RELATIVE:
        notes.append(
            f"its gradient differs grossly from its primal's (relative error {worst:.2g}): if "
            f"{short} is deliberately not the derivative (a straight-through estimator, "
            f"gradient clipping, a stop-gradient surrogate), pass skip=({short!r},)"
        )
    else:
        notes.append(
            f"relative error {worst:.2g}: too small for a deliberate surrogate, most likely a slip"
        )
    return "; ".join(notes)


def random_like(args: tuple, seed: int) -> tuple:
    """``args`` with each ``jax.ShapeDtypeStruct`` leaf replaced by values: floats standard
    normal, everything else zeros (a valid index, ``False``); other leaves as they are."""
    rng = np.random.default_rng(seed)

    def draw(leaf: Any) -> Any:
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            return leaf
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype)
        return jnp.zeros(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map(draw, args)


def _short(location: str) -> str:
    """``file.py:12`` of a ``path/to/file.py:12``."""
    return os.path.basename(location)


def _rule_cells(rule: AuditedRule) -> tuple[str, ...]:
    ratio = "-" if rule.verdict is None else f"{rule.worst_ratio:.3g}"
    values = "recovered" if rule.values_recovered else "random"
    return (rule.name, rule.kind, rule.status, ratio, _short(rule.location),
            _short(rule.call_site), rule.path or "-", str(rule.count), values)  # fmt: skip


def _reasons(rule: AuditedRule) -> list[str]:
    """The notes under the table: failures' reasons, errors, hints, random values."""
    lines = []
    if rule.verdict is not None and not rule.verdict.ok:
        lines += list(rule.verdict.reasons)
    if rule.status == "no_reference":
        lines.append(rule.verdict.formula_note)
    if rule.status != "skipped" and rule.note:
        lines.append(rule.note)
    return lines
