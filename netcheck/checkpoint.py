"""Checkpoints: a :class:`~netcheck.trainer.TrainState`, its network spec and history in one file.

One ``.npz`` file holds the parameters, the optimizer state's leaves, the PRNG key's data,
the epoch, the network spec and the history (the last three as JSON). It is written
through a temporary file and a rename (:mod:`netcheck._io`), so a crash mid-save leaves the
previous checkpoint intact. Every array is stored exactly, so resuming from a checkpoint
gives bit-identical results to an uninterrupted run on the same machine.

The optimizer itself is code, not data: :func:`load` takes the same optax optimizer and
rebuilds the state's structure from ``optimizer.init(params)``, refusing a checkpoint whose
leaves do not fit it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from netcheck._io import write_bytes_atomic
from netcheck.network import Network
from netcheck.trainer import History, TrainState, init_state

FORMAT = "netcheck-checkpoint"
VERSION = 1


class Checkpoint(NamedTuple):
    """What :func:`load` returns.

    Attributes:
        net: the network the state belongs to.
        state: parameters, optimizer state, key and epoch, ready for :func:`netcheck.trainer.fit`.
        history: the training history saved with it (``None`` if none was saved).
    """

    net: Network
    state: TrainState
    history: History | None


def save(
    path: str | os.PathLike[str], net: Network, state: TrainState, history: History | None = None
) -> Path:
    """Write ``net``, ``state`` and ``history`` to ``path`` atomically; return the path.

    Args:
        path: the file to write (conventionally ``*.npz``); its folder must exist.
        net: the network (its spec is saved, so :func:`load` rebuilds it).
        state: the training state; ``state.params`` must fit ``net``.
        history: an optional JSON-able history record.

    Raises:
        TypeError/ValueError: ``net``, ``state`` or ``history`` is not what it should be.
        FileNotFoundError: the folder does not exist.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a netcheck.Network, got {type(net).__name__}")
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    net.check_params(state.params)
    key = state.key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError("state.key must be a typed PRNG key (see netcheck.trainer.init_state)")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "network": dataclasses.asdict(net),
        "epoch": int(state.epoch),
        "key_impl": str(jax.random.key_impl(key)),
        "opt_state_leaves": len(jax.tree.leaves(state.opt_state)),
        "history": history,
    }
    try:
        meta_text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"history must be JSON-able (finite floats only): {error}") from None
    arrays = {"meta": np.frombuffer(meta_text.encode("utf-8"), dtype=np.uint8)}
    for layer, weights in enumerate(state.params):
        for name, leaf in weights.items():
            arrays[f"params/{layer}/{name}"] = np.asarray(leaf)
    for index, leaf in enumerate(jax.tree.leaves(state.opt_state)):
        arrays[f"opt_state/{index}"] = np.asarray(leaf)
    arrays["key"] = np.asarray(jax.random.key_data(key))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def load(path: str | os.PathLike[str], optimizer: optax.GradientTransformation) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Args:
        path: the checkpoint file.
        optimizer: the optax optimizer the state was trained with; its ``init`` gives the
            structure the saved optimizer leaves are poured back into.

    Returns:
        The :class:`Checkpoint` (network, state, history).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a netcheck checkpoint, or its optimizer state does not fit
            ``optimizer``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a netcheck checkpoint: {error}") from None
    meta = _read_meta(path, arrays)
    net = Network(**{**meta["network"], "sizes": tuple(meta["network"]["sizes"])})
    try:
        params = [
            {name: jnp.asarray(arrays[f"params/{layer}/{name}"]) for name in _leaf_names(net)}
            for layer in range(net.depth)
        ]
        net.check_params(params)
    except KeyError as error:
        raise ValueError(f"{path}: the checkpoint lacks the array {error}") from None
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: the saved parameters do not fit the saved network: {error}"
        ) from None
    template = init_state(params, optimizer, jax.random.key(0))
    opt_state = _restore_opt_state(path, template.opt_state, arrays, meta["opt_state_leaves"])
    key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]), impl=meta["key_impl"])
    state = TrainState(params, opt_state, key, jnp.asarray(meta["epoch"], jnp.int32))
    return Checkpoint(net, state, meta["history"])


def _leaf_names(net: Network) -> tuple[str, ...]:
    return ("W", "b") if net.bias else ("W",)


def _read_meta(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if "meta" not in arrays or "key" not in arrays:
        raise ValueError(f"{path} is not a netcheck checkpoint (no metadata)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable checkpoint metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a netcheck checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{path}: checkpoint version {meta.get('version')!r}, this netcheck reads {VERSION}"
        )
    return meta


def _restore_opt_state(
    path: Path, template: Any, arrays: dict[str, np.ndarray], n_saved: int
) -> optax.OptState:
    """Pour the saved optimizer leaves into the structure of ``optimizer.init(params)``."""
    leaves, treedef = jax.tree.flatten(template)
    if n_saved != len(leaves):
        raise ValueError(
            f"{path}: the checkpoint's optimizer state has {n_saved} arrays but this optimizer's "
            f"has {len(leaves)}; load it with the optimizer it was trained with"
        )
    restored = []
    for index, expected in enumerate(leaves):
        saved = arrays[f"opt_state/{index}"]
        if saved.shape != expected.shape or saved.dtype != expected.dtype:
            raise ValueError(
                f"{path}: optimizer state leaf {index} is {saved.dtype}{list(saved.shape)} but "
                f"this optimizer expects {expected.dtype}{list(expected.shape)}; "
                "load it with the optimizer it was trained with"
            )
        restored.append(jnp.asarray(saved))
    return jax.tree.unflatten(treedef, restored)
