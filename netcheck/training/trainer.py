"""The trainer: the lecture's learning problem solved by minibatch gradient descent.

The lecture's problem is ``minimise_W 1/n Σ_i L(y_i, ŷ(x_i))`` "attacked through gradient
descent". Each step takes a minibatch ``B`` and applies an optax update to the gradient of the
minibatch mean ``1/|B| Σ_{i∈B} L(y_i, ŷ(x_i))``; with ``optax.sgd(η)`` (the default) that is the
lecture's ``W ← W - η ∇_W``. The gradient is the hand-written δ recursion
(``netcheck.nn.backprop.manual_value_and_grad``) or, for comparison, ``jax.grad`` of the same
loss (``grad="autodiff"``).

What a JAX user composes::

    state = init_state(params, optimizer, key)                  # a TrainState
    step = make_train_step(net, optimizer)                      # jitted, one minibatch
    epoch = make_epoch_fn(net, optimizer, n_examples=n, batch_size=32)   # jitted, one epoch
    state, running_loss, finite = epoch(state, x, y)

and what everyone else calls::

    params, history = train(net, params, (x, y), epochs=30, key=key,
                            validation=(x_test, y_test))

Defaults, one set for ``train``, ``fit`` and ``netcheck train``: plain SGD at
learning rate ``DEFAULT_LEARNING_RATE`` (0.5), minibatches of ``DEFAULT_BATCH_SIZE``
(32), ``DEFAULT_EPOCHS`` (30) epochs.

What an epoch costs: the epoch's own compiled program and one small transfer of its metrics
to the host (the running loss, the divergence flag, the validation metrics). The default
training metric is the *running loss*, the mean of the minibatch losses seen during the
epoch, which the steps compute anyway; the loss and accuracy of the whole training set (one
more forward pass over all of it) are computed only every ``eval_every`` epochs, when asked.
Validation data, when given, is evaluated after every epoch inside the epoch's program.
Data is checked once: arrays already checked (kept by identity, as JAX arrays cannot change)
are not checked again.

A whole epoch is one compiled program: the data stays on the device, the epoch's order is a
permutation drawn from the state's key, and the minibatches (consecutive slices of that
order) run under ``jax.lax.scan``; small batches gather the epoch's rows in one go first
(``GATHER_EPOCH_BELOW``). When
the batch size does not divide ``n``, the last ``r = n mod batch_size`` examples form a
step of their own, of their true size, inside the same program: its gradient is the mean over
exactly those ``r`` examples (what a mask over a padded batch would give, without the padded
work), as in Nielsen's ``network.py``. ``drop_last=True`` skips it instead.

Checkpoints and interruptions: ``on_save`` (with ``save_every``) is called with a state
and its history after every ``save_every``-th epoch, after the last epoch (also when the
divergence guard stops training, with the last finite state), and when a ``KeyboardInterrupt``
arrives, with the last completed epoch; a non-finite state is never handed to it.

Data parallelism: given a ``jax.sharding.Mesh``, every minibatch is sharded along the mesh's
first axis and the parameters and optimizer state are replicated; XLA inserts the all-reduce
of the gradient sums. The dataset itself is replicated so that each epoch's reshuffle is a
local gather. Multi-host runs call ``jax.distributed.initialize()`` first and build the mesh
over ``jax.devices()``.
"""

from __future__ import annotations

import collections
import functools
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from netcheck.nn import Network, Params, autodiff, backprop
from netcheck.verifier import verify

Array = jax.Array
History = dict[str, Any]
StateHook = Callable[["TrainState", History], None]
ValueAndGrad = Callable[[Network, Params, Array, Array], tuple[Array, Params]]

GRADS: dict[str, ValueAndGrad] = {
    "manual": backprop.manual_value_and_grad,
    "autodiff": autodiff.autodiff_value_and_grad,
}
"""Where the gradient comes from: the hand-written δ recursion, or ``jax.value_and_grad``."""

DEFAULT_LEARNING_RATE = 0.5
"""The learning rate of the default optimizer, ``optax.sgd(0.5)``."""

DEFAULT_BATCH_SIZE = 32
"""Examples per gradient step unless told otherwise."""

DEFAULT_EPOCHS = 30
"""Passes over the data unless told otherwise."""

DEFAULT_OPTIMIZER = optax.sgd(DEFAULT_LEARNING_RATE)
"""The optimizer ``train`` uses when given none: plain SGD, ``W ← W - 0.5 ∇_W``.

One shared object, so that repeated calls reuse one compiled epoch.
"""

CHECK_EXAMPLES = 256
"""How many training examples ``check_every`` hands to ``netcheck.verifier.verify``."""

GATHER_EPOCH_BELOW = 32
"""Below this batch size an epoch gathers all its rows in one go; from it on, step by step.

Measured on a 2-core CPU (784-30-10, 10,000 examples, interleaved): at batch 10 the one
gather ran 1.3-1.7x faster than gathering each minibatch inside the scan; from batch 32 up
the per-step gather ran 1.5-3x faster than the one gather. Both visit the same rows in the
same order, so the results are identical.
"""

_CHECKED_DATA_KEPT = 8
"""How many checked ``(x, y)`` pairs are remembered, so that they are not checked again."""


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
    """What one compiled epoch reports (all scalars on the device).

    Attributes:
        running_loss: the mean of the minibatch losses seen during the epoch, each weighted by
            its batch size (the loss before each step's update).
        validation_loss: the mean loss on the validation set after the epoch (NaN without one).
        validation_accuracy: the accuracy on the validation set (NaN without one).
        finite: whether the running loss, every parameter and every optimizer state leaf
            stayed finite; when False the state returned is the one the epoch started from.
    """

    running_loss: Array
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


_evaluate_jit = jax.jit(evaluate, static_argnums=0)


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


def _floating_leaves(tree: Any) -> list[Array]:
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]


def _all_finite(tree: Any) -> Array:
    leaves = _floating_leaves(tree)
    if not leaves:
        return jnp.ones((), bool)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


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

    If the loss, a parameter or an optimizer state leaf became non-finite, the state the
    epoch started from comes back.
    """
    key, shuffle_key = jax.random.split(state.key)
    order = jax.random.permutation(shuffle_key, n_examples)
    n_full = n_examples // batch_size
    split = n_full * batch_size
    n_used = split if drop_last else n_examples
    if batch_size < GATHER_EPOCH_BELOW:
        # Small batches: one gather of the epoch's rows, then consecutive slices.
        x_epoch, y_epoch = x[order[:n_used]], y[order[:n_used]]
        batches = (
            x_epoch[:split].reshape(n_full, batch_size, x.shape[1]),
            y_epoch[:split].reshape(n_full, batch_size, y.shape[1]),
        )
        last = (x_epoch[split:], y_epoch[split:])

        def rows(batch):
            return batch
    else:
        # Larger batches: each step gathers its own rows.
        batches, last = order[:split].reshape(n_full, batch_size), order[split:n_used]

        def rows(indices):
            return x[indices], y[indices]

    def step(carry, batch):
        params, opt_state, total = carry
        x_batch, y_batch = rows(batch)
        if batch_sharding is not None:
            x_batch = jax.lax.with_sharding_constraint(x_batch, batch_sharding)
            y_batch = jax.lax.with_sharding_constraint(y_batch, batch_sharding)
        params, opt_state, loss = _update(
            net, optimizer, value_and_grad, params, opt_state, x_batch, y_batch
        )
        return (params, opt_state, total + loss.astype(total.dtype) * x_batch.shape[0]), None

    # The running loss adds up in float32 at least: bfloat16 would round away small steps.
    total_dtype = x.dtype if jnp.finfo(x.dtype).bits >= 32 else jnp.float32
    carry = (state.params, state.opt_state, jnp.zeros((), total_dtype))
    if n_full:
        carry, _ = jax.lax.scan(step, carry, batches)
    if n_used > split:
        carry, _ = step(carry, last)
    params, opt_state, total = carry
    running_loss = total / n_used
    finite = jnp.isfinite(running_loss) & _all_finite((params, opt_state))
    new_state = TrainState(params, opt_state, key, state.epoch + 1)
    # The divergence guard: keep the last finite state rather than hand back NaNs.
    kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return kept, running_loss, finite


def _epoch_and_validate(
    epoch_fn: Callable[[TrainState, Array, Array], tuple[TrainState, Array, Array]],
    net: Network,
    state: TrainState,
    x: Array,
    y: Array,
    x_val: Array | None,
    y_val: Array | None,
) -> tuple[TrainState, EpochMetrics]:
    """An epoch followed by the evaluation of the validation set: one program per epoch."""
    state, running_loss, finite = epoch_fn(state, x, y)
    if x_val is None:
        val_loss = val_accuracy = jnp.full((), jnp.nan, x.dtype)
    else:
        val_loss, val_accuracy = evaluate(net, state.params, x_val, y_val)
    return state, EpochMetrics(running_loss, val_loss, val_accuracy, finite)


# ----- the compiled building blocks --------------------------------------------------------


def init_state(params: Params, optimizer: optax.GradientTransformation, key: Any) -> TrainState:
    """A fresh ``TrainState``: ``optimizer.init(params)``, the key, epoch 0.

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
    partial batch. If the loss, a parameter or an optimizer state leaf became non-finite,
    ``finite`` is False and the state the epoch started from comes back. The state is
    donated.

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
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    key: Any = None,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    on_epoch: StateHook | None = None,
    save_every: int | None = None,
    on_save: StateHook | None = None,
) -> tuple[Params, History]:
    """Train ``net`` from ``params`` on ``data = (x, y)``; return the parameters and history.

    Every input is checked before anything is compiled (see ``fit``).

    Args:
        net: the network.
        params: initial parameters, ``[{"W": (n_ℓ, n_{ℓ-1}), "b": (n_ℓ,)}]``, finite.
        data: ``(x (n, n_0), y (n, n_L))``.
        optimizer: an optax ``GradientTransformation``; default ``DEFAULT_OPTIMIZER``,
            ``optax.sgd(0.5)``, the lecture's plain gradient descent.
        epochs: passes over the data, at least 1 (default 30).
        batch_size: examples per gradient step, at least 1 (default 32).
        key: PRNG key for the shuffles (typed or raw); default ``jax.random.key(0)``.
        grad: ``"manual"`` (the δ recursion) or ``"autodiff"`` (``jax.grad``).
        validation: optional held-out ``(x_val, y_val)``, evaluated after every epoch.
        eval_every: evaluate the loss and accuracy of the whole training set after every
            this many epochs (by default never: the running loss is the training metric).
        check_every: verify the manual gradient against autodiff every this many epochs
            (``netcheck.verifier.verify`` on the first ``CHECK_EXAMPLES`` examples).
        drop_last: skip the last partial minibatch of each epoch instead of training on it.
        mesh: a ``jax.sharding.Mesh`` for data-parallel training (batch along its first axis).
        on_epoch: called after every finished epoch with the state and the history so far.
        save_every: call ``on_save`` after every this many epochs (see ``iterate_epochs``).
        on_save: the checkpoint hook, e.g. ``lambda state, history:
            netcheck.save_checkpoint(path, net, state, history)``.

    Returns:
        ``(params, history)``; see ``fit`` for the history's keys. If the loss diverges,
        the parameters are the last finite ones.
    """
    optimizer = DEFAULT_OPTIMIZER if optimizer is None else optimizer
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
        eval_every=eval_every,
        check_every=check_every,
        drop_last=drop_last,
        mesh=mesh,
        on_epoch=on_epoch,
        save_every=save_every,
        on_save=on_save,
    )
    return state.params, history


def fit(
    net: Network,
    state: TrainState,
    data: tuple[Any, Any],
    *,
    optimizer: optax.GradientTransformation,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    history: History | None = None,
    on_epoch: StateHook | None = None,
    save_every: int | None = None,
    on_save: StateHook | None = None,
) -> tuple[TrainState, History]:
    """Run ``epochs`` more epochs from ``state`` (e.g. one loaded from a checkpoint).

    Checks, before anything is compiled: the network; the parameters and optimizer state
    (finite); ``x`` and ``y`` finite, of matching lengths and shapes, not empty; targets the
    loss accepts (binary cross-entropy: in ``[0, 1]``; softmax cross-entropy: in ``[0, 1]``
    with rows summing to 1; integer class labels are refused with a one-hot hint);
    ``batch_size``, ``epochs``, ``eval_every``, ``check_every`` and ``save_every`` positive
    ints; ``grad`` a known name.

    Args:
        net, data, optimizer, batch_size, grad, validation, eval_every, check_every,
            drop_last, mesh: as in ``train``.
        state: where to start; its ``opt_state`` must come from ``optimizer``.
        epochs: how many epochs to run now, at least 1.
        history: a history to continue (resuming); a fresh one by default.
        on_epoch: called after every finished epoch with the state and the history so far.
        save_every, on_save: the checkpoint hook, see ``iterate_epochs``. A
            ``KeyboardInterrupt`` raised in ``on_epoch`` also saves the last completed epoch.

    Returns:
        ``(state, history)``. ``history`` is JSON-able: ``epoch`` and ``running_loss`` (one
        entry per epoch); ``validation_loss`` and ``validation_accuracy`` (one per epoch,
        empty without validation data); ``eval_epoch``, ``train_loss`` and
        ``train_accuracy`` (one per evaluation of the whole training set, empty without
        ``eval_every``); ``checks`` (one ``{"epoch", "ok", "verdict"}`` per verification)
        and ``stopped`` (``None``, or why training stopped early).
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
        eval_every=eval_every,
        check_every=check_every,
        drop_last=drop_last,
        mesh=mesh,
        history=history,
        save_every=save_every,
        on_save=on_save,
    )
    for state, history in epochs_run:
        if on_epoch is not None and not history["stopped"]:
            try:
                on_epoch(state, history)
            except KeyboardInterrupt as interrupt:
                # Into the generator, paused at this epoch: it saves, then re-raises.
                epochs_run.throw(interrupt)
    return state, history


def iterate_epochs(
    net: Network,
    state: TrainState,
    data: tuple[Any, Any],
    *,
    optimizer: optax.GradientTransformation,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    grad: str = "manual",
    validation: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    check_every: int | None = None,
    drop_last: bool = False,
    mesh: Mesh | None = None,
    history: History | None = None,
    save_every: int | None = None,
    on_save: StateHook | None = None,
) -> Iterator[tuple[TrainState, History]]:
    """``fit`` one epoch at a time: yields ``(state, history)`` after every epoch.

    The arguments are ``fit``'s and are all checked at the first ``next()``, before
    anything is compiled. ``history`` is one dict, updated in place (its ``stopped`` is
    reset: a new run). If the loss diverges, the last item carries the last finite state
    and ``history["stopped"]`` says why.

    Without ``on_save``, each yielded state is donated to the next epoch: copy what you keep
    (``jax.tree.map(jnp.copy, state)``) before asking for the next one. With ``on_save``
    the states are not donated (the last completed one must outlive the next epoch), and
    ``on_save(state, history)`` is called:

    - after every ``save_every``-th epoch (counting resumed ones: epochs 5, 10, ... for 5),
      before that epoch is yielded;
    - after the last epoch, or with the last finite state when the divergence guard stops;
    - on a ``KeyboardInterrupt`` raised while an epoch runs, or thrown in at a ``yield``
      (``.throw(KeyboardInterrupt())``), with the last completed epoch and the history up
      to it (unless that epoch was saved already or none finished); then it is re-raised.
    """
    _check_network(net)
    _check_optimizer(optimizer)
    _checked_grad(grad)
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    for name, every in (("eval_every", eval_every), ("check_every", check_every)):
        if every is not None:
            _check_positive_int(every, name)
    if save_every is not None:
        _check_positive_int(save_every, "save_every")
        if on_save is None:
            raise ValueError("save_every needs on_save, the function that saves the state")
    if on_save is not None and not callable(on_save):
        raise TypeError(f"on_save must be callable, got {type(on_save).__name__}")
    if not isinstance(state, TrainState):
        raise TypeError(f"state must be a TrainState, got {type(state).__name__}")
    check_finite_state(state, "state")
    x, y = check_data(net, state.params, data, "data")
    if validation is not None:
        x_val, y_val = check_data(net, state.params, validation, "validation")
    else:
        x_val = y_val = None
    keep_states = on_save is not None
    config = (net, optimizer, x.shape[0], batch_size, grad, drop_last, mesh, not keep_states)
    try:
        run_epoch = _compiled_epoch(*config)
    except TypeError:  # an optimizer that cannot be hashed is compiled afresh
        run_epoch = _compiled_epoch.__wrapped__(*config)
    history = new_history() if history is None else history
    history["stopped"] = None
    if not keep_states:
        # Fresh buffers: the epoch donates its state, and the caller keeps theirs.
        state = jax.tree.map(jnp.copy, state)
    if mesh is not None:
        state, x, y, x_val, y_val = jax.device_put(
            (state, x, y, x_val, y_val), NamedSharding(mesh, PartitionSpec())
        )
    first = int(state.epoch)
    last = first + epochs
    completed, saved = state, first  # the last finished epoch's state; the last one saved
    try:
        for epoch in range(first + 1, last + 1):
            state, metrics = run_epoch(completed, x, y, x_val, y_val)
            metrics = jax.device_get(metrics)  # one transfer, and the epoch's sync point
            if not bool(metrics.finite):
                history["stopped"] = _divergence_message(epoch, metrics)
                warnings.warn(history["stopped"], DivergenceWarning, stacklevel=3)
                # The guard handed back the epoch's starting values in fresh buffers (the
                # old ones may have been donated): the last finite state.
                if keep_states and epoch - 1 > saved:
                    on_save(state, history)
                yield state, history
                return
            _record_epoch(history, epoch, metrics, validation is not None)
            if eval_every is not None and epoch % eval_every == 0:
                _record_evaluation(history, epoch, *_evaluate_jit(net, state.params, x, y))
            if check_every is not None and epoch % check_every == 0:
                history["checks"].append(_check_gradient(net, state.params, x, y, epoch))
            completed = state
            if keep_states and (epoch == last or (save_every and epoch % save_every == 0)):
                on_save(completed, history)
                saved = epoch
            yield state, history
    except KeyboardInterrupt:
        done = int(completed.epoch)
        if keep_states and done > saved:
            on_save(completed, history_through(history, done))
        raise


def _divergence_message(epoch: int, metrics: EpochMetrics) -> str:
    return (
        f"training diverged in epoch {epoch}: the loss became "
        f"{float(metrics.running_loss)} (or a parameter or optimizer state became NaN/Inf); "
        f"returning the last finite parameters, those from before epoch {epoch}"
    )


@functools.lru_cache(maxsize=16)
def _compiled_epoch(
    net: Network,
    optimizer: optax.GradientTransformation,
    n_examples: int,
    batch_size: int,
    grad: str,
    drop_last: bool,
    mesh: Mesh | None,
    donate: bool,
) -> Callable[..., tuple[TrainState, EpochMetrics]]:
    """The jitted ``(state, x, y, x_val, y_val) -> (state, metrics)`` of one configuration.

    Kept across ``fit`` calls, so resuming in the same process (or training the same
    configuration again with the same optimizer object) reuses the compiled program.
    """
    epoch_fn = _epoch_callable(net, optimizer, n_examples, batch_size, grad, drop_last, mesh)

    def run_epoch(state, x, y, x_val, y_val):
        return _epoch_and_validate(epoch_fn, net, state, x, y, x_val, y_val)

    return jax.jit(run_epoch, donate_argnums=0 if donate else ())


def new_history() -> History:
    """An empty history record (see ``fit`` for its keys)."""
    return {
        "epoch": [],
        "running_loss": [],
        "validation_loss": [],
        "validation_accuracy": [],
        "eval_epoch": [],
        "train_loss": [],
        "train_accuracy": [],
        "checks": [],
        "stopped": None,
    }


_PER_EPOCH = ("epoch", "running_loss", "validation_loss", "validation_accuracy")
_PER_EVALUATION = ("eval_epoch", "train_loss", "train_accuracy")


def history_through(history: History, epoch: int) -> History:
    """A copy of ``history`` holding only what epochs ``1..epoch`` recorded.

    Args:
        history: a history (see ``fit``).
        epoch: the last epoch to keep.
    """
    kept = sum(1 for done in history["epoch"] if done <= epoch)
    evaluated = sum(1 for done in history["eval_epoch"] if done <= epoch)
    through = {name: list(history[name][:kept]) for name in _PER_EPOCH}
    through.update({name: list(history[name][:evaluated]) for name in _PER_EVALUATION})
    through["checks"] = [check for check in history["checks"] if check["epoch"] <= epoch]
    through["stopped"] = history["stopped"]
    return through


def _record_epoch(
    history: History, epoch: int, metrics: EpochMetrics, has_validation: bool
) -> None:
    history["epoch"].append(epoch)
    history["running_loss"].append(float(metrics.running_loss))
    if has_validation:
        history["validation_loss"].append(float(metrics.validation_loss))
        history["validation_accuracy"].append(float(metrics.validation_accuracy))


def _record_evaluation(history: History, epoch: int, loss: Array, accuracy: Array) -> None:
    loss, accuracy = jax.device_get((loss, accuracy))
    history["eval_epoch"].append(epoch)
    history["train_loss"].append(float(loss))
    history["train_accuracy"].append(float(accuracy))


def _check_gradient(net: Network, params: Params, x: Array, y: Array, epoch: int) -> dict:
    """Verify the manual gradient against autodiff on the first training examples."""
    verdict = verify(net, params, x[:CHECK_EXAMPLES], y[:CHECK_EXAMPLES])
    return {"epoch": epoch, "ok": bool(verdict.ok), "verdict": verdict.to_dict()}


def evaluate_on(net: Network, params: Params, data: tuple[Any, Any]) -> tuple[float, float]:
    """The mean loss ``1/n Σ_i L(y_i, ŷ(x_i))`` and the accuracy of ``params`` on ``data``.

    ``data`` is checked as ``fit`` checks it (once: see ``check_data``).

    Args:
        net: the network.
        params: its parameters.
        data: ``(x (n, n_0), y (n, n_L))``.

    Returns:
        ``(loss, accuracy)`` as Python floats.
    """
    _check_network(net)
    x, y = check_data(net, params, data, "data")
    loss, accuracy_ = jax.device_get(_evaluate_jit(net, params, x, y))
    return float(loss), float(accuracy_)


# ----- input checks, at the public boundary ------------------------------------------------


def check_data(net: Network, params: Params, data: Any, what: str) -> tuple[Array, Array]:
    """Check a ``(x, y)`` pair for training and return it as arrays of the params' dtype.

    Refuses (one ``ValueError``/``TypeError`` each): a ``data`` that is not a pair, empty
    data, lengths that differ, wrong shapes (with a hint for integer class labels where
    one-hot rows are needed), NaN or Inf, and targets the loss does not accept (binary
    cross-entropy: outside ``[0, 1]``; softmax cross-entropy: outside ``[0, 1]`` or rows not
    summing to 1).

    The pair returned is remembered (weakly, by identity: JAX arrays cannot change), so
    handing it back, e.g. to a second ``fit`` or to ``evaluate_on``, skips the
    checks and the transfer. NumPy arrays can change, so they are checked every time.

    Args:
        net: the network.
        params: its parameters (their dtype is the data's).
        data: ``(x (n, n_0), y (n, n_L))``.
        what: the argument's name, for the messages.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what} must be a pair (x, y), got {type(data).__name__}")
    x, y = data
    dtype = net.check_params(params)
    if _checked_before(net, dtype, x, y):
        return x, y
    lengths = [_length(value, f"{what}: {name}") for name, value in (("x", x), ("y", y))]
    if lengths[0] == 0 or lengths[1] == 0:
        raise ValueError(f"{what} is empty: x has {lengths[0]} rows and y has {lengths[1]}")
    if lengths[0] != lengths[1]:
        raise ValueError(
            f"{what}: x and y have different lengths: x has {lengths[0]} rows, y has {lengths[1]}"
        )
    _check_label_shape(net, y, what)
    try:
        x, y = net.check_batch(params, x, y)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{what}: {error}") from None
    _remember_checked(net, dtype, x, y)
    return x, y


_checked_pairs: collections.OrderedDict[tuple, tuple[weakref.ref, weakref.ref]] = (
    collections.OrderedDict()
)


def _checked_key_of(net: Network, dtype: Any, x: Any, y: Any) -> tuple | None:
    """What a check of ``(x, y)`` depended on, or ``None`` for arrays that may change."""
    arrays = (x, y)
    if not all(isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer) for a in arrays):
        return None
    return (id(x), id(y), net.sizes[0], net.sizes[-1], net.loss, jnp.dtype(dtype))


def _checked_before(net: Network, dtype: Any, x: Any, y: Any) -> bool:
    key = _checked_key_of(net, dtype, x, y)
    refs = _checked_pairs.get(key) if key is not None else None
    if refs is None or refs[0]() is not x or refs[1]() is not y:
        return False
    _checked_pairs.move_to_end(key)
    return True


def _remember_checked(net: Network, dtype: Any, x: Array, y: Array) -> None:
    key = _checked_key_of(net, dtype, x, y)
    if key is None:
        return
    _checked_pairs[key] = (weakref.ref(x), weakref.ref(y))
    while len(_checked_pairs) > _CHECKED_DATA_KEPT:
        _checked_pairs.popitem(last=False)


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


def _check_label_shape(net: Network, y: Any, what: str) -> None:
    """Refuse class labels where the network needs ``(n, n_L)`` rows, saying what to pass."""
    shape = tuple(np.shape(y))
    n_out = net.sizes[-1]
    if len(shape) == 1 and n_out == 1:
        raise ValueError(
            f"{what}: y has shape {shape} but the network has one output, so y must be "
            "(n, 1): pass y.reshape(-1, 1)"
        )
    if n_out == 1 or shape[1:] not in ((), (1,)):
        return
    values = np.asarray(y)
    if not (np.issubdtype(values.dtype, np.number) and values.size):
        return
    if np.all(np.mod(values, 1) == 0) and values.min() >= 0 and values.max() < n_out:
        raise ValueError(
            f"{what}: y looks like integer class labels (shape {shape}, values "
            f"{values.min():g}..{values.max():g}), but the network's {n_out} outputs need "
            f"one-hot rows (n, {n_out}): pass jax.nn.one_hot(y.ravel(), {n_out})"
        )


def check_finite_state(state: TrainState, what: str) -> None:
    """Refuse a state whose parameters or optimizer state hold NaN or Inf, naming the leaves.

    Raises:
        ValueError: ``"{what}: params[0]['W'] holds 2 non-finite value(s) ..."``.
    """
    bad = non_finite_leaves({"params": state.params, "opt_state": state.opt_state})
    if bad:
        raise ValueError(
            f"{what}: {'; '.join(bad)}; training from a non-finite state cannot give finite "
            "parameters"
        )


def non_finite_leaves(tree: Any) -> list[str]:
    """``"<path> holds <k> non-finite value(s) (NaN or Inf)"`` for each floating leaf that does.

    One compiled reduction over all leaves and one transfer, however many leaves there are.
    Parameter leaves are also named as in the lecture (``params/0/W (W_1)``).

    Args:
        tree: any pytree of arrays (JAX or NumPy); non-floating leaves are skipped.
    """
    named = [
        (_leaf_name(path), leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    if not named:
        return []
    counts = jax.device_get(_non_finite_counts([leaf for _, leaf in named]))
    return [
        f"{name} holds {int(count)} non-finite value(s) (NaN or Inf)"
        for (name, _), count in zip(named, counts, strict=True)
        if count
    ]


def _leaf_name(path: tuple) -> str:
    """``params/0/W (W_1)`` for a parameter, the plain path for anything else."""
    name = jax.tree_util.keystr(path, simple=True, separator="/")
    parts = name.split("/")
    if len(parts) >= 3 and parts[-3] == "params" and parts[-2].isdigit():
        return f"{name} ({parts[-1]}_{int(parts[-2]) + 1})"
    return name


@jax.jit
def _non_finite_counts(leaves: list[Array]) -> list[Array]:
    return [jnp.sum(~jnp.isfinite(leaf), dtype=jnp.int32) for leaf in leaves]


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
