"""Input checks at the verifier's public boundary, and running a candidate in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def check_callable(fn: Any, what: str) -> None:
    """Refuse a non-callable ``fn``."""
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {type(fn).__name__}")


def check_seed(seed: Any) -> int:
    """A non-negative int seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return int(seed)


def check_concrete(tree: PyTree, what: str) -> None:
    """Refuse traced values: the verifier compiles and runs its own programs.

    Raises:
        TypeError: a leaf of ``tree`` is a tracer (``what`` was called under ``jax.jit``,
            ``vmap``, ``grad`` or another transformation).
    """
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree)):
        raise TypeError(
            f"{what} needs concrete values: call it outside jax.jit, jax.vmap, jax.grad and "
            "other transformations (it compiles and runs its own measuring programs)"
        )


class WrongDtype(ValueError):
    """A candidate leaf of another dtype than its parameter (``got``: the dtype it had)."""

    def __init__(self, where: str, expected: Any, got: Any) -> None:
        super().__init__(f"{where} must have dtype {expected}, got {got}")
        self.got = jnp.dtype(got).name


def check_like(result: Any, params: PyTree, what: str) -> None:
    """Refuse a gradient whose structure, shapes or dtypes differ from ``params``."""
    expected = jax.tree_util.tree_structure(params)
    actual = jax.tree_util.tree_structure(result)
    if expected != actual:
        raise ValueError(f"{what} must have the structure of params {expected}, got {actual}")
    for (path, leaf), got in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(result), strict=True
    ):
        where = f"{what}{jax.tree_util.keystr(path)}"
        if not hasattr(got, "shape") or tuple(got.shape) != tuple(leaf.shape):
            raise ValueError(
                f"{where} must have shape {tuple(leaf.shape)}, "
                f"got {tuple(getattr(got, 'shape', ()))}"
            )
        if jnp.dtype(got.dtype) != jnp.dtype(leaf.dtype):
            raise WrongDtype(where, leaf.dtype, got.dtype)


def candidate_in_float64(
    call: Callable[[], Any], like: PyTree, what: str
) -> tuple[Any, str | None]:
    """Run the candidate in float64 (x64 on), and keep the result only if it is float64.

    Args:
        call: runs the candidate on the upcast point.
        like: a pytree with the expected structure and shapes.
        what: how to name the candidate in the note.

    Returns:
        ``(result, None)`` when every leaf came back float64 with the expected structure
        and shapes; otherwise ``(None, note)``, the note saying why the formula part
        cannot be judged.
    """
    with jax.enable_x64(True):
        try:
            result = call()
        except WrongDtype as error:  # a leaf checked on the way out was not float64
            return None, _hard_cast_note(what, {error.got})
        except Exception as error:  # the candidate's own failure: report it, do not raise
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return None, (
                f"{what} cannot run in float64 on the upcast point "
                f"({type(error).__name__}: {first[:200]}); precision judged alone"
            )
    if jax.tree_util.tree_structure(result) != jax.tree_util.tree_structure(like):
        return None, f"{what} returns another structure in float64; precision judged alone"
    dtypes = set()
    for got, expected in zip(
        jax.tree_util.tree_leaves(result), jax.tree_util.tree_leaves(like), strict=True
    ):
        if tuple(getattr(got, "shape", ())) != tuple(getattr(expected, "shape", ())):
            return None, f"{what} returns other shapes in float64; precision judged alone"
        dtypes.add(jnp.dtype(getattr(got, "dtype", type(got))).name)
    if dtypes != {"float64"}:
        return None, _hard_cast_note(what, dtypes)
    return result, None


def _hard_cast_note(what: str, dtypes: set[str]) -> str:
    return (
        f"{what} returns {', '.join(sorted(dtypes))} on the float64 point (a hard cast "
        "inside?), so the formula cannot be checked in float64; precision judged alone"
    )
