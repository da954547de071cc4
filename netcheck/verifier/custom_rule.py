"""``check_custom_rule``: a ``jax.custom_vjp`` / ``jax.custom_jvp`` rule judged against
autodiff of its own primal.

A custom rule claims to compute the derivative of its primal ``f.fun``. Both are linear
maps at the point ``x``, so they are compared through random probes, with the verifier's
calibrated judgement (formula and precision parts, 2-norm and max norm; see
``netcheck.verifier``) and its map core (``netcheck.verifier.maps``):

* **custom_vjp**, along ``P`` random cotangents ``c_p`` (each floating output leaf ``y_k``
  gets standard-normal noise over ``rms(y_k)``, so every output weighs alike in
  ``Jᵀc = Σ_k J_kᵀ c_k``): the rule's ``jax.vjp(f, x)[1](c_p)`` against
  ``jax.vjp(f.fun, x)[1](c_p)``, one row per floating argument leaf. Witness: move the
  arguments along a random relative direction ``d`` and difference
  ``⟨Σ_p c_p, f.fun(x + h d)⟩``, whose derivative is ``Σ_p ⟨Jᵀ c_p, d⟩``.
* **custom_jvp**, along ``P`` random tangents ``t_p`` (noise times each argument leaf's
  own root-mean-square), one argument leaf ``i`` at a time: the rule's ``J_i t_{p,i}``
  (``jax.linearize(f)``) against ``jax.linearize(f.fun)``, one row per (argument leaf,
  output leaf). Witness: move along ``Σ_p t_p`` and difference ``⟨w, f.fun(x + h t)⟩`` for
  a random output weight ``w``, whose derivative is ``⟨w, J Σ_p t_p⟩``.

Each row shows the worst of its ``P`` probes (its reason says which). The candidate is
the rule itself, run at the working dtype and, for the formula part, in float64 on the
exactly upcast point; the reference is autodiff of ``f.fun`` in float64 (truth) and at
the working dtype (floor). Probes are rounded to the working dtype, so every side sees
the same numbers.

Arguments: keywords are resolved to positions as JAX does (defaults included). Arguments
at ``nondiff_argnums`` are passed as they are; integer and boolean leaves are carried
along; both are listed in the verdict as not judged, as are non-floating outputs.

A primal that autodiff cannot differentiate (a ``pure_callback``, a ``while_loop`` under
reverse mode, a kernel) gives rows with status ``"no_reference"`` and the reason: nothing
to judge the rule against, which is not a failure.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from netcheck._jaxpr import _source as rule_source
from netcheck.verifier import measure
from netcheck.verifier.checks import candidate_in_float64, check_concrete, check_seed
from netcheck.verifier.maps import LinearInProbe, dtype_name, map_reasons, map_rows, run_map
from netcheck.verifier.measure import F64
from netcheck.verifier.point import Layout, split_point
from netcheck.verifier.pytree import degenerate_self_floors
from netcheck.verifier.tolerance import DEFAULT_CONSTANTS, checked_constants
from netcheck.verifier.verdict import Agreement, Part, Verdict
from netcheck.verifier.witness import witness_record

Array = jax.Array
PyTree = Any

PROBES = 3
"""Random cotangents (custom_vjp) or tangents (custom_jvp) a rule is checked along."""

_PROBE_SEED = 7919  # the probes' noise is drawn from seed + this (the witness's from seed)


def check_custom_rule(
    f: Any,
    *args: Any,
    probes: int = PROBES,
    seed: int = 0,
    witness: bool = True,
    noise_multiple: float = DEFAULT_CONSTANTS.noise_multiple,
    tie_multiple: float = DEFAULT_CONSTANTS.tie_multiple,
    **kwargs: Any,
) -> Verdict:
    """Judge a custom rule against autodiff of its own primal, argument by argument.

    ``f`` is a ``jax.custom_vjp`` function (its ``fwd``/``bwd`` are judged) or a
    ``jax.custom_jvp`` function (its ``jvp``), called as ``f(*args, **kwargs)``. Its
    rule is compared with ``jax.vjp`` / ``jax.jvp`` of ``f.fun``, the plain primal, along
    ``probes`` random cotangents or tangents (see ``netcheck.verifier.custom_rule``), with the
    verifier's formula and precision parts in both norms and a float64 finite-difference
    witness on the primal.

    Args:
        f: a ``jax.custom_vjp`` or ``jax.custom_jvp`` function (also one wrapped in
            ``jax.jit``), its rule defined.
        *args: its positional arguments: pytrees of arrays or Python scalars; floating
            leaves are judged.
        probes: how many random cotangents/tangents (default 3).
        seed: seeds the probes and the witness.
        witness: take the float64 finite-difference witness (on by default).
        noise_multiple: ``K`` (default 8).
        tie_multiple: ``T`` (default 4).
        **kwargs: keyword arguments of ``f`` (resolved to positions as JAX does; the names
            above are netcheck's).

    Returns:
        A ``Verdict``. For a custom_vjp one row per floating
        argument leaf, named by position and path (``args[0]['w']``); for a custom_jvp
        one row per (argument leaf, floating output leaf), ``args[0] → out[1]`` (``→ out``
        for a single output). ``skipped`` lists the arguments and outputs not judged.

    Raises:
        TypeError: ``f`` is not a custom_vjp/custom_jvp function with its rule defined, or
            the arguments do not fit its signature, or values are traced.
        ValueError: no floating argument or output to judge, the primal fails at these
            arguments, or the rule's outputs disagree with its primal's in structure,
            shape or dtype (the error names the rule).
    """
    rule = custom_rule_of(f)
    check_concrete((args, kwargs), "check_custom_rule")
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        raise ValueError(f"probes must be a positive int, got {probes!r}")
    seed = check_seed(seed)
    constants = checked_constants(noise_multiple, tie_multiple)
    call, floats, arrays, skipped = primal_call(rule, args, kwargs)
    map_ = (VjpMap if call.kind == "custom_vjp" else JvpMap)(call, probes)
    probe = map_.draw_probes(floats, arrays, seed)
    names = map_.quantity_names()
    reference_error, like = _check_rule_fits(rule, map_, floats, arrays, probe)
    if reference_error is not None:
        return _no_reference_verdict(map_, names, reference_error, floats, constants, skipped)
    candidates = candidate_program(rule, map_, floats, arrays, probe)
    candidates64, formula_note = None, None
    if any(jnp.dtype(leaf.dtype) != F64 for leaf in floats):
        candidates64, formula_note = candidate_in_float64(
            lambda: candidate_program(rule, map_, *measure.upcast_jit((floats, arrays, probe))),
            [jax.ShapeDtypeStruct(spec.shape, F64) for spec in like],
            f"the {call.kind} rule of {call.name}",
        )
    noise = map_.witness_noise(floats, seed) if witness else None
    measured = run_map(map_, floats, arrays, probe, candidates, candidates64, noise)
    self_floors = degenerate_self_floors(
        measured,
        lambda low_floats, low_arrays: _candidate_at(rule, map_, low_floats, low_arrays, probe),
        floats,
        arrays,
        candidates,
        candidates64,
    )
    rows = map_rows(measured, names, map_.kind, like, constants, self_floors)
    return Verdict(
        dtype=dtype_name(floats),
        rows=tuple(rows),
        layers=(),
        reasons=tuple(map_reasons(measured, rows, "primal output")),
        first_bad_layer=None,
        kink=False,
        witness=None if noise is None else witness_record(measured["witness"]),
        formula_note=formula_note,
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
        skipped=tuple(skipped),
    )


# ----- the rule, its arguments and its outputs --------------------------------------------


def custom_rule_of(f: Any) -> Any:
    """The ``jax.custom_vjp`` / ``jax.custom_jvp`` object of ``f`` (unwrapping ``jax.jit``).

    Raises:
        TypeError: ``f`` is something else, or its rule was never defined.
    """
    rule = f
    while not isinstance(rule, (jax.custom_vjp, jax.custom_jvp)):
        rule = getattr(rule, "__wrapped__", None)
        if rule is None:
            what = getattr(f, "__qualname__", None) or type(f).__name__
            raise TypeError(
                "check_custom_rule expects a jax.custom_vjp or jax.custom_jvp function (a "
                f"function decorated with one, its rule defined by defvjp/defjvp), got {what!r}"
                "; a hand-written gradient function is checked with check_gradient"
            )
    undefined = (
        rule.fwd is None or rule.bwd is None
        if isinstance(rule, jax.custom_vjp)
        else rule.jvp is None
    )
    if undefined:
        kind, define = (
            ("custom_vjp", "defvjp")
            if isinstance(rule, jax.custom_vjp)
            else ("custom_jvp", "defjvp")
        )
        raise TypeError(
            f"{rule_source(rule.fun)[0]} is a {kind} function without a rule: define it with "
            f".{define}(...) before checking it"
        )
    return rule


@dataclass(frozen=True)
class Nondiff:
    """An argument at one of the rule's ``nondiff_argnums``: one opaque leaf, passed as it
    is (hashed by value where it can be, so a new call with equal settings reuses the
    compiled programs)."""

    value: Any


@dataclass(frozen=True)
class PrimalCall:
    """One call of a rule's primal, split for the measuring program (static, hashable).

    It holds the primal ``f.fun``, not the rule: rules that share a primal function (a
    rule and its variants) share their compiled measuring programs.

    Attributes:
        fun: the primal, ``f.fun``.
        kind: ``"custom_vjp"`` or ``"custom_jvp"``.
        name: the primal's qualified name.
        location: where the primal is defined, ``"file.py:12"``.
        layout: where the positional arguments' leaves go (nondiff ones wrapped as
            ``Nondiff``).
        output_treedef: the primal output's structure.
        output_specs: per output leaf ``(shape, dtype name)``.
        argument_names: the floating argument leaves' names (``args[0]['w']``).
        output_names: the floating output leaves' names (``out``, ``out[1]['a']``).
    """

    fun: Callable
    kind: str
    name: str
    location: str
    layout: Layout
    output_treedef: Any
    output_specs: tuple[tuple[tuple[int, ...], str], ...]
    argument_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def floating(self) -> tuple[bool, ...]:
        """Per output leaf: whether it is floating (judged through)."""
        return tuple(jnp.issubdtype(jnp.dtype(d), jnp.floating) for _, d in self.output_specs)

    def arguments(self, floats: Sequence[Array], arrays: Sequence[Array]) -> tuple:
        """The rule's positional arguments, rebuilt from the split point."""
        positional = self.layout.rebuild(floats, arrays)[0]
        return tuple(a.value if isinstance(a, Nondiff) else a for a in positional)

    def primal(self, floats: Sequence[Array], arrays: Sequence[Array]) -> list[Array]:
        """The floating output leaves of the primal ``f.fun``."""
        return self.float_outputs(self.fun(*self.arguments(floats, arrays)))

    def through(self, rule: Any) -> Callable[[Sequence[Array], Sequence[Array]], list[Array]]:
        """The floating output leaves of the rule's function ``f``: differentiated, its
        rule runs."""
        return lambda floats, arrays: self.float_outputs(rule(*self.arguments(floats, arrays)))

    def float_outputs(self, out: PyTree) -> list[Array]:
        leaves = jax.tree_util.tree_leaves(out)
        return [leaf for leaf, keep in zip(leaves, self.floating, strict=True) if keep]


def _positional(rule: Any, args: tuple, kwargs: dict) -> tuple:
    """Keywords resolved to positions, defaults included, as JAX resolves them for a rule."""
    try:
        signature = inspect.signature(rule.fun)
    except (TypeError, ValueError):  # no signature to read (a builtin): positions only
        if kwargs:
            raise TypeError(
                f"{rule_source(rule.fun)[0]} has no signature to place keyword arguments "
                "by; pass them by position"
            ) from None
        return tuple(args)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(
            f"the arguments do not fit {rule_source(rule.fun)[0]}{signature}: {error}"
        ) from None
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(
            f"{rule_source(rule.fun)[0]} takes keyword-only arguments "
            f"({', '.join(bound.kwargs)}), which custom rules cannot differentiate"
        )
    return tuple(bound.args)


def primal_call(rule: Any, args: tuple, kwargs: dict) -> tuple[PrimalCall, list, list, list[str]]:
    """Split a call of ``rule`` into judged leaves, traced data and static leaves.

    Returns:
        ``(call, floats, arrays, skipped)``: the ``PrimalCall``, the floating argument
        leaves (judged), the other array leaves (traced), and the names of everything not
        judged (``args[1] (nondiff)``, ``args[2]['n']``, ``output[1]``).

    Raises:
        TypeError, ValueError: see ``check_custom_rule``.
    """
    name, location = rule_source(rule.fun)
    kind = "custom_vjp" if isinstance(rule, jax.custom_vjp) else "custom_jvp"
    positional = _positional(rule, args, kwargs)
    nondiff = set(rule.nondiff_argnums)
    wrapped = tuple(Nondiff(a) if i in nondiff else a for i, a in enumerate(positional))
    for path, leaf in jax.tree_util.tree_leaves_with_path(wrapped):
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jnp.dtype(dtype) == F64 and not jax.config.jax_enable_x64:
            raise ValueError(
                f"args{jax.tree_util.keystr(path)} is float64 but JAX runs in 32-bit mode: "
                "enable 64-bit mode or pass float32 arguments"
            )
    if not any(measure.is_float(leaf) for leaf in jax.tree_util.tree_leaves(wrapped)):
        raise ValueError(
            f"{name} gets no floating argument to differentiate (only integer, boolean or "
            "nondiff_argnums ones): its rule has nothing to be judged on"
        )
    layout, floats, arrays, float_paths, skipped_paths = split_point(wrapped, (), {})
    skipped = [
        f"args{path} (nondiff)" if int(path[1 : path.index("]")]) in nondiff else f"args{path}"
        for path in skipped_paths
    ]
    outputs = _primal_outputs(rule, name, layout, floats, arrays)
    specs = tuple(
        (tuple(leaf.shape), jnp.dtype(leaf.dtype).name)
        for leaf in jax.tree_util.tree_leaves(outputs)
    )
    named = [
        (jax.tree_util.keystr(path), leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(outputs)
    ]
    output_names = tuple(
        f"out{path}" for path, leaf in named if jnp.issubdtype(leaf.dtype, jnp.floating)
    )
    skipped += [
        f"output{path or ''} ({jnp.dtype(leaf.dtype).name})"
        for path, leaf in named
        if not jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    if not output_names:
        raise ValueError(f"{name} returns no floating output: its rule has nothing to carry")
    call = PrimalCall(
        rule.fun,
        kind,
        name,
        location,
        layout,
        jax.tree_util.tree_structure(outputs),
        specs,
        tuple(f"args{path}" for path in float_paths),
        output_names,
    )
    return call, floats, arrays, skipped


def _primal_outputs(rule: Any, name: str, layout: Layout, floats: list, arrays: list) -> PyTree:
    """The primal's output shapes and dtypes (traced abstractly, nothing runs)."""

    def primal(floats: list, arrays: list) -> PyTree:
        positional = layout.rebuild(floats, arrays)[0]
        return rule.fun(*(a.value if isinstance(a, Nondiff) else a for a in positional))

    try:
        return jax.eval_shape(primal, floats, arrays)
    except Exception as error:  # the user's primal at the user's arguments
        raise ValueError(
            f"{name} (the primal f.fun) fails at these arguments: {_first_line(error)}"
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"


# ----- the two maps (see netcheck.verifier.maps.Map) ---------------------------------------


def _scaled_noise(seed: int, arrays: Sequence[Array], power: int, probes: int) -> list[Array]:
    """Per array, ``probes`` draws of standard-normal noise stacked on a leading axis,
    times ``rms(array) ** power``, rounded to the array's dtype (so the working run, the
    truth and the rule all see the same numbers).

    An array whose root-mean-square is 0 or not finite, or whose scale would leave its
    dtype's range, gets unscaled noise.
    """
    stacked = [jax.ShapeDtypeStruct((probes, *a.shape), a.dtype) for a in arrays]
    scaled = []
    for draw, array in zip(measure.witness_noise(seed, stacked), arrays, strict=True):
        values = np.asarray(array, np.float64)
        rms = float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0
        scale = rms**power if 0 < rms < math.inf else 1.0
        if not 0 < scale < float(jnp.finfo(array.dtype).max) / 64:
            scale = 1.0
        scaled.append(jnp.asarray(np.asarray(draw, np.float64) * scale, array.dtype))
    return scaled


def _nan_if_nonfinite(leaves: Sequence[Array]) -> Array:
    """0, or NaN when any leaf holds NaN/Inf (``Inf · 0`` is NaN; nothing can overflow)."""
    return sum((jnp.sum(leaf * 0).astype(F64) for leaf in leaves), jnp.zeros((), F64))


def _stacked(per_probe: list[list[Array]]) -> list[Array]:
    """``[[q_1 .. q_n] per probe]`` -> ``[stack over probes of q_i]``, the probe axis first."""
    return [jnp.stack(column) for column in zip(*per_probe, strict=True)]


@dataclass(frozen=True)
class VjpMap(LinearInProbe):
    """A custom_vjp's ``Jᵀ c_p`` for ``P`` cotangents ``c_p``.

    The probe is, per floating output leaf, its ``P`` cotangents stacked ``(P, *shape)``;
    the quantities are, per floating argument leaf, its ``P`` cotangents stacked the same
    way (so a row judges all probes at once, its worst element's first index the probe).
    """

    call: PrimalCall
    probes: int
    kind = "vjp"

    def quantity_names(self) -> list[str]:
        return list(self.call.argument_names)

    def draw_probes(self, floats: list, arrays: list, seed: int) -> list[Array]:
        """``P`` cotangents: noise over each output's root-mean-square (so every output
        weighs alike in ``Jᵀc``), from the primal's outputs at the working dtype."""
        outputs = primal_program(self.call, floats, arrays)
        return _scaled_noise(seed + _PROBE_SEED, outputs, -1, self.probes)

    def witness_noise(self, floats: list, seed: int) -> list[Array]:
        return measure.witness_noise(seed, floats)

    def _pullbacks(self, outputs: Callable, floats: list, arrays: list, probe: list) -> list:
        _, pullback = jax.vjp(lambda moved: outputs(moved, arrays), list(floats))
        return _stacked([pullback([c[p] for c in probe])[0] for p in range(self.probes)])

    def reference(self, floats: list, arrays: list, probe: list) -> list[Array]:
        return self._pullbacks(self.call.primal, floats, arrays, probe)

    def candidate(self, rule: Any, floats: list, arrays: list, probe: list) -> list[Array]:
        return self._pullbacks(self.call.through(rule), floats, arrays, probe)

    def value(self, floats: list, arrays: list, probe: list) -> Array:
        return _nan_if_nonfinite(self.call.primal(floats, arrays))

    def witness(
        self, floats: list, arrays: list, probe: list, noise: list
    ) -> tuple[Any, list[Array]]:
        """``∂/∂h ⟨Σ_p c_p, f.fun(x + h d)⟩ = Σ_p ⟨Jᵀ c_p, d⟩``: each quantity's pair is its
        leaf's direction ``d``, repeated along the probe axis."""
        directions = measure.relative_direction(noise, floats)
        total = [c.astype(F64).sum(axis=0) for c in probe]
        estimate = measure.directional_witness(
            lambda moved: measure.dot(total, self.call.primal(moved, arrays)), floats, directions
        )
        return estimate, [jnp.broadcast_to(d, (self.probes, *d.shape)) for d in directions]


@dataclass(frozen=True)
class JvpMap(LinearInProbe):
    """A custom_jvp's ``J_i t_{p,i}`` for ``P`` tangents ``t_p``, one argument leaf ``i`` at
    a time.

    The probe is, per floating argument leaf, its ``P`` tangents stacked ``(P, *shape)``;
    the quantities are, per (argument leaf, floating output leaf), the output's ``P``
    tangents stacked the same way.
    """

    call: PrimalCall
    probes: int
    kind = "jvp"

    def quantity_names(self) -> list[str]:
        outputs = self.call.output_names
        return [
            f"{argument} → {output}" if len(outputs) > 1 else argument
            for argument in self.call.argument_names
            for output in outputs
        ]

    def draw_probes(self, floats: list, arrays: list, seed: int) -> list[Array]:
        """``P`` tangents: noise times each argument leaf's root-mean-square."""
        return _scaled_noise(seed + _PROBE_SEED, floats, 1, self.probes)

    def witness_noise(self, floats: list, seed: int) -> list[Array]:
        specs = [
            jax.ShapeDtypeStruct(shape, dtype)
            for (shape, dtype), keep in zip(self.call.output_specs, self.call.floating, strict=True)
            if keep
        ]
        return measure.witness_noise(seed, specs)

    def _tangents(self, outputs: Callable, floats: list, arrays: list, probe: list) -> list:
        _, linear = jax.linearize(lambda moved: outputs(moved, arrays), list(floats))
        columns = []
        for i in range(len(floats)):
            per_probe = [
                linear([t[p] if k == i else jnp.zeros_like(t[p]) for k, t in enumerate(probe)])
                for p in range(self.probes)
            ]
            columns.extend(_stacked(per_probe))
        return columns

    def reference(self, floats: list, arrays: list, probe: list) -> list[Array]:
        return self._tangents(self.call.primal, floats, arrays, probe)

    def candidate(self, rule: Any, floats: list, arrays: list, probe: list) -> list[Array]:
        return self._tangents(self.call.through(rule), floats, arrays, probe)

    def value(self, floats: list, arrays: list, probe: list) -> Array:
        return _nan_if_nonfinite(self.call.primal(floats, arrays))

    def witness(
        self, floats: list, arrays: list, probe: list, noise: list
    ) -> tuple[Any, list[Array]]:
        """``∂/∂h ⟨w, f.fun(x + h Σ_p t_p)⟩ = Σ_{p,i} ⟨w, J_i t_{p,i}⟩`` for ``w`` = noise
        over each output's root-mean-square: each quantity's pair is its output's ``w``,
        repeated along the probe axis."""
        weights = []
        for draw, out in zip(noise, self.call.primal(floats, arrays), strict=True):
            rms = jnp.sqrt(jnp.mean(jnp.square(out.astype(F64))))
            usable = (rms > 0) & jnp.isfinite(rms)
            weights.append(draw.astype(F64) / jnp.where(usable, rms, 1.0))
        direction = [t.astype(F64).sum(axis=0) for t in probe]
        estimate = measure.directional_witness(
            lambda moved: measure.dot(weights, self.call.primal(moved, arrays)), floats, direction
        )
        pair = [jnp.broadcast_to(w, (self.probes, *w.shape)) for w in weights]
        return estimate, pair * len(floats)


RuleMap = VjpMap | JvpMap


# ----- running the rule -------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def primal_program(call: PrimalCall, floats: list, arrays: list) -> list[Array]:
    """The primal's floating outputs at the point (compiled once per call structure)."""
    return call.primal(floats, arrays)


@functools.partial(jax.jit, static_argnums=(0, 1))
def candidate_program(
    rule: Any, map_: RuleMap, floats: list, arrays: list, probe: list
) -> list[Array]:
    """The rule's quantities at the point (compiled once per rule, map, shapes and dtypes)."""
    return map_.candidate(rule, floats, arrays, probe)


def _candidate_at(rule: Any, map_: RuleMap, floats: list, arrays: list, probe: list) -> list[Array]:
    """The rule's quantities at another precision, the probe rounded to it as well."""
    return candidate_program(rule, map_, floats, arrays, measure.cast(probe, floats[0].dtype))


def _specs(leaves: Sequence[Any]) -> tuple[jax.ShapeDtypeStruct, ...]:
    return tuple(jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in leaves)


def _check_rule_fits(
    rule: Any, map_: RuleMap, floats: list, arrays: list, probe: list
) -> tuple[str | None, tuple[jax.ShapeDtypeStruct, ...]]:
    """Trace the rule and the reference abstractly (nothing runs; once per map and shapes).

    Returns:
        ``(why there is no reference or None, the quantities' shapes and dtypes)``.

    Raises:
        ValueError: naming the rule, when its outputs or its derivative's disagree with
            the primal's in structure, shape or dtype.
    """
    return _check_rule_fits_once(rule, map_, _specs(floats), _specs(arrays), _specs(probe))


@functools.lru_cache(maxsize=256)
def _check_rule_fits_once(
    rule: Any, map_: RuleMap, floats: tuple, arrays: tuple, probe: tuple
) -> tuple[str | None, tuple[jax.ShapeDtypeStruct, ...]]:
    call = map_.call
    which = f"the {call.kind} rule of {call.name} ({call.location})"
    args = (list(floats), list(arrays))
    try:
        primal = jax.eval_shape(lambda f, a: call.fun(*call.arguments(f, a)), *args)
        through = jax.eval_shape(_rule_primal_output(rule, call), *args)
    except Exception as error:  # JAX's own message about the rule, at the boundary
        raise ValueError(f"{which} does not fit its primal here: {_first_line(error)}") from error
    _same_outputs(which, call.name, primal, through)
    try:
        candidate = jax.eval_shape(functools.partial(map_.candidate, rule), *args, list(probe))
    except Exception as error:
        raise ValueError(f"{which} does not fit its primal here: {_first_line(error)}") from error
    try:
        reference = jax.eval_shape(map_.reference, *args, list(probe))
    except Exception as error:  # autodiff cannot differentiate the primal: no reference
        return (
            f"autodiff cannot differentiate the primal {call.name} "
            f"({_first_line(error)}), so there is nothing to judge its rule against",
            (),
        )
    for name, got, want in zip(map_.quantity_names(), candidate, reference, strict=True):
        if (got.shape, got.dtype) != (want.shape, want.dtype):
            raise ValueError(
                f"{which} gives {name} of shape {got.shape} {got.dtype}, where autodiff of "
                f"its primal gives {want.shape} {want.dtype}"
            )
    return None, tuple(reference)


def _rule_primal_output(rule: Any, call: PrimalCall) -> Callable:
    """The primal output as the rule computes it (its fwd, or the primal half of its jvp)."""

    def output(floats: list, arrays: list) -> PyTree:
        def through(moved: list) -> PyTree:
            return rule(*call.arguments(moved, arrays))

        if call.kind == "custom_vjp":
            return jax.vjp(through, floats)[0]
        return jax.jvp(through, (floats,), ([jnp.zeros_like(f) for f in floats],))[0]

    return output


def _same_outputs(rule: str, name: str, primal: PyTree, through: PyTree) -> None:
    """Raise when the rule's primal output differs from ``f.fun``'s in structure or type."""
    want, got = jax.tree_util.tree_structure(primal), jax.tree_util.tree_structure(through)
    if want != got:
        raise ValueError(
            f"{rule} returns an output of structure {got}, where its primal {name} returns {want}"
        )
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(primal), jax.tree_util.tree_leaves(through), strict=True
    ):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise ValueError(
                f"{rule} returns out{jax.tree_util.keystr(path)} of shape {b.shape} {b.dtype}, "
                f"where its primal {name} returns {a.shape} {a.dtype}"
            )


# ----- rows and verdicts ------------------------------------------------------------------


def _no_reference_verdict(
    map_: RuleMap,
    names: list[str],
    why: str,
    floats: list,
    constants: Any,
    skipped: list[str],
) -> Verdict:
    """Rows with status ``no_reference``: nothing judged, nothing failed, the reason given."""
    nan, dtype = math.nan, dtype_name(floats)
    part = Part(
        "precision", dtype, None, nan, nan, nan, nan, nan, nan, (), nan, nan, None, math.inf,
        math.inf, why,
    )  # fmt: skip
    rows = tuple(
        Agreement(name, None, map_.kind, "no_reference", part, None, nan, nan, nan, (), why)
        for name in names
    )
    return Verdict(
        dtype=dtype,
        rows=rows,
        layers=(),
        reasons=(),
        first_bad_layer=None,
        kink=False,
        formula_note=f"neither part judged: {why}",
        noise_multiple=constants.noise_multiple,
        tie_multiple=constants.tie_multiple,
        skipped=tuple(skipped),
    )
