"""The summed absolute terms of a linear map: ``|L|(|v|)``, for the verifier's tolerance.

A derivative computed by autodiff (a gradient, a VJP, a JVP, a Hessian-vector product) is
a linear map ``L`` of its probe ``v`` (a cotangent, a tangent, a direction), evaluated as
a program of linear steps: sums, differences, products with values of the point,
contractions, reshapes. Rounding in such a program is bounded by the unit roundoff times
the *terms* it adds up, not by the result: ``δ = p ⊙ (dp - Σ p ⊙ dp)`` of a saturated
softmax is ``1e-11`` made of terms of size 1, and any correct implementation of it is off
by ``u · 1``, not ``u · 1e-11``. The verifier's tolerance ``T · u · ‖m‖`` therefore needs
``m``, the magnitudes of the summed terms.

``term_magnitudes`` evaluates the very program autodiff runs with every linear step
replaced by its absolute-value twin (a difference becomes a sum, a product with a value
``a`` of the point a product with ``|a|``, a contraction with ``W`` one with ``|W|``) on
``|v|``. Every term then adds with its sign removed, so the result bounds ``|L v|``
element by element and equals it when no term cancels. This is the network verifier's
``m^ℓ = |g'(z^ℓ)| ⊙ (|W_{ℓ+1}|ᵀ m^{ℓ+1})`` for any program.

This module reads the jaxpr JAX traces (``jax.make_jaxpr``, ``jax.extend.core``), on the JAX
versions the rule finder is tested on (``netcheck._jaxpr.SUPPORTED_JAX``). A step it does
not know as linear (a ``while_loop``, a solve, a primitive of a later JAX) or another JAX
version makes it return ``None``, and the caller falls back to ``m = |L v|``: the
tolerance of a program without cancellation, never a looser one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core

from netcheck._jaxpr import is_supported_jax

Array = jax.Array

_ADDITIVE = frozenset({"add", "sub", "add_any", "add_jaxvals"})
"""Sums and differences of linear values: their magnitudes add."""

_PRODUCTS = frozenset({"mul", "dot_general", "ragged_dot_general", "conv_general_dilated"})
"""Bilinear steps: linear in one operand, a value of the point in the other."""

_STRUCTURAL = frozenset(
    {
        "reduce_sum",
        "cumsum",
        "broadcast_in_dim",
        "reshape",
        "transpose",
        "squeeze",
        "expand_dims",
        "rev",
        "slice",
        "dynamic_slice",
        "dynamic_update_slice",
        "gather",
        "scatter",
        "scatter_add",
        "scatter-add",
        "concatenate",
        "stack",
        "unstack",
        "split",
        "tile",
        "pad",
        "select_n",
        "convert_element_type",
        "copy",
        "copy_p",
        "reduce_precision",
        "reduce_window_sum",
        "select_and_scatter_add",
        "select_and_gather_add",
        "psum",
        "all_gather",
        "ppermute",
        "sharding_constraint",
        "device_put",
        "optimization_barrier",
    }
)
"""Steps that move, select or sum linear values: the same step maps the terms' magnitudes
(a floating operand of the point among them taken in absolute value, indices and
predicates as they are)."""

_CALLS = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_jvp_call": "call_jaxpr",
}
"""Steps that call a sub-program, and the parameter holding it: evaluated inline."""


class _NotLinear(Exception):
    """A step this module cannot take in absolute value."""


def term_magnitudes(linear: Callable[[Any], Any], probe: Any) -> Any | None:
    """``|L|(|probe|)``: the magnitudes of the terms ``linear(probe)`` adds up.

    Args:
        linear: a function linear in ``probe`` (a pytree of floating arrays), such as
            ``lambda c: vjp_fn(c)``; values it closes over are the point.
        probe: the probe.

    Returns:
        A pytree like ``linear(probe)``, every element ``≥ |linear(probe)|`` (equal where no
        term cancels), or ``None`` when the program takes a step not known as linear or
        JAX is not a version this module is tested on (``SUPPORTED_JAX``).
    """
    if not is_supported_jax():
        return None
    closed, shapes = jax.make_jaxpr(linear, return_shape=True)(probe)
    leaves = jax.tree_util.tree_leaves(probe)
    magnitudes = [jnp.abs(leaf) for leaf in leaves]
    try:
        outs = _evaluate(closed.jaxpr, closed.consts, magnitudes, [True] * len(leaves))
    except _NotLinear:
        return None
    values = [value if is_linear else jnp.zeros_like(value) for value, is_linear in outs]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shapes), values)


def _evaluate(
    jaxpr: Any, consts: Sequence[Any], inputs: Sequence[Any], linear: Sequence[bool]
) -> list[tuple[Any, bool]]:
    """Run ``jaxpr`` with its linear steps in absolute value; ``(value, is_linear)`` out."""
    env: dict[Any, tuple[Any, bool]] = {}
    for var, value in zip(jaxpr.constvars, consts, strict=True):
        env[var] = (value, False)
    for var, value, is_linear in zip(jaxpr.invars, inputs, linear, strict=True):
        env[var] = (value, is_linear)

    def read(atom: Any) -> tuple[Any, bool]:
        return (atom.val, False) if isinstance(atom, core.Literal) else env[atom]

    for eqn in jaxpr.eqns:
        read_in = [read(atom) for atom in eqn.invars]
        outs = _step(eqn, [value for value, _ in read_in], [flag for _, flag in read_in])
        for var, out in zip(eqn.outvars, outs, strict=True):
            env[var] = out
    return [read(atom) for atom in jaxpr.outvars]


def _step(eqn: Any, values: list[Any], flags: list[bool]) -> list[tuple[Any, bool]]:
    """One equation: bound as it is on values of the point, in absolute value on terms."""
    name = eqn.primitive.name
    if not any(flags):
        return [(out, False) for out in _bind(eqn.primitive, eqn, values)]
    if name == "scan":
        return _scan(eqn, values, flags)
    if name == "cond":
        return _cond(eqn, values, flags)
    if name in _CALLS:
        inner = eqn.params[_CALLS[name]]
        inner_jaxpr, inner_consts = (
            (inner.jaxpr, inner.consts) if hasattr(inner, "consts") else (inner, ())
        )
        return _evaluate(inner_jaxpr, inner_consts, values, flags)
    if name == "neg":
        return [(values[0], True)]
    if name in _ADDITIVE:
        primitive = jax.lax.add_p if name == "sub" else eqn.primitive
        terms = _bind(primitive, eqn, [_absolute(v) for v in values])
    elif name in _PRODUCTS and sum(flags) == 1:
        terms = _bind(eqn.primitive, eqn, [_absolute(v) for v in values])
    elif name == "div" and flags == [True, False]:
        terms = _bind(eqn.primitive, eqn, [values[0], _absolute(values[1])])
    elif name in _STRUCTURAL:
        point_absolute = [v if f else _absolute(v) for v, f in zip(values, flags, strict=True)]
        terms = _bind(eqn.primitive, eqn, point_absolute)
    else:
        raise _NotLinear(name)
    return [(out, True) for out in terms]


def _bind(primitive: Any, eqn: Any, values: list[Any]) -> list[Any]:
    """``primitive`` with ``eqn``'s parameters on ``values``: its outputs as a list."""
    outs = primitive.bind(*values, **primitive.get_bind_params(eqn.params))
    return list(outs) if primitive.multiple_results else [outs]


def _absolute(value: Any) -> Any:
    """``|value|`` for a floating value of the point; indices and predicates as they are."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.inexact):
        return jnp.abs(value)
    if isinstance(value, float):
        return abs(value)
    return value


def _depends(jaxpr: Any, linear: Sequence[bool]) -> list[bool]:
    """Which outputs of ``jaxpr`` depend on its linear inputs (any input of a step taints
    all its outputs: a value of the point marked linear at worst costs the fallback)."""
    tainted = {var for var, flag in zip(jaxpr.invars, linear, strict=True) if flag}
    for eqn in jaxpr.eqns:
        if any(not isinstance(atom, core.Literal) and atom in tainted for atom in eqn.invars):
            tainted.update(eqn.outvars)
    return [not isinstance(atom, core.Literal) and atom in tainted for atom in jaxpr.outvars]


def _scan(eqn: Any, values: list[Any], flags: list[bool]) -> list[tuple[Any, bool]]:
    """A ``lax.scan`` whose body carries terms (the transpose of a loop): the same scan of
    the body in absolute value. A carry becomes linear if any iteration makes it so."""
    params = eqn.params
    body, n_consts, n_carry = params["jaxpr"], params["num_consts"], params["num_carry"]
    consts, init, xs = (
        values[:n_consts],
        values[n_consts : n_consts + n_carry],
        values[n_consts + n_carry :],
    )
    carry_flags = list(flags[n_consts : n_consts + n_carry])
    while True:  # a fixed point: at most n_carry rounds
        in_flags = [*flags[:n_consts], *carry_flags, *flags[n_consts + n_carry :]]
        out_flags = _depends(body.jaxpr, in_flags)
        grown = [a or b for a, b in zip(carry_flags, out_flags[:n_carry], strict=True)]
        if grown == carry_flags:
            break
        carry_flags = grown
    init = [_absolute(v) if f else v for v, f in zip(init, carry_flags, strict=True)]
    y_flags = out_flags[n_carry:]

    def step(carry: list[Any], x: list[Any]) -> tuple[list[Any], list[Any]]:
        outs = _evaluate(body.jaxpr, body.consts, [*consts, *carry, *x], in_flags)
        return [value for value, _ in outs[:n_carry]], [value for value, _ in outs[n_carry:]]

    carry, ys = jax.lax.scan(
        step,
        init,
        xs,
        length=params["length"],
        reverse=params["reverse"],
        unroll=params["unroll"],
    )
    return [*zip(carry, carry_flags, strict=True), *zip(ys, y_flags, strict=True)]


def _cond(eqn: Any, values: list[Any], flags: list[bool]) -> list[tuple[Any, bool]]:
    """A ``lax.cond``/``switch`` on a value of the point: each branch in absolute value."""
    if flags[0]:
        raise _NotLinear("cond on a linear index")
    branches = eqn.params["branches"]
    out_flags = [
        any(column)
        for column in zip(*(_depends(b.jaxpr, flags[1:]) for b in branches), strict=True)
    ]

    def branch(closed: Any) -> Callable[..., list[Any]]:
        def run(*operands: Any) -> list[Any]:
            outs = _evaluate(closed.jaxpr, closed.consts, list(operands), flags[1:])
            return [value for value, _ in outs]

        return run

    outs = jax.lax.switch(values[0], [branch(b) for b in branches], *values[1:])
    return list(zip(outs, out_flags, strict=True))
