"""Checkpoints: a ``TrainState``, its network spec and history in one file.

One ``.npz`` file holds the parameters, the optimizer state's leaves, the PRNG key's data,
the epoch, the network spec, the history and a description of the training data (the last
four as JSON). It is written through a temporary file and a rename (``netcheck._io``),
so a crash mid-save leaves the previous checkpoint intact. Every array is stored exactly, so
resuming from a checkpoint gives bit-identical results to an uninterrupted run on the same
machine.

A checkpoint never holds a non-finite state: ``save`` refuses parameters or optimizer
state with NaN or Inf, and ``load`` refuses a file that holds them, naming the file and
the leaf.

The data description (``data=``) is whatever identifies the training data: ``netcheck
train`` stores the dataset's name (or the file's SHA-256), the number of examples, the split's
seed and test fraction, the standardisation, and a hash of the training split itself
(``fingerprint_arrays``); ``data_differences`` says what differs between two.

The optimizer itself is code, not data: ``load`` takes the same optax optimizer and
rebuilds the state's structure from ``optimizer.init(params)``, refusing a checkpoint whose
leaves do not fit it.
"""

from __future__ import annotations

import dataclasses
import hashlib
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

from netcheck._io import check_writable, write_bytes_atomic
from netcheck.nn import Network
from netcheck.training.trainer import History, TrainState, init_state, non_finite_leaves

FORMAT = "netcheck-checkpoint"
VERSION = 2
"""Version 2 adds the data description and the dtype; version 1 files still load."""

_READABLE_VERSIONS = (1, 2)


class Checkpoint(NamedTuple):
    """What ``load`` returns.

    Attributes:
        net: the network the state belongs to.
        state: parameters, optimizer state, key and epoch, ready for ``netcheck.fit``.
        history: the training history saved with it (``None`` if none was saved).
    """

    net: Network
    state: TrainState
    history: History | None
    data: dict[str, Any] | None = None


def save(
    path: str | os.PathLike[str],
    net: Network,
    state: TrainState,
    history: History | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write ``net``, ``state``, ``history`` and ``data`` to ``path`` atomically.

    Args:
        path: the file to write (conventionally ``*.npz``); its folder must exist.
        net: the network (its spec is saved, so ``load`` rebuilds it).
        state: the training state; ``state.params`` must fit ``net``, and its parameters
            and optimizer state must be finite.
        history: an optional JSON-able history record.
        data: an optional JSON-able description of the training data (see the module
            docstring), compared on resume with ``data_differences``.

    Returns:
        The path written.

    Raises:
        TypeError/ValueError: ``net``, ``state``, ``history`` or ``data`` is not what it should
            be; a non-finite state is refused with the file and the leaf named.
        FileNotFoundError/IsADirectoryError/PermissionError: ``path`` cannot be written.
    """
    path = check_writable(path)
    if not isinstance(net, Network):
        raise TypeError(f"net must be a netcheck.Network, got {type(net).__name__}")
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    dtype = net.check_params(state.params)
    key = state.key
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(
            "state.key must be a typed PRNG key (see netcheck.training.trainer.init_state)"
        )
    bad = non_finite_leaves({"params": state.params, "opt_state": state.opt_state})
    if bad:
        raise ValueError(f"refusing to write {path}: {'; '.join(bad)}")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "network": dataclasses.asdict(net),
        "dtype": jnp.dtype(dtype).name,
        "epoch": int(state.epoch),
        "key_impl": str(jax.random.key_impl(key)),
        "opt_state_leaves": len(jax.tree.leaves(state.opt_state)),
        "history": history,
        "data": data,
    }
    try:
        meta_text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"history and data must be JSON-able (finite floats only): {error}"
        ) from None
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
    """Read a checkpoint written by ``save``.

    Args:
        path: the checkpoint file.
        optimizer: the optax optimizer the state was trained with; its ``init`` gives the
            structure the saved optimizer leaves are poured back into.

    Returns:
        The ``Checkpoint`` (network, state, history, data description).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a netcheck checkpoint; its optimizer state does not fit
            ``optimizer``; it holds NaN or Inf (file and leaf named); or it holds float64
            while JAX runs in 32-bit mode.
    """
    path, arrays = _read_archive(path)
    meta = _read_meta(path, arrays)
    _check_precision(path, arrays)
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
    bad = non_finite_leaves({"params": params, "opt_state": opt_state})
    if bad:
        raise ValueError(
            f"{path} holds a non-finite state, refused: {'; '.join(bad)} "
            "(the file was damaged or edited: netcheck never writes one)"
        )
    key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]), impl=meta["key_impl"])
    state = TrainState(params, opt_state, key, jnp.asarray(meta["epoch"], jnp.int32))
    return Checkpoint(net, state, meta["history"], meta.get("data"))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's JSON metadata alone: ``network``, ``dtype``, ``epoch``, ``history``,
    ``data`` (``dtype`` and ``data`` are ``None`` in version-1 files); no arrays are built.

    Raises:
        FileNotFoundError / ValueError: as ``load``.
    """
    path, arrays = _read_archive(path, names=("meta", "key"))
    meta = _read_meta(path, arrays)
    return {"dtype": None, "data": None, **meta}


def fingerprint_arrays(*arrays: Any) -> str:
    """A SHA-256 over each array's dtype, shape and bytes (C order): equal data, equal hash."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def data_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's data description and the current one.

    Args:
        saved: the checkpoint's ``data`` (``None`` for a checkpoint that recorded none).
        current: the description of the data about to be used.

    Returns:
        One line per differing entry, ``"seed: 0 in the checkpoint, 1 now"``; empty when
        they agree.
    """
    if saved is None:
        return ["the checkpoint records no training data to compare with"]
    return [
        f"{name}: {saved.get(name)!r} in the checkpoint, {current.get(name)!r} now"
        for name in sorted(set(saved) | set(current), key=_description_order(current))
        if saved.get(name) != current.get(name)
    ]


def _description_order(current: dict[str, Any]):
    order = {name: index for index, name in enumerate(current)}
    return lambda name: (order.get(name, len(order)), name)


def _leaf_names(net: Network) -> tuple[str, ...]:
    return ("W", "b") if net.bias else ("W",)


def _read_archive(
    path: str | os.PathLike[str], names: tuple[str, ...] | None = None
) -> tuple[Path, dict[str, np.ndarray]]:
    """The file's arrays (only ``names``, if given), refusing what is not an ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            wanted = archive.files if names is None else [n for n in names if n in archive.files]
            return path, {name: archive[name] for name in wanted}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a netcheck checkpoint: {error}") from None


def _read_meta(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if "meta" not in arrays or "key" not in arrays:
        raise ValueError(f"{path} is not a netcheck checkpoint (no metadata)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable checkpoint metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a netcheck checkpoint")
    if meta.get("version") not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path}: checkpoint version {meta.get('version')!r}, this netcheck reads "
            f"{', '.join(map(str, _READABLE_VERSIONS))}"
        )
    return meta


def _check_precision(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Refuse float64 arrays that JAX in 32-bit mode would silently round to float32."""
    if jax.config.jax_enable_x64:
        return
    wide = sorted(name for name, value in arrays.items() if value.dtype == np.float64)
    if wide:
        raise ValueError(
            f"{path} holds float64 arrays ({wide[0]}, ...) but JAX runs in 32-bit mode, which "
            "would round them to float32; enable it first: "
            "jax.config.update('jax_enable_x64', True)"
        )


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
