"""The trainer: the lecture's learning problem solved by minibatch gradient descent.

The lecture's problem is ``minimise_W 1/n Σ_i L(y_i, ŷ(x_i))`` "attacked through gradient
descent". Each step takes a minibatch ``B`` and applies an optax update to the gradient of the
minibatch mean ``1/|B| Σ_{i∈B} L(y_i, ŷ(x_i))``; with ``optax.sgd(η)`` (the default) that is the
lecture's ``W ← W - η ∇_W``. The gradient is the hand-written δ recursion
(:func:`netcheck.backprop.manual_value_and_grad`) or, for comparison, ``jax.grad`` of the same
loss (``grad="autodiff"``).

What a JAX user composes::

    state = init_state(params, optimizer, key)                  # a TrainState
    step = make_train_step(net, optimizer)                      # jitted, one minibatch
    epoch = make_epoch_fn(net, optimizer, n_examples=n, batch_size=10)   # jitted, one epoch
    state, running_loss = epoch(state, x, y)

and what everyone else calls::

    params, history = train(net, params, (x, y), optimizer=optax.sgd(3.0), epochs=30,
                            batch_size=10, key=key, validation=(x_test, y_test))

A whole epoch is one compiled program: the data stays on the device, the epoch's order is a
permutation drawn from the state's key, and the minibatches run under ``jax.lax.scan``. When
the batch size does not divide ``n``, the last ``r = n mod batch_size`` examples form a
step of their own, of their true size, inside the same program: its gradient is the mean over
exactly those ``r`` examples (what a mask over a padded batch would give, without the padded
work), as in Nielsen's ``network.py``. ``drop_last=True`` skips it instead.

Data parallelism: given a ``jax.sharding.Mesh``, every minibatch is sharded along the mesh's
first axis and the parameters and optimizer state are replicated; XLA inserts the all-reduce
of the gradient sums. The dataset itself is replicated so that each epoch's reshuffle is a
local gather. Multi-host runs call ``jax.distributed.initialize()`` first and build the mesh
over ``jax.devices()``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from netcheck import autodiff, backprop
from netcheck.network import Network, Params
from netcheck.verifier import verify

Array = jax.Array
History = dict[str, Any]
ValueAndGrad = Callable[[Network, Params, Array, Array], tuple[Array, Params]]

GRADS: dict[str, ValueAndGrad] = {
    "manual": backprop.manual_value_and_grad,
    "autodiff": autodiff.autodiff_value_and_grad,
}
"""Where the gradient comes from: the hand-written δ recursion, or ``jax.value_and_grad``."""

CHECK_EXAMPLES = 256
"""How many training examples ``check_every`` hands to :func:`netcheck.verifier.verify`."""

_ONE_HOT_TOLERANCE = 1e-4
"""How far a softmax cross-entropy target row may sum from 1 (float32 round-off of a mixture)."""


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss (or a parameter) became NaN or Inf."""


class TrainState(NamedTuple):
    """Everything that changes while training; a pytree, so it passes through ``jit``.

    Attributes:
        params: ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}]``, the network's parameters.
        opt_state: the optax optimizer's state for ``params``.
        key: a typed PRNG key, shape ``()``; each epoch splits it and shuffles with one half.
        epoch: int32 scalar, the number of epochs completed.
    """

    params: Params
    opt_state: optax.OptState
    key: Array
    epoch: Array


class EpochMetrics(NamedTuple):
    """What one compiled epoch reports (all float32 scalars on the device).

    Attributes:
        running_loss: the mean of the minibatch losses seen during the epoch, each weighted by
            its batch size (the loss before each step's update).
        train_loss: ``1/n Σ_i L(y_i, ŷ(x_i))`` on the whole training set after the epoch.
        train_accuracy: accuracy on the whole training set after the epoch.
        validation_loss: the same loss on the validation set (NaN without one).
        validation_accuracy: the accuracy on the validation set (NaN without one).
        finite: whether every loss and every parameter stayed finite; when False the state
            returned is the one the epoch started from.
    """

    running_loss: Array
    train_loss: Array
    train_accuracy: Array
    validation_loss: Array
    validation_accuracy: Array
    finite: Array


# ----- the pure pieces (traced under jit) --------------------------------------------------


def accuracy(net: Network, y_hat: Array, y: Array) -> Array:
    """Fraction of examples classified right, a float scalar.

    Binary outputs (``n_L = 1``) are thresholded at 0.5 on both sides; otherwise the
    predicted class is ``argmax ŷ`` and the true one ``argmax y``.

    Args:
        net: the network (only ``sizes[-1]`` is read).
        y_hat: predictions, ``(batch, n_L)``.
        y: targets, ``(batch, n_L)``.
    """
    if net.sizes[-1] == 1:
        right = (y_hat[:, 0] >= 0.5) == (y[:, 0] >= 0.5)
    else:
        right = jnp.argmax(y_hat, axis=-1) == jnp.argmax(y, axis=-1)
    return jnp.mean(right.astype(y_hat.dtype))


def evaluate(net: Network, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """The mean loss ``1/n Σ_i L(y_i, ŷ(x_i))`` and the accuracy on ``(x, y)``; unchecked."""
    cache = net.forward_cache(params, x)
    loss = jnp.mean(net.example_losses(cache, y))
    return loss, accuracy(net, cache.activations[-1], y)


def _update(
    net: Network,
    optimizer: optax.GradientTransformation,
    value_and_grad: ValueAndGrad,
    params: Params,
    opt_state: optax.OptState,
    x: Array,
    y: Array,
) -> tuple[Params, optax.OptState, Array]:
    """One gradient step on the minibatch ``(x, y)``; returns the loss before the step."""
    loss, grads = value_and_grad(net, params, x, y)
    # optax mixes int32 step counts with floats (adam's bias correction), which a user's
    # strict dtype promotion would refuse; netcheck's own arithmetic stays strict.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _epoch(
    net: Network,
    optimizer: optax.GradientTransformation,
    value_and_grad: ValueAndGrad,
    n_examples: int,
    batch_size: int,
    drop_last: bool,
    batch_sharding: NamedSharding | None,
    state: TrainState,
    x: Array,
    y: Array,
) -> tuple[TrainState, Array, Array]:
    """One pass over a fresh permutation of the data; returns ``(state, running_loss, finite)``.

    If any loss or parameter became non-finite, the state the epoch started from comes back.
    """
    key, shuffle_key = jax.random.split(state.key)
    order = jax.random.permutation(shuffle_key, n_examples)
    n_full, remainder = divmod(n_examples, batch_size)

    def step(carry, indices):
        params, opt_state, total = carry
        x_batch, y_batch = x[indices], y[indices]
        if batch_sharding is not None:
            x_batch = jax.lax.with_sharding_constraint(x_batch, batch_sharding)
            y_batch = jax.lax.with_sharding_constraint(y_batch, batch_sharding)
        params, opt_state, loss = _update(
            net, optimizer, value_and_grad, params, opt_state, x_batch, y_batch
        )
        return (params, opt_state, total + loss * indices.shape[0]), None

    carry = (state.params, state.opt_state, jnp.zeros((), x.dtype))
    if n_full:
        batches = order[: n_full * batch_size].reshape(n_full, batch_size)
        carry, _ = jax.lax.scan(step, carry, batches)
    if remainder and not drop_last:
        carry, _ = step(carry, order[n_full * batch_size :])
    params, opt_state, total = carry
    n_used = n_examples if not drop_last else n_full * batch_size
    running_loss = total / n_used
    finite = jnp.isfinite(running_loss) & _all_finite(params)
    new_state = TrainState(params, opt_state, key, state.epoch + 1)
    # The divergence guard: keep the last finite state rather than hand back NaNs.
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return kept, running_loss, finite


def _epoch_and_evaluate(
    epoch_fn: Callable[[TrainState, Array, Array], tuple[TrainState, Array, Array]],
    net: Network,
    state: TrainState,
    x: Array,
    y: Array,
    x_val: Array | None,
    y_val: Array | None,
) -> tuple[TrainState, EpochMetrics]:
    """An epoch followed by the evaluation of its parameters: one program per epoch."""
    state, running_loss, finite = epoch_fn(state, x, y)
    train_loss, train_accuracy = evaluate(net, state.params, x, y)
    if x_val is None:
        val_loss = val_accuracy = jnp.full((), jnp.nan, x.dtype)
    else:
        val_loss, val_accuracy = evaluate(net, state.params, x_val, y_val)
    return state, EpochMetrics(
        running_loss, train_loss, train_accuracy, val_loss, val_accuracy, finite
    )


# ----- the compiled building blocks --------------------------------------------------------


def init_state(params: Params, optimizer: optax.GradientTransformation, key: Any) -> TrainState:
    """A fresh :class:`TrainState`: ``optimizer.init(params)``, the key, epoch 0.

    The state holds copies of ``params`` and ``key``: the compiled step and epoch donate
    their state, and that must never delete the caller's arrays.

    Args:
        params: the parameter pytree.
        optimizer: an optax ``GradientTransformation``.
        key: a typed key (``jax.random.key``) or a raw ``uint32`` key (``jax.random.PRNGKey``).
    """
    _check_optimizer(optimizer)
    params, key = jax.tree.map(jnp.copy, (params, _checked_key(key)))
    return TrainState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32))


def make_train_step(
    net: Network, optimizer: optax.GradientTransformation, *, grad: str = "manual"
) -> Callable[[TrainState, Array, Array], tuple[TrainState, Array]]:
    """A jitted ``step(state, x, y) -> (state, loss)``: one optax update on one minibatch.

    The state is donated (its buffers are reused for the result); the key and epoch pass
    through unchanged. ``loss`` is the minibatch mean before the update. No input checks
    inside: check once with ``net.check_batch``.

    Args:
        net: the network.
        optimizer: an optax ``GradientTransformation``.
        grad: ``"manual"`` (the δ recursion) or ``"autodiff"`` (``jax.grad``).
    """
    _check_network(net)
    _check_optimizer(optimizer)
    value_and_grad = _checked_grad(grad)

    def step(state: TrainState, x: Array, y: Array) -> tuple[TrainState, Array]:
        params, opt_state, loss = _update(
            net, optimizer, value_and_grad, state.params, state.opt_state, x, y
        )
        return state._replace(params=params, opt_state=opt_state), loss

    return jax.jit(step, donate_argnums=0)


def make_epoch_fn(
    net: Network,
    optimizer: optax.GradientTransformation,
    *,
    n_examples: int,
    batch_size: int,
    grad: str = "manual",
    drop_last: bool = False,
    mesh: Mesh | None = None,
) -> Callable[[TrainState, Array, Array], tuple[TrainState, Array, Array]]:
    """A jitted ``epoch(state, x, y) -> (state, running_loss, finite)``: one whole epoch.

    Draws a permutation of the ``n_examples`` rows from ``state.key`` (and moves the key on),
    then scans the optax step over the minibatches; see the module docstring for the last
    partial batch. If a loss or a parameter became non-finite, ``finite`` is False and the
    state the epoch started from comes back. The state is donated.

    Args:
        net: the network.
        optimizer: an optax ``GradientTransformation``.
        n_examples: ``n``, the number of rows of ``x`` and ``y``.
        batch_size: examples per step, at least 1.
        grad: ``"manual"`` or ``"autodiff"``.
        drop_last: skip the last ``n mod batch_size`` examples of each epoch.
        mesh: shard every minibatch along the mesh's first axis (parameters replicated).
    """
    return jax.jit(
        _epoch_callable(net, optimizer, n_examples, batch_size, grad, drop_last, mesh),
        donate_argnums=0,
    )


def _epoch_callable(
    net: Network,
    optimizer: optax.GradientTransformation,
    n_examples: int,
    batch_size: int,
    grad: str,
    drop_last: bool,
    mesh: Mesh | None,
) -> Callable[[TrainState, Array, Array], tuple[TrainState, Array, Array]]:
    """The unjitted epoch function, after checking its configuration."""
    _check_network(net)
    _check_optimizer(optimizer)
    value_and_grad = _checked_grad(grad)
    _check_positive_int(n_examples, "n_examples")
    _check_positive_int(batch_size, "batch_size")
    _check_bool(drop_last, "drop_last")
    if drop_last and batch_size > n_examples:
        raise ValueError(
            f"drop_last=True with batch_size={batch_size} > {n_examples} examples "
            "leaves no minibatch to train on"
        )
    batch_sharding = _batch_sharding(mesh)

    def epoch(state: TrainState, x: Array, y: Array) -> tuple[TrainState, Array, Array]:
        return _epoch(
            net,
            optimizer,
            value_and_grad,
            n_examples,
            batch_size,
            drop_last,
            batch_sharding,
            state,
            x,
            y,
        )

    return epoch


# ----- the trainer -------------------------------------------------------------------------


def train(
    net: Network,
    params: Params,
    data: tuple[Any, Any],
    *,
    optimizer: optax.GradientTransformation | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    key: Any = None,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    on_epoch: Callable[[TrainState, History], None] | None = None,
) -> tuple[Params, History]:
    """Train ``net`` from ``params`` on ``data = (x, y)``; return the parameters and history.

    Every input is checked before anything is compiled (see :func:`fit`).

    Args:
        net: the network.
        params: initial parameters, ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}]``.
        data: ``(x (n, n_0), y (n, n_L))``.
        optimizer: an optax ``GradientTransformation``; default ``optax.sgd(3.0)``, the
            lecture's plain gradient descent at the learning rate of Nielsen's MNIST example.
        epochs: passes over the data, at least 1.
        batch_size: examples per gradient step, at least 1.
        key: PRNG key for the shuffles (typed or raw); default ``jax.random.key(0)``.
        grad: ``"manual"`` (the δ recursion) or ``"autodiff"`` (``jax.grad``).
        validation: optional held-out ``(x_val, y_val)``, evaluated after every epoch.
        check_every: verify the manual gradient against autodiff every this many epochs
            (:func:`netcheck.verifier.verify` on the first :data:`CHECK_EXAMPLES` examples).
        drop_last: skip the last partial minibatch of each epoch instead of training on it.
        mesh: a ``jax.sharding.Mesh`` for data-parallel training (batch along its first axis).
        on_epoch: called after every finished epoch with the state and the history so far.

    Returns:
        ``(params, history)``; see :func:`fit` for the history's keys. If the loss diverges,
        the parameters are the last finite ones.
    """
    optimizer = optax.sgd(3.0) if optimizer is None else optimizer
    key = jax.random.key(0) if key is None else key
    _check_network(net)
    net.check_params(params)
    state = init_state(params, optimizer, key)
    state, history = fit(
        net,
        state,
        data,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        grad=grad,
        validation=validation,
        check_every=check_every,
        drop_last=drop_last,
        mesh=mesh,
        on_epoch=on_epoch,
    )
    return state.params, history


def fit(
    net: Network,
    state: TrainState,
    data: tuple[Any, Any],
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int = 10,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    history: History | None = None,
    on_epoch: Callable[[TrainState, History], None] | None = None,
) -> tuple[TrainState, History]:
    """Run ``epochs`` more epochs from ``state`` (e.g. one loaded from a checkpoint).

    Checks, before anything is compiled: the network and parameters; ``x`` and ``y`` finite,
    of matching lengths and shapes, not empty; targets the loss accepts (binary
    cross-entropy: in ``[0, 1]``; softmax cross-entropy: in ``[0, 1]`` with rows summing to
    1); ``batch_size``, ``epochs`` and ``check_every`` positive ints; ``grad`` a known name.

    Args:
        net, data, optimizer, batch_size, grad, validation, check_every, drop_last, mesh:
            as in :func:`train`.
        state: where to start; its ``opt_state`` must come from ``optimizer``.
        epochs: how many epochs to run now, at least 1.
        history: a history to continue (resuming); a fresh one by default.
        on_epoch: called after every finished epoch with the state and the history so far.

    Returns:
        ``(state, history)``. ``history`` is JSON-able: ``epoch``, ``running_loss``,
        ``train_loss``, ``train_accuracy``, ``validation_loss``, ``validation_accuracy``
        (lists with one float per epoch; the validation lists stay empty without
        validation data), ``checks`` (one ``{"epoch", "ok", "verdict"}`` per
        verification) and ``stopped`` (``None``, or why training stopped early).
    """
    epochs_run = iterate_epochs(
        net,
        state,
        data,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        grad=grad,
        validation=validation,
        check_every=check_every,
        drop_last=drop_last,
        mesh=mesh,
        history=history,
    )
    for state, history in epochs_run:
        if on_epoch is not None and not history["stopped"]:
            on_epoch(state, history)
    return state, history


def iterate_epochs(
    net: Network,
    state: TrainState,
    data: tuple[Any, Any],
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int = 10,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    history: History | None = None,
) -> Iterator[tuple[TrainState, History]]:
    """:func:`fit` one epoch at a time: yields ``(state, history)`` after every epoch.

    The arguments are :func:`fit`'s and are all checked at the first ``next()``, before
    anything is compiled. ``history`` is one dict, updated in place. If the loss diverges,
    the last item carries the last finite state and ``history["stopped"]`` says why.
    Each yielded state is donated to the next epoch: copy what you keep
    (``jax.tree.map(jnp.copy, state)``) before asking for the next one.
    """
    _check_network(net)
    _check_optimizer(optimizer)
    _checked_grad(grad)
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if check_every is not None:
        _check_positive_int(check_every, "check_every")
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    x, y = check_data(net, state.params, data, "data")
    if validation is not None:
        x_val, y_val = check_data(net, state.params, validation, "validation")
    else:
        x_val = y_val = None
    config = (net, optimizer, x.shape[0], batch_size, grad, drop_last, mesh)
    try:
        run_epoch = _compiled_epoch(*config)
    except TypeError:  # an optimizer that cannot be hashed is compiled afresh
        run_epoch = _compiled_epoch.__wrapped__(*config)
    history = new_history() if history is None else history
    # Fresh buffers: the epoch donates its state, and the caller keeps theirs.
    state = jax.tree.map(jnp.copy, state)
    if mesh is not None:
        state, x, y, x_val, y_val = jax.device_put(
            (state, x, y, x_val, y_val), NamedSharding(mesh, PartitionSpec())
        )
    for _ in range(epochs):
        state, metrics = run_epoch(state, x, y, x_val, y_val)
        metrics = jax.device_get(metrics)  # one transfer, and the epoch's sync point
        epoch = int(state.epoch) + (0 if bool(metrics.finite) else 1)
        if not bool(metrics.finite):
            message = (
                f"training diverged in epoch {epoch}: the loss became "
                f"{float(metrics.running_loss)} (or a parameter became NaN/Inf); "
                f"returning the last finite parameters, those from before epoch {epoch}"
            )
            warnings.warn(message, DivergenceWarning, stacklevel=3)
            history["stopped"] = message
            yield state, history
            return
        for name, value in _history_row(epoch, metrics, validation is not None).items():
            history[name].append(value)
        if check_every is not None and epoch % check_every == 0:
            history["checks"].append(_check_gradient(net, state.params, x, y, epoch))
        yield state, history


@functools.lru_cache(maxsize=16)
def _compiled_epoch(
    net: Network,
    optimizer: optax.GradientTransformation,
    n_examples: int,
    batch_size: int,
    grad: str,
    drop_last: bool,
    mesh: Mesh | None,
) -> Callable[..., tuple[TrainState, EpochMetrics]]:
    """The jitted ``(state, x, y, x_val, y_val) -> (state, metrics)`` of one configuration.

    Kept across :func:`fit` calls, so resuming in the same process (or training the same
    configuration again with the same optimizer object) reuses the compiled program.
    """
    epoch_fn = _epoch_callable(net, optimizer, n_examples, batch_size, grad, drop_last, mesh)

    def run_epoch(state, x, y, x_val, y_val):
        return _epoch_and_evaluate(epoch_fn, net, state, x, y, x_val, y_val)

    return jax.jit(run_epoch, donate_argnums=0)


def new_history() -> History:
    """An empty history record (see :func:`fit` for its keys)."""
    return {
        "epoch": [],
        "running_loss": [],
        "train_loss": [],
        "train_accuracy": [],
        "validation_loss": [],
        "validation_accuracy": [],
        "checks": [],
        "stopped": None,
    }


def _history_row(epoch: int, metrics: EpochMetrics, has_validation: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "epoch": epoch,
        "running_loss": float(metrics.running_loss),
        "train_loss": float(metrics.train_loss),
        "train_accuracy": float(metrics.train_accuracy),
    }
    if has_validation:
        row["validation_loss"] = float(metrics.validation_loss)
        row["validation_accuracy"] = float(metrics.validation_accuracy)
    return row


def _check_gradient(net: Network, params: Params, x: Array, y: Array, epoch: int) -> dict:
    """Verify the manual gradient against autodiff on the first training examples."""
    verdict = verify(net, params, x[:CHECK_EXAMPLES], y[:CHECK_EXAMPLES])
    return {"epoch": epoch, "ok": bool(verdict.ok), "verdict": verdict.to_dict()}


# ----- input checks, at the public boundary ------------------------------------------------


def check_data(net: Network, params: Params, data: Any, what: str) -> tuple[Array, Array]:
    """Check a ``(x, y)`` pair for training and return it as arrays of the params' dtype.

    Refuses (one ``ValueError``/``TypeError`` each): a ``data`` that is not a pair, empty
    data, lengths that differ, wrong shapes, NaN or Inf, and targets the loss does not
    accept (binary cross-entropy: outside ``[0, 1]``; softmax cross-entropy: outside
    ``[0, 1]`` or rows not summing to 1).

    Args:
        net: the network.
        params: its parameters (their dtype is the data's).
        data: ``(x (n, n_0), y (n, n_L))``.
        what: the argument's name, for the messages.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what} must be a pair (x, y), got {type(data).__name__}")
    x, y = data
    lengths = [_length(value, f"{what}: {name}") for name, value in (("x", x), ("y", y))]
    if lengths[0] == 0 or lengths[1] == 0:
        raise ValueError(f"{what} is empty: x has {lengths[0]} rows and y has {lengths[1]}")
    if lengths[0] != lengths[1]:
        raise ValueError(
            f"{what}: x and y have different lengths: x has {lengths[0]} rows, y has {lengths[1]}"
        )
    try:
        x, y = net.check_batch(params, x, y)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{what}: {error}") from None
    _check_targets(net, np.asarray(y), what)
    return x, y


def _length(value: Any, what: str) -> int:
    shape = getattr(value, "shape", None)
    if shape is None:
        try:
            shape = np.shape(value)
        except Exception as error:
            raise TypeError(f"{what} cannot be read as an array: {error}") from None
    if len(shape) == 0:
        raise ValueError(f"{what} must be a 2-d array (n, features), got a scalar")
    return int(shape[0])


def _check_targets(net: Network, y: np.ndarray, what: str) -> None:
    """Refuse targets outside what the network's loss accepts."""
    if net.loss not in ("binary_cross_entropy", "softmax_cross_entropy"):
        return
    low, high = float(y.min()), float(y.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"{what}: {net.loss} needs targets y in [0, 1], got values in [{low:g}, {high:g}]"
        )
    if net.loss == "softmax_cross_entropy":
        sums = y.astype(np.float64).sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > _ONE_HOT_TOLERANCE)
        if bad.size:
            raise ValueError(
                f"{what}: softmax_cross_entropy needs target rows summing to 1 (one-hot or "
                f"probabilities); {bad.size} row(s) do not, e.g. row {bad[0]} sums to "
                f"{sums[bad[0]]:g}"
            )


def _check_network(net: Any) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"net must be a netcheck.Network, got {type(net).__name__}")


def _check_optimizer(optimizer: Any) -> None:
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            "optimizer must be an optax GradientTransformation (e.g. optax.sgd(3.0)), "
            f"got {type(optimizer).__name__}"
        )


def _checked_grad(grad: Any) -> ValueAndGrad:
    if not isinstance(grad, str) or grad not in GRADS:
        raise ValueError(f"grad must be one of {', '.join(map(repr, GRADS))}, got {grad!r}")
    return GRADS[grad]


def _check_positive_int(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be at least 1, got {value}")


def _check_bool(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {value!r}")


def _checked_key(key: Any) -> Array:
    """A typed PRNG key from a typed key or a raw ``uint32`` key of shape ``(2,)``."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    raw = np.asarray(key) if not isinstance(key, jax.Array) else key
    if raw.dtype != np.uint32 or raw.shape != (2,):
        raise TypeError(
            "key must be a jax.random.key(...) or jax.random.PRNGKey(...), got "
            f"{type(key).__name__} with dtype {getattr(raw, 'dtype', '?')} and shape "
            f"{getattr(raw, 'shape', '?')}"
        )
    return jax.random.wrap_key_data(jnp.asarray(raw))


def _batch_sharding(mesh: Any) -> NamedSharding | None:
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
