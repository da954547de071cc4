"""The training benchmark's baselines compute what they claim; the record is well formed.

No timing is asserted: only that the Nielsen-style numpy loop and the typical JAX loop
train the same network the same way as float64 ``jax.grad`` SGD over the same orders.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from netcheck import train_bench
from netcheck.network import Network


def _tiny_problem():
    net = Network(train_bench.SIZES, "sigmoid", "sigmoid", "squared_error")
    x, y = train_bench.synthetic_mnist(30, seed=1)
    params = net.init(jax.random.key(0), scheme="nielsen")
    return net, params, x, y


def _reference_sgd(net, params, x, y, orders, batch_size):
    """Float64 ``jax.grad`` SGD at the benchmark's learning rate over the given orders."""
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    grad = jax.jit(jax.grad(net.mean_loss_unchecked))
    for order in orders:
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            grads = grad(
                params, jnp.asarray(x[rows], jnp.float64), jnp.asarray(y[rows], jnp.float64)
            )
            params = jax.tree.map(
                lambda p, g: p - train_bench.LEARNING_RATE * np.asarray(g), params, grads
            )
    return params


def test_synthetic_data_has_mnist_shape_and_statistics():
    x, y = train_bench.synthetic_mnist(2000)
    assert x.shape == (2000, 784) and y.shape == (2000, 10)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    assert 0.1 < x.mean() < 0.17  # MNIST's mean intensity is about 0.13


def test_the_numpy_loop_is_sgd_on_the_mean_loss(x64):
    net, params, x, y = _tiny_problem()
    orders = train_bench.epoch_orders(jax.random.key(3), 30, 2)
    epochs = list(train_bench.numpy_loop(params, x, y, orders, batch_size=7))
    assert len(epochs) == 2
    (_, after_one), (_, trained) = epochs
    expected = _reference_sgd(net, params, x, y, orders, batch_size=7)
    assert not np.allclose(after_one[0][0], trained[0][0])  # each epoch yields its own copy
    for (w, b), layer in zip(trained, expected, strict=True):
        np.testing.assert_allclose(w, layer["W"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, layer["b"], rtol=1e-9, atol=1e-12)


def test_the_jax_loop_and_netcheck_follow_the_same_orders():
    net, params, x, y = _tiny_problem()
    key = jax.random.key(3)
    orders = train_bench.epoch_orders(key, 30, 2)
    runners = [
        train_bench.jax_loop(net, params, x, y, orders, batch_size=7),
        train_bench.netcheck_fit(net, params, x, y, key, batch_size=7, epochs=2),
        train_bench.netcheck_epoch(net, params, x, y, key, batch_size=7, epochs=2),
    ]
    finals = []
    for runner in runners:
        next(runner)
        seconds, final = next(runner)
        assert seconds > 0
        finals.append(final)
    jax_loop, netcheck_fit, epochs_only = finals
    for run in (netcheck_fit, epochs_only):
        for (w, b), (w_ref, b_ref) in zip(run, jax_loop, strict=True):
            np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)


def test_numpy_mean_loss_matches_the_network():
    net, params, x, y = _tiny_problem()
    as_numpy = [(np.asarray(layer["W"]), np.asarray(layer["b"])) for layer in params]
    np.testing.assert_allclose(
        train_bench.numpy_mean_loss(as_numpy, x, y),
        float(net.mean_loss(params, x, y)),
        rtol=1e-5,
    )


def test_a_tiny_benchmark_record(tmp_path, capsys):
    code = train_bench.main(
        [
            "--n-examples",
            "40",
            "--epochs",
            "2",
            "--batch-sizes",
            "10",
            "--json",
            str(tmp_path / "bench.json"),
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "bench.json").read_text())
    assert {row["trainer"] for row in record["rows"]} == {
        "netcheck",
        "nc-epoch",
        "jax-loop",
        "numpy-loop",
    }
    assert record["speedups"]["10"]["losses_agree"]
    assert "batch 10: netcheck is" in capsys.readouterr().out
