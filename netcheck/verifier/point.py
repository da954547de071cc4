"""The point of a pytree check: a pytree split into judged float leaves, traced data and
static leaves (and back), and a candidate's leaves matched to the judged ones by path.

``(params, args, kwargs)`` is flattened once: floating leaves of ``params`` (arrays and
Python floats) are the quantities; every other leaf of ``params`` (ints, bools, strings,
functions, static fields of a module) is carried along untouched and listed as not
judged. Array leaves of ``args``/``kwargs`` are data (traced; floating ones are upcast
for the truth); their other leaves are passed as they are, like static arguments of
``jit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from netcheck.verifier import measure
from netcheck.verifier.checks import WrongDtype
from netcheck.verifier.measure import F64

Array = jax.Array
PyTree = Any


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
            raise WrongDtype(where, expected.dtype, got.dtype)
        leaves.append(jnp.asarray(got))
    return leaves
