"""How fast the trainer is, against what people would write instead.

The configuration of Nielsen's MNIST example (``network.py``, chapter 1 of *Neural Networks
and Deep Learning*): sizes 784-30-10, sigmoid everywhere, the quadratic cost ``½‖ŷ - y‖²``,
plain SGD with learning rate 3.0 and minibatches of 10, on synthetic data of MNIST's shape
(sparse strokes in ``[0, 1]`` around 10 class patterns, see :func:`synthetic_mnist`). Four
trainers run side by side in one process, from the same initial parameters and over the same
minibatch orders:

- ``netcheck``: :func:`netcheck.trainer.fit` (epoch by epoch through
  :func:`netcheck.trainer.iterate_epochs`), one compiled program per epoch, which also
  evaluates the loss and accuracy of the whole training set after each epoch;
- ``nc-epoch``: the compiled epoch alone (:func:`netcheck.trainer.make_epoch_fn`), without
  that evaluation, as a JAX user composing the pieces would run it;
- ``numpy-loop``: a per-example numpy loop in the style of Nielsen's ``network.py`` (float64,
  column vectors, ``backprop`` per example, summed over the minibatch);
- ``jax-loop``: the typical JAX loop, a Python ``for`` over minibatches sliced on the host,
  each calling a jitted ``jax.value_and_grad`` + optax step.

Each trainer runs ``epochs`` epochs, interleaved round by round (every trainer's k-th epoch
back to back) so that all of them share the load of a busy machine; the first round is a
warm-up (compilation). Rates are ``n / median(seconds per later epoch)``; speedups are the
median over rounds of the paired ratio of epoch times. The final losses (mean loss on the whole
training set) must agree within ``LOSS_RTOL``. Run ``python -m netcheck.train_bench``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from netcheck._io import write_json_atomic
from netcheck.network import Network, Params
from netcheck.trainer import init_state, iterate_epochs, make_epoch_fn

SIZES = (784, 30, 10)
LEARNING_RATE = 3.0
BATCH_SIZES = (10, 128, 1024)
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

    Mirrors :func:`netcheck.trainer.fit`: each epoch splits the key and shuffles with the
    second half.
    """
    orders = []
    for _ in range(epochs):
        key, shuffle_key = jax.random.split(key)
        orders.append(np.asarray(jax.random.permutation(shuffle_key, n_examples)))
    return orders


# ----- the four trainers -------------------------------------------------------------------
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
    """netcheck's trainer, :func:`netcheck.trainer.fit` epoch by epoch (``iterate_epochs``).

    Its epochs include the evaluation of the whole training set after each epoch; the
    one-time input checks fall in the first (warm-up) epoch.
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
    """netcheck's compiled epoch alone (:func:`netcheck.trainer.make_epoch_fn`), no evaluation."""
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


def numpy_mean_loss(params: NumpyParams, x: np.ndarray, y: np.ndarray) -> float:
    """``1/n Σ_i ½‖ŷ_i - y_i‖²`` in float64 numpy, the common yardstick of the final losses."""
    a = x.astype(np.float64)
    for w, b in params:
        a = _sigmoid(a @ np.asarray(w, np.float64).T + np.asarray(b, np.float64))
    return float(np.mean(0.5 * np.sum((a - y) ** 2, axis=1)))


def _as_numpy(params: Params) -> NumpyParams:
    return [(np.asarray(layer["W"]), np.asarray(layer["b"])) for layer in params]


# ----- the benchmark -------------------------------------------------------------------------


def run_benchmark(
    n_examples: int = 60_000,
    epochs: int = 4,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time the four trainers at each batch size, interleaved; return a JSON-able record.

    Args:
        n_examples: training rows of synthetic MNIST-shaped data.
        epochs: epochs per trainer, at least 2 (the first is the warm-up).
        batch_sizes: the minibatch sizes to time.
        seed: seeds the data, the initial parameters and the shuffles.
        progress: called with a line of text per trainer as each batch size finishes.

    Returns:
        ``{"config", "device", "rows", "speedups"}``; one row per (batch size, trainer) with
        ``examples_per_second``, ``epoch_seconds`` and ``final_loss``; ``speedups`` gives,
        per batch size, the median paired ratio of the loops' epoch times over netcheck's
        (``fit`` and the compiled epoch alone) and whether the final losses agree.
    """
    if epochs < 2:
        raise ValueError(f"epochs must be at least 2 (one warm-up, one timed), got {epochs}")
    x, y = synthetic_mnist(n_examples, seed)
    net = Network(SIZES, activation="sigmoid", output_activation="sigmoid", loss="squared_error")
    key_init, key_shuffle = jax.random.split(jax.random.key(seed))
    params = net.init(key_init, scheme="nielsen")
    orders = epoch_orders(key_shuffle, n_examples, epochs)
    rows, speedups = [], {}
    for batch_size in batch_sizes:
        runners = {
            "netcheck": netcheck_fit(net, params, x, y, key_shuffle, batch_size, epochs),
            "nc-epoch": netcheck_epoch(net, params, x, y, key_shuffle, batch_size, epochs),
            "jax-loop": jax_loop(net, params, x, y, orders, batch_size),
            "numpy-loop": numpy_loop(params, x, y, orders, batch_size),
        }
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
            "over_numpy_loop": _paired_speedup(seconds["numpy-loop"], seconds["netcheck"]),
            "over_jax_loop": _paired_speedup(seconds["jax-loop"], seconds["netcheck"]),
            "epoch_over_numpy_loop": _paired_speedup(seconds["numpy-loop"], seconds["nc-epoch"]),
            "epoch_over_jax_loop": _paired_speedup(seconds["jax-loop"], seconds["nc-epoch"]),
            "losses_agree": all(
                abs(loss - reference) <= LOSS_RTOL * abs(reference) for loss in losses.values()
            ),
        }
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
        },
        "device": str(jax.devices()[0]),
        "rows": rows,
        "speedups": speedups,
    }


def _paired_speedup(baseline: list[float], candidate: list[float]) -> float:
    """The median over the timed rounds of ``baseline seconds / candidate seconds``.

    Both epochs of a round ran back to back, so they saw the same load on a shared machine;
    their ratio is steadier than a ratio of medians taken at different times.
    """
    return statistics.median(b / c for b, c in zip(baseline[1:], candidate[1:], strict=True))


def format_table(record: dict[str, Any]) -> str:
    """The benchmark record as a plain-text table (reads the record, runs nothing)."""
    lines = [
        f"{record['config']['n_examples']} examples of MNIST's shape, sizes 784-30-10 sigmoid, "
        f"squared error, sgd(3.0), on {record['device']}",
        f"{'batch':>6} {'trainer':>11} {'examples/s':>12} {'s/epoch':>9} {'final loss':>11}",
    ]
    for row in record["rows"]:
        lines.append(
            f"{row['batch_size']:>6} {row['trainer']:>11} {row['examples_per_second']:>12.0f} "
            f"{row['epoch_seconds']:>9.3f} {row['final_loss']:>11.5f}"
        )
    for batch, speedup in record["speedups"].items():
        lines.append(
            f"batch {batch}: netcheck is {speedup['over_numpy_loop']:.1f}x the numpy loop and "
            f"{speedup['over_jax_loop']:.1f}x the JAX loop (the compiled epoch alone: "
            f"{speedup['epoch_over_numpy_loop']:.1f}x and {speedup['epoch_over_jax_loop']:.1f}x); "
            "final losses agree within "
            f"{record['config']['loss_rtol']:g}: {speedup['losses_agree']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m netcheck.train_bench [--n-examples N] [--epochs E] [--json PATH]``."""
    parser = argparse.ArgumentParser(
        prog="python -m netcheck.train_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--n-examples", type=int, default=60_000, help="training rows (MNIST: 60000)"
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trainer (first: warm-up)")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES), help="minibatch sizes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the record as JSON")
    args = parser.parse_args(argv)
    record = run_benchmark(
        args.n_examples,
        args.epochs,
        args.batch_sizes,
        args.seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(record))
    if args.json:
        write_json_atomic(args.json, record)
    return 0 if all(s["losses_agree"] for s in record["speedups"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
