"""How fast the trainer is: against its own compiled epoch, and against what people write instead.

The configuration of Nielsen's MNIST example (``network.py``, chapter 1 of *Neural Networks
and Deep Learning*): sizes 784-30-10, sigmoid everywhere, the quadratic cost ``½‖ŷ - y‖²``,
plain SGD with learning rate 3.0, on 10,000 examples of synthetic data of MNIST's shape
(sparse strokes in ``[0, 1]`` around 10 class patterns, see ``synthetic_mnist``). Two
measurements, both interleaved (each round runs every contender once, back to back, so that
the load of a shared machine falls on all of them alike) and both judged by paired ratios
(one ratio per round) with a distribution-free 95% confidence interval for their median
(``median_interval``):

**Overhead** (``measure_overhead``, batch 10, 3 epochs): what ``netcheck.train`` costs
beyond its compiled epoch. Three calls, each from the same NumPy arrays to trained
parameters ready on the device (each includes its own transfer of the data):

- ``train``: ``netcheck.training.trainer.train``, everything included (input checks, history,
  one small transfer of metrics per epoch);
- ``compiled epochs``: ``netcheck.training.trainer.make_epoch_fn`` called 3 times;
- ``minimal scan``: a minimal hand-written ``lax.scan`` SGD epoch (``make_scan_epoch``:
  permute, reshape into minibatches, scan ``p - η jax.grad``), called 3 times.

Goals: ``train / compiled epochs`` within 1.10 and ``compiled epochs / minimal scan`` within
1.2, each met when the upper end of its confidence interval is.

**Throughput** (``measure_throughput``, batches 10, 128 and 1024): examples per second,
epoch by epoch, from the same initial parameters over the same minibatch orders:

- ``netcheck``: ``netcheck.training.trainer.fit`` epoch by epoch (``iterate_epochs``);
- ``nc-epoch``: the compiled epoch alone; ``scan``: the minimal ``lax.scan`` epoch;
- ``jax-loop``: the typical JAX loop, a Python ``for`` over minibatches sliced on the host,
  each calling a jitted ``jax.value_and_grad`` + optax step;
- ``numpy-loop``: a per-example numpy loop in the style of Nielsen's ``network.py``;
- ``nielsen``: Nielsen's own ``network.py`` (``--nielsen PATH``; see ``load_nielsen``).

The first epoch of each is a warm-up (compilation); speedups are medians of paired
per-epoch ratios with their intervals. The final losses (mean loss on the whole training set,
in float64) must agree within ``LOSS_RTOL``. Run ``python -m netcheck.bench.trainer_speed``; the
record (``--json``) carries the command that made it and the machine's load average.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import shlex
import statistics
import sys
import time
import tokenize
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from netcheck._io import write_json_atomic
from netcheck.bench.step import environment, time_interleaved
from netcheck.nn import Network, Params
from netcheck.training.trainer import init_state, iterate_epochs, make_epoch_fn, train

SIZES = (784, 30, 10)
LEARNING_RATE = 3.0
N_EXAMPLES = 10_000
BATCH_SIZES = (10, 128, 1024)
OVERHEAD_BATCH_SIZE = 10
OVERHEAD_EPOCHS = 3
GOALS = {"train_over_epochs": 1.10, "epochs_over_scan": 1.2}
"""The overhead goals: the largest acceptable ratio of each pair."""
CONFIDENCE = 0.95
LOSS_RTOL = 1e-2
"""Final losses agree when within this relative distance (float32 JAX vs float64 numpy)."""

Order = list[np.ndarray]
"""One permutation of the training rows per epoch."""


# ----- data and the common starting point -------------------------------------------------


def synthetic_mnist(n_examples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, 784)`` in ``[0, 1]`` and one-hot ``y (n, 10)``, both float32, MNIST-like.

    Each class has a fixed random "stroke" pattern covering 19% of the pixels; an example
    keeps 70% of its class's strokes, gains 5% stray pixels, and has intensities in
    ``[0.5, 1]``. Like MNIST, the mean intensity is about 0.13 with about 18% of pixels
    inked, and the classes are learnable, so the loss goes down as on MNIST.
    """
    rng = np.random.default_rng(seed)
    n_classes = SIZES[-1]
    patterns = rng.random((n_classes, SIZES[0])) < 0.19
    labels = rng.integers(0, n_classes, n_examples)
    kept = patterns[labels] & (rng.random((n_examples, SIZES[0])) < 0.7)
    inked = kept | (rng.random((n_examples, SIZES[0])) < 0.05)
    x = inked * rng.uniform(0.5, 1.0, (n_examples, SIZES[0]))
    return x.astype(np.float32), np.eye(n_classes, dtype=np.float32)[labels]


def epoch_orders(key: jax.Array, n_examples: int, epochs: int) -> Order:
    """The permutations netcheck's epochs draw from ``key``, so the loops can replay them.

    Mirrors ``netcheck.training.trainer.fit``: each epoch splits the key and shuffles with the
    second half.
    """
    orders = []
    for _ in range(epochs):
        key, shuffle_key = jax.random.split(key)
        orders.append(np.asarray(jax.random.permutation(shuffle_key, n_examples)))
    return orders


# ----- the trainers ------------------------------------------------------------------------
# Each is a generator: one epoch per next(), yielding (seconds, params as numpy [(W, b)]);
# the benchmark interleaves them epoch by epoch so that they share the machine's load.

NumpyParams = list[tuple[np.ndarray, np.ndarray]]
EpochRunner = Iterator[tuple[float, NumpyParams]]


def netcheck_fit(
    net: Network,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    batch_size: int,
    epochs: int,
) -> EpochRunner:
    """netcheck's trainer, ``netcheck.training.trainer.fit`` epoch by epoch (``iterate_epochs``).

    Each epoch includes the transfer of its metrics (running loss, divergence flag) to the
    host; the one-time input checks fall in the first (warm-up) epoch.
    """
    optimizer = optax.sgd(LEARNING_RATE)
    run = iterate_epochs(
        net,
        init_state(params, optimizer, key),
        (x, y),
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
    )
    for _ in range(epochs):
        start = time.perf_counter()
        state, _ = next(run)  # returns after a host sync on the epoch's metrics
        seconds = time.perf_counter() - start
        yield seconds, _as_numpy(state.params)


def netcheck_epoch(
    net: Network,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    batch_size: int,
    epochs: int,
) -> EpochRunner:
    """netcheck's compiled epoch alone (``netcheck.make_epoch_fn``), no evaluation."""
    optimizer = optax.sgd(LEARNING_RATE)
    epoch = make_epoch_fn(net, optimizer, n_examples=x.shape[0], batch_size=batch_size)
    state = init_state(params, optimizer, key)
    x_device, y_device = jnp.asarray(x), jnp.asarray(y)
    for _ in range(epochs):
        start = time.perf_counter()
        state, _, _ = epoch(state, x_device, y_device)
        jax.block_until_ready(state)
        seconds = time.perf_counter() - start
        yield seconds, _as_numpy(state.params)


def jax_loop(
    net: Network, params: Params, x: np.ndarray, y: np.ndarray, orders: Order, batch_size: int
) -> EpochRunner:
    """The typical JAX loop: a jitted ``value_and_grad`` + optax step per host minibatch."""
    optimizer = optax.sgd(LEARNING_RATE)

    @jax.jit
    def step(params, opt_state, x_batch, y_batch):
        loss, grads = jax.value_and_grad(net.mean_loss_unchecked)(params, x_batch, y_batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    for order in orders:
        start = time.perf_counter()
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            params, opt_state, _ = step(params, opt_state, x[rows], y[rows])
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        yield seconds, _as_numpy(params)


def numpy_loop(
    params: Params, x: np.ndarray, y: np.ndarray, orders: Order, batch_size: int
) -> EpochRunner:
    """Nielsen's ``network.py`` SGD: per-example backprop on column vectors, float64."""
    weights = [np.asarray(layer["W"], np.float64) for layer in params]
    biases = [np.asarray(layer["b"], np.float64)[:, None] for layer in params]
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for order in orders:
        start = time.perf_counter()
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            _nielsen_update_mini_batch(weights, biases, x64[rows], y64[rows], LEARNING_RATE)
        seconds = time.perf_counter() - start
        yield seconds, [(w.copy(), b[:, 0].copy()) for w, b in zip(weights, biases, strict=True)]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _nielsen_update_mini_batch(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    eta: float,
) -> None:
    """``network.py``'s ``update_mini_batch``: sum per-example gradients, step by ``η/m``."""
    nabla_w = [np.zeros(w.shape) for w in weights]
    nabla_b = [np.zeros(b.shape) for b in biases]
    for row in range(x.shape[0]):
        delta_w, delta_b = _nielsen_backprop(weights, biases, x[row][:, None], y[row][:, None])
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_w, strict=True)]
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_b, strict=True)]
    for layer in range(len(weights)):
        weights[layer] -= (eta / x.shape[0]) * nabla_w[layer]
        biases[layer] -= (eta / x.shape[0]) * nabla_b[layer]


def _nielsen_backprop(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``network.py``'s ``backprop`` for one example (column vectors ``(n_ℓ, 1)``)."""
    activation, activations, zs = x, [x], []
    for w, b in zip(weights, biases, strict=True):
        z = w @ activation + b
        zs.append(z)
        activation = _sigmoid(z)
        activations.append(activation)
    # δ^L = (a^L - y) ⊙ σ'(z^L), then δ^ℓ = (W_{ℓ+1}ᵀ δ^{ℓ+1}) ⊙ σ'(z^ℓ).
    delta = (activations[-1] - y) * activations[-1] * (1 - activations[-1])
    nabla_w, nabla_b = [delta @ activations[-2].T], [delta]
    for layer in range(2, len(weights) + 1):
        a = activations[-layer]
        delta = (weights[-layer + 1].T @ delta) * a * (1 - a)
        nabla_w.insert(0, delta @ activations[-layer - 1].T)
        nabla_b.insert(0, delta)
    return nabla_w, nabla_b


def make_scan_epoch(
    net: Network, n_examples: int, batch_size: int
) -> Callable[[Params, jax.Array, jax.Array, jax.Array], tuple[Params, jax.Array]]:
    """A minimal hand-written ``lax.scan`` SGD epoch: ``epoch(params, key, x, y)``.

    What a JAX user writes in a dozen lines: split the key, permute the rows, reshape them
    into minibatches, scan ``p ← p - η jax.grad(mean loss)``, then one step on the last
    partial batch. No optimizer library, no divergence guard, no running loss. It draws
    its orders as netcheck's epoch does, so both see the same minibatches.
    """
    n_full = n_examples // batch_size
    split = n_full * batch_size
    grad = jax.grad(net.mean_loss_unchecked)

    def sgd(params, x_batch, y_batch):
        grads = grad(params, x_batch, y_batch)
        return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads)

    @jax.jit
    def epoch(params, key, x, y):
        key, shuffle_key = jax.random.split(key)
        order = jax.random.permutation(shuffle_key, n_examples)
        x, y = x[order], y[order]
        if n_full:
            batches = (
                x[:split].reshape(n_full, batch_size, -1),
                y[:split].reshape(n_full, batch_size, -1),
            )
            params, _ = jax.lax.scan(lambda p, batch: (sgd(p, *batch), None), params, batches)
        if split < n_examples:
            params = sgd(params, x[split:], y[split:])
        return params, key

    return epoch


def scan_loop(
    net: Network,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    batch_size: int,
    epochs: int,
) -> EpochRunner:
    """The minimal ``lax.scan`` epoch (``make_scan_epoch``), epoch by epoch."""
    epoch = make_scan_epoch(net, x.shape[0], batch_size)
    x_device, y_device = jnp.asarray(x), jnp.asarray(y)
    for _ in range(epochs):
        start = time.perf_counter()
        params, key = epoch(params, key, x_device, y_device)
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        yield seconds, _as_numpy(params)


def load_nielsen(path: str | Path) -> types.ModuleType:
    """Nielsen's ``network.py`` as a module, on Python 3; the file itself is left untouched.

    His code (2015) is Python 2. Two things stop it on Python 3: ``print`` statements (a
    syntax error) and ``xrange``. If the file does not compile as it is, each ``print``
    statement is rewritten into a call, with Python's own tokenizer (so strings, comments
    and continuation lines are respected); ``xrange`` is defined as ``range`` in the
    module's namespace. Nothing else is changed: the numpy code runs as he wrote it. A
    Python 3 port compiles as it is and loads unchanged.

    Raises:
        FileNotFoundError: no such file. ValueError: no ``Network`` class with
            ``update_mini_batch``, ``weights`` and ``biases`` (not his ``network.py``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--nielsen: {str(path)!r} does not exist")
    code, _ = _compile_nielsen(path)
    module = types.ModuleType("nielsen_network")
    module.__file__ = str(path)
    module.xrange = range  # type: ignore[attr-defined]
    exec(code, module.__dict__)
    network = getattr(module, "Network", None)
    if network is None or not callable(getattr(network, "update_mini_batch", None)):
        raise ValueError(f"--nielsen: {path} has no Network class with update_mini_batch")
    return module


def _compile_nielsen(path: Path) -> tuple[types.CodeType, bool]:
    """His file compiled for Python 3, and whether its print statements had to be rewritten."""
    source = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        # His docstrings hold "\\partial": an invalid escape that Python 3 warns about.
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        try:
            return compile(source, str(path), "exec"), False
        except SyntaxError:
            return compile(print_statements_to_calls(source), str(path), "exec"), True


def print_statements_to_calls(source: str) -> str:
    """Python 2 ``print x, y`` statements as ``print(x, y)`` calls; nothing else changes.

    A ``print`` that starts a statement and is not already followed by ``(`` gets ``(``
    after it and ``)`` after the last token of its logical line (before any comment).
    """
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (row, first column, end column, new text)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    starts_statement = True
    open_print = False
    last_end = (0, 0)
    for index, token in enumerate(tokens):
        kind, text = token.type, token.string
        if kind in (tokenize.NEWLINE, tokenize.ENDMARKER) and open_print:
            edits.append((*last_end, last_end[1], ")"))
            open_print = False
        if starts_statement and kind == tokenize.NAME and text == "print":
            following = tokens[index + 1]
            if not (following.type == tokenize.OP and following.string == "("):
                # "print x" -> "print(x": the blank between them becomes the parenthesis.
                same_row = following.start[0] == token.end[0]
                end_column = following.start[1] if same_row else token.end[1]
                edits.append((*token.end, end_column, "("))
                open_print = True
        if kind not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            last_end = token.end
        if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            starts_statement = True
        elif kind not in (tokenize.NL, tokenize.COMMENT):
            starts_statement = kind == tokenize.OP and text == ";"
    for row, start, end, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + text + line[end:]
    return "".join(lines)


def nielsen_loop(
    module: types.ModuleType,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    orders: Order,
    batch_size: int,
) -> EpochRunner:
    """Nielsen's own ``Network.update_mini_batch``, over the same minibatches as the others.

    His ``SGD`` shuffles with ``random.shuffle`` and slices a list of ``(x, y)`` column
    pairs into minibatches; here the same list is sliced in the benchmark's orders instead
    (the shuffle of a 10,000-item list costs a few ms of an epoch of seconds), and his
    weights and biases are set to the common starting point.
    """
    network = module.Network(list(SIZES))
    network.weights = [np.asarray(layer["W"], np.float64) for layer in params]
    network.biases = [np.asarray(layer["b"], np.float64)[:, None] for layer in params]
    pairs = [
        (row_x[:, None], row_y[:, None])
        for row_x, row_y in zip(x.astype(np.float64), y.astype(np.float64), strict=True)
    ]
    for order in orders:
        start = time.perf_counter()
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            network.update_mini_batch([pairs[row] for row in rows], LEARNING_RATE)
        seconds = time.perf_counter() - start
        yield (
            seconds,
            [
                (w.copy(), b[:, 0].copy())
                for w, b in zip(network.weights, network.biases, strict=True)
            ],
        )


def numpy_mean_loss(params: NumpyParams, x: np.ndarray, y: np.ndarray) -> float:
    """``1/n Σ_i ½‖ŷ_i - y_i‖²`` in float64 numpy, the common yardstick of the final losses."""
    a = x.astype(np.float64)
    for w, b in params:
        a = _sigmoid(a @ np.asarray(w, np.float64).T + np.asarray(b, np.float64))
    return float(np.mean(0.5 * np.sum((a - y) ** 2, axis=1)))


def _as_numpy(params: Params) -> NumpyParams:
    return [(np.asarray(layer["W"]), np.asarray(layer["b"])) for layer in params]


# ----- the measurements ----------------------------------------------------------------------


def median_interval(values: Sequence[float], level: float = CONFIDENCE) -> dict[str, float]:
    """The median of ``values`` and a distribution-free confidence interval for it.

    The interval is ``[v_(k), v_(n+1-k)]`` of the sorted values, with the largest ``k``
    whose coverage ``1 - 2 P(Binomial(n, 1/2) < k)`` is at least ``level`` (for any
    continuous distribution of independent values). With fewer than 6 values no interval
    reaches 95%: then it is the full range, and ``level`` says what it does reach.

    Returns:
        ``{"median", "low", "high", "level", "n"}``.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median_interval needs at least one value")

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = max((k for k in range(1, n // 2 + 1) if coverage(k) >= level), default=1)
    return {
        "median": statistics.median(ordered),
        "low": ordered[k - 1],
        "high": ordered[n - k],
        "level": coverage(k) if n > 1 else 0.0,
        "n": n,
    }


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """``numerator[r] / denominator[r]`` for each round ``r`` (both timed back to back)."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def _problem(n_examples: int, seed: int) -> tuple[Network, Params, np.ndarray, np.ndarray, Any]:
    x, y = synthetic_mnist(n_examples, seed)
    net = Network(SIZES, activation="sigmoid", output_activation="sigmoid", loss="squared_error")
    key_init, key_shuffle = jax.random.split(jax.random.key(seed))
    return net, net.init(key_init, scheme="nielsen"), x, y, key_shuffle


def overhead_calls(
    net: Network,
    params: Params,
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    batch_size: int = OVERHEAD_BATCH_SIZE,
    epochs: int = OVERHEAD_EPOCHS,
) -> dict[str, Callable[[], Params]]:
    """The three calls of the overhead measurement, each from NumPy data to trained params."""
    optimizer = optax.sgd(LEARNING_RATE)  # one object: train() reuses its compiled epoch
    epoch = make_epoch_fn(net, optimizer, n_examples=x.shape[0], batch_size=batch_size)
    scan_epoch = make_scan_epoch(net, x.shape[0], batch_size)

    def netcheck_train() -> Params:
        trained, _ = train(
            net, params, (x, y), optimizer=optimizer, epochs=epochs, batch_size=batch_size, key=key
        )
        return trained

    def compiled_epochs() -> Params:
        state = init_state(params, optimizer, key)
        x_device, y_device = jnp.asarray(x), jnp.asarray(y)
        for _ in range(epochs):
            state, _, _ = epoch(state, x_device, y_device)
        return state.params

    def minimal_scan() -> Params:
        trained, shuffle_key = params, key
        x_device, y_device = jnp.asarray(x), jnp.asarray(y)
        for _ in range(epochs):
            trained, shuffle_key = scan_epoch(trained, shuffle_key, x_device, y_device)
        return trained

    return {
        "train": netcheck_train,
        "compiled epochs": compiled_epochs,
        "minimal scan": minimal_scan,
    }


def measure_overhead(
    n_examples: int = N_EXAMPLES, rounds: int = 15, seed: int = 0
) -> dict[str, Any]:
    """What ``train`` costs beyond its compiled epoch, and that epoch beyond a minimal scan.

    Args:
        n_examples: training rows.
        rounds: timed rounds (each runs the three calls once, in a fresh random order).
        seed: seeds the data, the parameters and the shuffles.

    Returns:
        ``{"config", "seconds": {call: [per round]}, "ratios": {name: median_interval},
        "goals": [{"name", "target", "median", "low", "high", "met"}]}``; ``met`` is
        ``"yes"`` when the interval lies at or below the target, ``"no"`` when above it,
        ``"unresolved"`` when it straddles it.
    """
    net, params, x, y, key = _problem(n_examples, seed)
    calls = overhead_calls(net, params, x, y, key)
    timed = time_interleaved(calls, rounds=rounds, min_measure_s=0.0)
    seconds = {name: timed[name]["times_s"] for name in calls}
    ratios = {
        "train_over_epochs": median_interval(
            paired_ratios(seconds["train"], seconds["compiled epochs"])
        ),
        "epochs_over_scan": median_interval(
            paired_ratios(seconds["compiled epochs"], seconds["minimal scan"])
        ),
    }
    return {
        "config": {
            "n_examples": n_examples,
            "batch_size": OVERHEAD_BATCH_SIZE,
            "epochs": OVERHEAD_EPOCHS,
            "rounds": rounds,
        },
        "seconds": seconds,
        "ratios": ratios,
        "goals": [_goal(name, GOALS[name], ratios[name]) for name in GOALS],
    }


def _goal(name: str, target: float, interval: dict[str, float]) -> dict[str, Any]:
    if interval["high"] <= target:
        met = "yes"
    elif interval["low"] > target:
        met = "no"
    else:
        met = "unresolved"
    return {"name": name, "target": target, **interval, "met": met}


def measure_throughput(
    n_examples: int = N_EXAMPLES,
    epochs: int = 7,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seed: int = 0,
    nielsen: types.ModuleType | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time the trainers at each batch size, epoch by epoch, interleaved.

    Args:
        n_examples: training rows of synthetic MNIST-shaped data.
        epochs: epochs per trainer, at least 2 (the first is the warm-up); 7 gives 6 paired
            ratios, the fewest with a 95% interval.
        batch_sizes: the minibatch sizes to time.
        seed: seeds the data, the initial parameters and the shuffles.
        nielsen: Nielsen's ``network.py`` (``load_nielsen``), timed beside the others.
        progress: called with a line of text per trainer as each batch size finishes.

    Returns:
        ``{"rows", "speedups"}``: one row per (batch size, trainer) with
        ``examples_per_second``, ``epoch_seconds`` (median of the timed epochs) and
        ``final_loss``; ``speedups[batch]`` has ``netcheck`` over each other trainer
        (``"over_<trainer>"``, a ``median_interval`` of the paired ratios of the other's
        epoch time to netcheck's) and whether the final losses agree.
    """
    if epochs < 2:
        raise ValueError(f"epochs must be at least 2 (one warm-up, one timed), got {epochs}")
    net, params, x, y, key = _problem(n_examples, seed)
    orders = epoch_orders(key, n_examples, epochs)
    rows, speedups = [], {}
    for batch_size in batch_sizes:
        runners = {
            "netcheck": netcheck_fit(net, params, x, y, key, batch_size, epochs),
            "nc-epoch": netcheck_epoch(net, params, x, y, key, batch_size, epochs),
            "scan": scan_loop(net, params, x, y, key, batch_size, epochs),
            "jax-loop": jax_loop(net, params, x, y, orders, batch_size),
            "numpy-loop": numpy_loop(params, x, y, orders, batch_size),
        }
        if nielsen is not None:
            runners["nielsen"] = nielsen_loop(nielsen, params, x, y, orders, batch_size)
        seconds: dict[str, list[float]] = {name: [] for name in runners}
        final: dict[str, NumpyParams] = {}
        for _ in range(epochs):  # interleaved: every trainer's k-th epoch in one round
            for name, runner in runners.items():
                epoch_seconds, final[name] = next(runner)
                seconds[name].append(epoch_seconds)
        losses = {name: numpy_mean_loss(final[name], x, y) for name in runners}
        for name in runners:
            timed = statistics.median(seconds[name][1:])
            rows.append(
                {
                    "batch_size": batch_size,
                    "trainer": name,
                    "examples_per_second": n_examples / timed,
                    "epoch_seconds": timed,
                    "final_loss": losses[name],
                }
            )
            if progress is not None:
                progress(f"batch {batch_size:>5} {name:>10}: {n_examples / timed:12.0f} examples/s")
        reference = losses["numpy-loop"]
        speedups[str(batch_size)] = {
            **{
                f"over_{name}": median_interval(
                    paired_ratios(seconds[name][1:], seconds["netcheck"][1:])
                )
                for name in runners
                if name != "netcheck"
            },
            "losses_agree": all(
                abs(loss - reference) <= LOSS_RTOL * abs(reference) for loss in losses.values()
            ),
        }
    return {"rows": rows, "speedups": speedups}


def run_benchmark(
    n_examples: int = N_EXAMPLES,
    epochs: int = 7,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seed: int = 0,
    rounds: int = 15,
    nielsen_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Both measurements, with the machine they ran on; a JSON-able record.

    Returns:
        ``{"config", "environment", "overhead", "throughput", "nielsen"}``;
        ``environment["load_average"]`` is read before and after (``load_average_after``).
        ``nielsen`` is ``None``, or the file's name and SHA-256 and whether its ``print``
        statements were rewritten (see ``load_nielsen``).
    """
    nielsen_module, nielsen_record = None, None
    if nielsen_path is not None:
        nielsen_module = load_nielsen(nielsen_path)
        nielsen_record = _nielsen_record(Path(nielsen_path))
    env = environment()
    overhead = measure_overhead(n_examples, rounds, seed)
    if progress is not None:
        progress(format_overhead(overhead))
    throughput = measure_throughput(
        n_examples, epochs, batch_sizes, seed, nielsen=nielsen_module, progress=progress
    )
    env["load_average_after"] = environment()["load_average"]
    return {
        "config": {
            "sizes": list(SIZES),
            "activation": "sigmoid",
            "loss": "squared_error",
            "optimizer": f"sgd({LEARNING_RATE})",
            "n_examples": n_examples,
            "epochs": epochs,
            "timed_epochs": epochs - 1,
            "batch_sizes": list(batch_sizes),
            "loss_rtol": LOSS_RTOL,
            "confidence": CONFIDENCE,
        },
        "environment": env,
        "nielsen": nielsen_record,
        "overhead": overhead,
        "throughput": throughput,
    }


def _nielsen_record(path: Path) -> dict[str, Any]:
    return {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "print_statements_rewritten": _compile_nielsen(path)[1],
    }


# ----- rendering (reads a record, runs nothing) ------------------------------------------------


def _interval_text(interval: dict[str, float], digits: int = 2) -> str:
    return (
        f"{interval['median']:.{digits}f} ({interval['level']:.0%} CI "
        f"{interval['low']:.{digits}f}-{interval['high']:.{digits}f})"
    )


def format_overhead(overhead: dict[str, Any]) -> str:
    """The overhead measurement as lines of text."""
    config = overhead["config"]
    lines = [
        f"overhead, batch {config['batch_size']}, {config['epochs']} epochs, "
        f"{config['n_examples']} examples, {config['rounds']} rounds:"
    ]
    for name, values in overhead["seconds"].items():
        lines.append(f"  {name:>16}: {statistics.median(values) * 1e3:8.1f} ms (median)")
    for goal in overhead["goals"]:
        lines.append(
            f"  {goal['name']}: {_interval_text(goal)}, goal <= {goal['target']}: {goal['met']}"
        )
    return "\n".join(lines)


def format_table(record: dict[str, Any]) -> str:
    """The benchmark record as plain text (reads the record, runs nothing)."""
    config, env = record["config"], record["environment"]
    lines = [
        f"{config['n_examples']} examples of MNIST's shape, sizes 784-30-10 sigmoid, "
        f"squared error, sgd(3.0), on {env['device']} ({env['cpu_count']} CPUs, load average "
        f"{env['load_average']:.2f} before, {env['load_average_after']:.2f} after)",
        format_overhead(record["overhead"]),
        f"{'batch':>6} {'trainer':>11} {'examples/s':>12} {'s/epoch':>9} {'final loss':>11}",
    ]
    for row in record["throughput"]["rows"]:
        lines.append(
            f"{row['batch_size']:>6} {row['trainer']:>11} {row['examples_per_second']:>12.0f} "
            f"{row['epoch_seconds']:>9.4f} {row['final_loss']:>11.5f}"
        )
    for batch, speedup in record["throughput"]["speedups"].items():
        others = [name for name in speedup if name.startswith("over_")]
        lines.append(
            f"batch {batch}: netcheck is "
            + ", ".join(f"{_interval_text(speedup[name], 1)}x {name[5:]}" for name in others)
            + f"; final losses agree within {config['loss_rtol']:g}: {speedup['losses_agree']}"
        )
    return "\n".join(lines)


_VERDICTS = {
    "yes": "met",
    "no": "missed",
    "unresolved": "not resolved at this noise, the interval straddles it",
}


def readme_section(record: dict[str, Any], source: str) -> str:
    """The README's paragraph and table of trainer figures, made from a record.

    Args:
        record: a ``run_benchmark`` record (the committed artifact).
        source: the artifact's path, as the README names it.
    """
    config, env, overhead = record["config"], record["environment"], record["overhead"]
    ratios = {goal["name"]: goal for goal in overhead["goals"]}
    trainers = ["netcheck", "jax-loop", "numpy-loop"] + (["nielsen"] if record["nielsen"] else [])
    labels = {
        "netcheck": "netcheck (`nc.train`)",
        "jax-loop": "typical JAX loop",
        "numpy-loop": "Nielsen-style numpy loop",
        "nielsen": "Nielsen's `network.py`",
    }
    rates = {
        (row["batch_size"], row["trainer"]): row["examples_per_second"]
        for row in record["throughput"]["rows"]
    }
    header = "| batch | " + " | ".join(labels[name] for name in trainers)
    header += " | netcheck / JAX loop | netcheck / numpy loop |"
    nielsen = record["nielsen"]
    lines = [
        f"Trainer, from `{source}` (made by `{record['command']}` on this project's "
        f"{env['cpu_count']}-core CPU, load average {env['load_average']:.1f} to "
        f"{env['load_average_after']:.1f} while it ran, shared with other work; ratios are "
        "medians of paired, interleaved timings, with distribution-free confidence intervals "
        f"of at least {config['confidence']:.0%}). Nielsen's MNIST configuration (784-30-10, "
        f"sigmoid, squared error, sgd 3.0) on {config['n_examples']:,} synthetic "
        "MNIST-shaped examples, examples per second"
        + (f" (Nielsen's own file: SHA-256 {nielsen['sha256'][:12]}...):" if nielsen else ":"),
        "",
        header,
        "|" + " --- |" * (len(trainers) + 3),
    ]
    for batch in config["batch_sizes"]:
        speedup = record["throughput"]["speedups"][str(batch)]
        cells = [f"{rates[(batch, name)]:,.0f}" for name in trainers]
        cells += [
            _interval_text(speedup["over_jax-loop"], 1).replace(" (", "x (", 1),
            _interval_text(speedup["over_numpy-loop"], 1).replace(" (", "x (", 1),
        ]
        lines.append(f"| {batch} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"`nc.train` itself, at {overhead['config']['epochs']} epochs of batch "
        f"{overhead['config']['batch_size']}, costs "
        f"{_interval_text(ratios['train_over_epochs'])} times its compiled epochs (goal "
        f"≤ {GOALS['train_over_epochs']}: {_VERDICTS[ratios['train_over_epochs']['met']]}), "
        f"and the compiled epoch {_interval_text(ratios['epochs_over_scan'])} times a minimal "
        f"hand-written `lax.scan` SGD loop (goal ≤ {GOALS['epochs_over_scan']}: "
        f"{_VERDICTS[ratios['epochs_over_scan']['met']]}).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line::

    python -m netcheck.bench.trainer_speed [--nielsen PATH] [--json PATH] [--readme-from PATH]
    """
    parser = argparse.ArgumentParser(
        prog="python -m netcheck.bench.trainer_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n-examples", type=int, default=N_EXAMPLES, help="training rows")
    parser.add_argument(
        "--epochs", type=int, default=7, help="epochs per trainer, the first a warm-up (7)"
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES), help="minibatch sizes"
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="rounds of the overhead measurement (15)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--nielsen",
        metavar="PATH",
        help="Nielsen's network.py (not part of netcheck), timed beside the others",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the record as JSON")
    parser.add_argument(
        "--readme-from",
        metavar="PATH",
        help="print the README's trainer section made from this record; run nothing",
    )
    args = parser.parse_args(argv)
    if args.readme_from is not None:
        record = json.loads(Path(args.readme_from).read_text(encoding="utf-8"))
        print(readme_section(record, args.readme_from))
        return 0
    record = {
        "command": shlex.join(
            [
                "python",
                "-m",
                "netcheck.bench.trainer_speed",
                *(sys.argv[1:] if argv is None else argv),
            ]
        ),
        **run_benchmark(
            args.n_examples,
            args.epochs,
            args.batch_sizes,
            args.seed,
            args.rounds,
            args.nielsen,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        ),
    }
    print(format_table(record))
    if args.json:
        write_json_atomic(args.json, record)
    agree = all(s["losses_agree"] for s in record["throughput"]["speedups"].values())
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
