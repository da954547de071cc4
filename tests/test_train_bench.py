"""The training benchmark's baselines compute what they claim; the record is well formed.

No timing is asserted: only that every contender (the Nielsen-style numpy loop, Nielsen's own
``network.py`` through a stand-in written here, the typical JAX loop, the minimal scan and
netcheck) trains the same network the same way as float64 ``jax.grad`` SGD over the same
orders, that the confidence intervals have the coverage they claim, and that the README's
trainer figures are the committed artifact's.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from netcheck.bench import trainer_speed
from netcheck.nn import Network

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = "reports/artifacts/trainer_speed.json"

# A stand-in for Nielsen's network.py, in its Python 2 style (print statements, xrange):
# the same per-example backprop summed over a minibatch, written for these tests.
NIELSEN_STAND_IN = textwrap.dedent(
    """
    import random

    import numpy as np


    class Network(object):

        def __init__(self, sizes):
            self.num_layers = len(sizes)
            self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
            self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

        def SGD(self, training_data, epochs, mini_batch_size, eta):
            n = len(training_data)
            for j in xrange(epochs):
                random.shuffle(training_data)
                for k in xrange(0, n, mini_batch_size):
                    self.update_mini_batch(training_data[k:k + mini_batch_size], eta)
                print "Epoch {0} complete".format(  # a statement over two lines
                    j)

        def update_mini_batch(self, mini_batch, eta):
            nabla_b = [np.zeros(b.shape) for b in self.biases]
            nabla_w = [np.zeros(w.shape) for w in self.weights]
            for x, y in mini_batch:
                delta_b, delta_w = self.backprop(x, y)
                nabla_b = [nb + db for nb, db in zip(nabla_b, delta_b)]
                nabla_w = [nw + dw for nw, dw in zip(nabla_w, delta_w)]
            self.weights = [w - (eta / len(mini_batch)) * nw
                            for w, nw in zip(self.weights, nabla_w)]
            self.biases = [b - (eta / len(mini_batch)) * nb
                           for b, nb in zip(self.biases, nabla_b)]

        def backprop(self, x, y):
            activation, activations, zs = x, [x], []
            for b, w in zip(self.biases, self.weights):
                z = np.dot(w, activation) + b
                zs.append(z)
                activation = sigmoid(z)
                activations.append(activation)
            delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
            nabla_b, nabla_w = [delta], [np.dot(delta, activations[-2].transpose())]
            for l in xrange(2, self.num_layers):
                delta = np.dot(self.weights[-l + 1].transpose(), delta) * sigmoid_prime(zs[-l])
                nabla_b.insert(0, delta)
                nabla_w.insert(0, np.dot(delta, activations[-l - 1].transpose()))
            return nabla_b, nabla_w


    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))


    def sigmoid_prime(z):
        return sigmoid(z) * (1 - sigmoid(z))
    """
)


def _tiny_problem():
    net = Network(trainer_speed.SIZES, "sigmoid", "sigmoid", "squared_error")
    x, y = trainer_speed.synthetic_mnist(30, seed=1)
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
                lambda p, g: p - trainer_speed.LEARNING_RATE * np.asarray(g), params, grads
            )
    return params


def test_synthetic_data_has_mnist_shape_and_statistics():
    x, y = trainer_speed.synthetic_mnist(2000)
    assert x.shape == (2000, 784) and y.shape == (2000, 10)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    assert 0.1 < x.mean() < 0.17  # MNIST's mean intensity is about 0.13


def test_the_numpy_loop_is_sgd_on_the_mean_loss(x64):
    net, params, x, y = _tiny_problem()
    orders = trainer_speed.epoch_orders(jax.random.key(3), 30, 2)
    epochs = list(trainer_speed.numpy_loop(params, x, y, orders, batch_size=7))
    assert len(epochs) == 2
    (_, after_one), (_, trained) = epochs
    expected = _reference_sgd(net, params, x, y, orders, batch_size=7)
    assert not np.allclose(after_one[0][0], trained[0][0])  # each epoch yields its own copy
    for (w, b), layer in zip(trained, expected, strict=True):
        np.testing.assert_allclose(w, layer["W"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, layer["b"], rtol=1e-9, atol=1e-12)


def test_the_jax_loops_and_netcheck_follow_the_same_orders():
    net, params, x, y = _tiny_problem()
    key = jax.random.key(3)
    orders = trainer_speed.epoch_orders(key, 30, 2)
    runners = [
        trainer_speed.jax_loop(net, params, x, y, orders, batch_size=7),
        trainer_speed.netcheck_fit(net, params, x, y, key, batch_size=7, epochs=2),
        trainer_speed.netcheck_epoch(net, params, x, y, key, batch_size=7, epochs=2),
        trainer_speed.scan_loop(net, params, x, y, key, batch_size=7, epochs=2),
    ]
    finals = []
    for runner in runners:
        next(runner)
        seconds, final = next(runner)
        assert seconds > 0
        finals.append(final)
    jax_loop, *others = finals
    assert not np.allclose(jax_loop[0][0], np.asarray(params[0]["W"]))  # it trained
    for run in others:
        for (w, b), (w_ref, b_ref) in zip(run, jax_loop, strict=True):
            np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)


def test_numpy_mean_loss_matches_the_network():
    net, params, x, y = _tiny_problem()
    as_numpy = [(np.asarray(layer["W"]), np.asarray(layer["b"])) for layer in params]
    np.testing.assert_allclose(
        trainer_speed.numpy_mean_loss(as_numpy, x, y),
        float(net.mean_loss(params, x, y)),
        rtol=1e-5,
    )


# ----- Nielsen's own network.py, loaded on Python 3 ---------------------------------------


def test_print_statements_become_calls_and_nothing_else_changes():
    source = textwrap.dedent(
        """
        print "a", b  # a comment (with a paren
        print("already a call")
        if x: print x; y = 1
        value = printer
        print "over", (
            "two lines")
        """
    )
    expected = textwrap.dedent(
        """
        print("a", b)  # a comment (with a paren
        print("already a call")
        if x: print x; y = 1
        value = printer
        print("over", (
            "two lines"))
        """
    )
    # A compound statement after "if x:" is left as it is: network.py has none.
    assert trainer_speed.print_statements_to_calls(source) == expected


def test_nielsens_python_2_file_loads_and_trains_like_sgd(tmp_path, capsys, x64):
    path = tmp_path / "network.py"
    path.write_text(NIELSEN_STAND_IN)
    with pytest.raises(SyntaxError):
        compile(NIELSEN_STAND_IN, "network.py", "exec")  # as written, Python 2 only
    module = trainer_speed.load_nielsen(path)
    assert path.read_text() == NIELSEN_STAND_IN  # the file is left untouched
    # The rewritten print and xrange run.
    tiny = module.Network([2, 3, 1])
    tiny.SGD([(np.ones((2, 1)), np.ones((1, 1)))] * 4, 2, 2, 0.1)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\n"

    net, params, x, y = _tiny_problem()
    orders = trainer_speed.epoch_orders(jax.random.key(3), 30, 2)
    epochs = list(trainer_speed.nielsen_loop(module, params, x, y, orders, batch_size=7))
    expected = _reference_sgd(net, params, x, y, orders, batch_size=7)
    for (w, b), layer in zip(epochs[-1][1], expected, strict=True):
        np.testing.assert_allclose(w, layer["W"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, layer["b"], rtol=1e-9, atol=1e-12)


def test_load_nielsen_refuses_what_is_not_network_py(tmp_path):
    (tmp_path / "other.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="no Network class with update_mini_batch"):
        trainer_speed.load_nielsen(tmp_path / "other.py")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trainer_speed.load_nielsen(tmp_path / "missing.py")


# ----- intervals and the overhead calls ---------------------------------------------------------


@pytest.mark.parametrize("n", [3, 6, 10, 15, 40])
def test_median_interval_has_the_binomial_coverage(n):
    values = list(np.random.default_rng(n).permutation(n) + 1.0)  # 1..n, shuffled
    interval = trainer_speed.median_interval(values)
    k = int(interval["low"])  # the k-th smallest of 1..n is k
    assert interval["high"] == n + 1 - k
    # Coverage of [v_(k), v_(n+1-k)]: P(k <= Binomial(n, 1/2) <= n - k), from scipy.
    coverage = stats.binom.cdf(n - k, n, 0.5) - stats.binom.cdf(k - 1, n, 0.5)
    assert interval["level"] == pytest.approx(coverage)
    narrower = stats.binom.cdf(n - k - 1, n, 0.5) - stats.binom.cdf(k, n, 0.5)
    if n >= 6:
        assert coverage >= 0.95 > narrower  # the narrowest interval that reaches 95%
    else:
        assert k == 1 and coverage < 0.95  # too few values: the full range, said so
    assert interval["median"] == pytest.approx((n + 1) / 2)


def test_the_overhead_calls_train_the_same_network(x64):
    net, params, x, y = _tiny_problem()
    key = jax.random.key(5)
    calls = trainer_speed.overhead_calls(net, params, x, y, key, batch_size=7, epochs=3)
    assert list(calls) == ["train", "compiled epochs", "minimal scan"]
    results = {name: call() for name, call in calls.items()}
    orders = trainer_speed.epoch_orders(key, 30, 3)
    expected = _reference_sgd(net, params, x, y, orders, batch_size=7)
    for name, trained in results.items():
        for got, layer in zip(trained, expected, strict=True):
            np.testing.assert_allclose(got["W"], layer["W"], rtol=1e-4, atol=1e-5, err_msg=name)
            np.testing.assert_allclose(got["b"], layer["b"], rtol=1e-4, atol=1e-5, err_msg=name)


# ----- the record, its command, and the README's figures ------------------------------------------


def test_a_tiny_benchmark_record(tmp_path, capsys):
    (tmp_path / "network.py").write_text(NIELSEN_STAND_IN)
    argv = ["--n-examples", "40", "--epochs", "2", "--batch-sizes", "10", "--rounds", "2"]
    argv += ["--nielsen", str(tmp_path / "network.py"), "--json", str(tmp_path / "bench.json")]
    assert trainer_speed.main(argv) == 0
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["command"].split() == ["python", "-m", "netcheck.bench.trainer_speed", *argv]
    rows = record["throughput"]["rows"]
    assert [row["trainer"] for row in rows] == [
        "netcheck",
        "nc-epoch",
        "scan",
        "jax-loop",
        "numpy-loop",
        "nielsen",
    ]
    speedups = record["throughput"]["speedups"]["10"]
    assert speedups["losses_agree"]
    assert set(speedups["over_nielsen"]) == {"median", "low", "high", "level", "n"}
    assert record["nielsen"]["print_statements_rewritten"] is True
    assert [goal["name"] for goal in record["overhead"]["goals"]] == [
        "train_over_epochs",
        "epochs_over_scan",
    ]
    assert all(len(v) == 2 for v in record["overhead"]["seconds"].values())
    assert "load_average_after" in record["environment"]
    assert "batch 10: netcheck is" in capsys.readouterr().out
    section = trainer_speed.readme_section(record, "bench.json")
    assert "Nielsen's `network.py`" in section and record["command"] in section


def test_the_committed_artifact_is_a_full_record():
    record = json.loads((ROOT / ARTIFACT).read_text())
    assert record["command"].startswith("python -m netcheck.bench.trainer_speed ")
    assert record["throughput"]["speedups"] and record["overhead"]["goals"]
