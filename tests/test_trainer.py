"""Tests of the trainer against independent references.

References: a plain Python loop of float64 ``jax.grad`` steps over the same minibatch order
(for the scanned epoch, its shuffle and its last partial batch); ``jax.grad`` trajectories
(for the manual gradient inside the trainer); a hand-computed numpy accuracy.
"""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import make_moons

import netcheck.backprop
import netcheck.trainer as train_module
from netcheck.network import Network
from netcheck.trainer import (
    DivergenceWarning,
    accuracy,
    fit,
    init_state,
    iterate_epochs,
    make_epoch_fn,
    make_train_step,
    train,
)


def _regression_data(n: int, n_in: int, n_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_in)).astype(np.float32)
    y = rng.uniform(0.0, 1.0, (n, n_out)).astype(np.float32)
    return x, y


def _reference_sgd(net, params, x, y, key, *, epochs, batch_size, lr, drop_last=False):
    """A plain Python loop of float64 ``jax.grad`` SGD steps, replaying the trainer's shuffles.

    The documented contract: each epoch splits the key and permutes the rows with the second
    half; minibatches are consecutive slices of that order, the last one of its true size.
    """
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    grad = jax.jit(jax.grad(net.mean_loss_unchecked))
    n = x.shape[0]
    for _ in range(epochs):
        key, shuffle_key = jax.random.split(key)
        order = np.asarray(jax.random.permutation(shuffle_key, n))
        stop = n - n % batch_size if drop_last else n
        for begin in range(0, stop, batch_size):
            rows = order[begin : begin + batch_size]
            grads = grad(params, jnp.asarray(x[rows]), jnp.asarray(y[rows]))
            params = jax.tree.map(lambda p, g: p - lr * np.asarray(g), params, grads)
    return params


def _assert_params_close(actual, expected, rtol, atol):
    for layer, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for name in want:
            np.testing.assert_allclose(
                np.asarray(got[name], np.float64),
                np.asarray(want[name], np.float64),
                rtol=rtol,
                atol=atol,
                err_msg=f"params[{layer}][{name!r}]",
            )


# ----- what training computes ------------------------------------------------------------


def test_two_moons_held_out_accuracy():
    x, labels = make_moons(700, noise=0.1, random_state=0)
    x, y = x.astype(np.float32), labels[:, None].astype(np.float32)
    net = Network((2, 16, 16, 1), "tanh", "sigmoid", "binary_cross_entropy")
    params = net.init(jax.random.key(1))
    _, history = train(
        net,
        params,
        (x[:500], y[:500]),
        optimizer=optax.sgd(0.5),
        epochs=25,
        batch_size=32,
        key=jax.random.key(0),
        validation=(x[500:], y[500:]),
    )
    assert history["validation_accuracy"][-1] >= 0.97
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["epoch"] == list(range(1, 26))
    json.dumps(history, allow_nan=False)  # JSON-able, no NaN


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last"),
    [(40, 8, False), (43, 8, False), (43, 8, True), (5, 8, False)],
    ids=["divides", "partial-last-batch", "drop-last", "batch-larger-than-data"],
)
def test_epochs_match_a_float64_python_loop(x64, n, batch_size, drop_last):
    net = Network((3, 5, 2), "tanh", "sigmoid", "squared_error")
    x, y = _regression_data(n, 3, 2)
    params = net.init(jax.random.key(2), dtype=jnp.float32)
    key = jax.random.key(7)
    trained, history = train(
        net,
        params,
        (x, y),
        optimizer=optax.sgd(0.3),
        epochs=3,
        batch_size=batch_size,
        key=key,
        drop_last=drop_last,
    )
    expected = _reference_sgd(
        net, params, x, y, key, epochs=3, batch_size=batch_size, lr=0.3, drop_last=drop_last
    )
    _assert_params_close(trained, expected, rtol=2e-5, atol=2e-6)
    # The history's train loss is the mean loss of the whole training set after each epoch.
    final_loss = float(
        net.mean_loss_unchecked(expected, jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
    )
    np.testing.assert_allclose(history["train_loss"][-1], final_loss, rtol=1e-5)


def test_manual_and_autodiff_trajectories_agree_step_by_step():
    net = Network((4, 8, 8, 3), "sigmoid", "softmax", "softmax_cross_entropy")
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((64, 4)), jnp.float32)
    y = jnp.asarray(np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)])
    optimizer = optax.sgd(0.5)
    params = net.init(jax.random.key(4))
    steps = {grad: make_train_step(net, optimizer, grad=grad) for grad in ("manual", "autodiff")}
    states = {
        grad: init_state(jax.tree.map(jnp.copy, params), optimizer, jax.random.key(0))
        for grad in steps
    }
    for step in range(20):
        rows = slice(8 * (step % 8), 8 * (step % 8) + 8)
        losses = {}
        for grad, step_fn in steps.items():
            states[grad], losses[grad] = step_fn(states[grad], x[rows], y[rows])
        np.testing.assert_allclose(losses["manual"], losses["autodiff"], rtol=1e-5)
        _assert_params_close(
            states["manual"].params, states["autodiff"].params, rtol=1e-5, atol=1e-6
        )
    # They moved: the comparison is not between two unchanged copies.
    assert not np.allclose(states["manual"].params[0]["W"], params[0]["W"])


def test_train_manual_and_autodiff_histories_agree():
    net = Network((3, 6, 1), "relu", "sigmoid", "binary_cross_entropy")
    x, _ = _regression_data(50, 3, 1)
    y = (x[:, :1] > 0).astype(np.float32)
    params = net.init(jax.random.key(5))
    runs = {
        grad: train(
            net,
            params,
            (x, y),
            optimizer=optax.adam(0.01),
            epochs=4,
            batch_size=7,
            key=jax.random.key(1),
            grad=grad,
        )
        for grad in ("manual", "autodiff")
    }
    _assert_params_close(runs["manual"][0], runs["autodiff"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        runs["manual"][1]["train_loss"], runs["autodiff"][1]["train_loss"], rtol=1e-5
    )


def test_train_does_not_consume_the_callers_params():
    net = Network((2, 3, 1))
    params = net.init(jax.random.key(0))
    before = np.asarray(params[0]["W"]).copy()
    x, y = _regression_data(10, 2, 1)
    train(net, params, (x, y), epochs=1, batch_size=4, key=jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(params[0]["W"]), before)


@pytest.mark.parametrize("n_out", [1, 3], ids=["binary", "multiclass"])
def test_accuracy_matches_numpy(n_out):
    net = Network((2, n_out), output_activation="sigmoid")
    rng = np.random.default_rng(0)
    y_hat = rng.uniform(size=(50, n_out)).astype(np.float32)
    if n_out == 1:
        y = rng.integers(0, 2, (50, 1)).astype(np.float32)
        expected = np.mean((y_hat[:, 0] >= 0.5) == (y[:, 0] == 1))
    else:
        labels = rng.integers(0, n_out, 50)
        y = np.eye(n_out, dtype=np.float32)[labels]
        expected = np.mean(np.argmax(y_hat, axis=1) == labels)
    assert float(accuracy(net, jnp.asarray(y_hat), jnp.asarray(y))) == pytest.approx(expected)


# ----- compiled once ----------------------------------------------------------------------


def test_the_epoch_is_traced_once_across_epochs(monkeypatch):
    traces = []
    original = train_module._epoch

    def counting_epoch(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "_epoch", counting_epoch)
    net = Network((2, 4, 1))
    x, y = _regression_data(30, 2, 1)
    _, history = train(
        net,
        net.init(jax.random.key(0)),
        (x, y),
        epochs=4,
        batch_size=7,
        key=jax.random.key(0),
        validation=(x[:5], y[:5]),
    )
    assert len(history["epoch"]) == 4
    assert len(traces) == 1


def test_make_epoch_fn_and_train_step_compile_once():
    net = Network((2, 4, 1))
    optimizer = optax.sgd(0.1)
    x, y = (jnp.asarray(a) for a in _regression_data(30, 2, 1))
    epoch = make_epoch_fn(net, optimizer, n_examples=30, batch_size=7)
    step = make_train_step(net, optimizer)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    for _ in range(3):
        state, running_loss, finite = epoch(state, x, y)
        state, loss = step(state, x[:7], y[:7])
    assert bool(finite) and np.isfinite(float(running_loss)) and np.isfinite(float(loss))
    assert int(state.epoch) == 3
    assert epoch._cache_size() == 1
    assert step._cache_size() == 1


# ----- the divergence guard ---------------------------------------------------------------


def test_divergence_stops_and_returns_the_last_finite_params():
    # A linear network with a step beyond 2/λ_max: the loss grows geometrically to Inf/NaN.
    net = Network((3, 4, 1), "identity", "identity", "squared_error")
    x, y = _regression_data(40, 3, 1)
    params = net.init(jax.random.key(0))
    kwargs = dict(optimizer=optax.sgd(1.5), batch_size=8, key=jax.random.key(3))
    with pytest.warns(DivergenceWarning, match=r"diverged in epoch (\d+)") as record:
        trained, history = train(net, params, (x, y), epochs=50, **kwargs)
    finite_epochs = len(history["epoch"])
    assert 0 < finite_epochs < 50
    message = str(record[0].message)
    assert f"epoch {finite_epochs + 1}" in message
    assert history["stopped"] == message
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(trained))
    # The returned parameters are exactly those after the last finite epoch.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected, _ = train(net, params, (x, y), epochs=finite_epochs, **kwargs)
    _assert_params_close(trained, expected, rtol=0, atol=0)


# ----- refusing bad input up front ------------------------------------------------------


def _bad_input_cases():
    net_bce = Network((2, 3, 1), "tanh", "sigmoid", "binary_cross_entropy")
    net_ce = Network((2, 3, 3), "tanh", "softmax", "softmax_cross_entropy")
    x = np.zeros((6, 2), np.float32)
    y01 = np.zeros((6, 1), np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    nan_x = x.copy()
    nan_x[2, 1] = np.nan
    inf_y = y01.copy()
    inf_y[0, 0] = np.inf
    doubled = one_hot.copy()
    doubled[4] = [1, 1, 0]
    return [
        ("nan-x", net_bce, (nan_x, y01), {}, ValueError, "non-finite"),
        ("inf-y", net_bce, (x, inf_y), {}, ValueError, "non-finite"),
        ("bce-target-above-1", net_bce, (x, y01 + 1.5), {}, ValueError, r"in \[0, 1\]"),
        ("bce-target-below-0", net_bce, (x, y01 - 1), {}, ValueError, r"in \[0, 1\]"),
        ("one-hot-row-sums-2", net_ce, (x, doubled), {}, ValueError, "row 4 sums to 2"),
        ("batch-size-0", net_bce, (x, y01), {"batch_size": 0}, ValueError, "batch_size"),
        ("batch-size-float", net_bce, (x, y01), {"batch_size": 2.5}, TypeError, "batch_size"),
        ("epochs-0", net_bce, (x, y01), {"epochs": 0}, ValueError, "epochs"),
        ("empty", net_bce, (x[:0], y01[:0]), {}, ValueError, "empty"),
        ("mismatched-lengths", net_bce, (x, y01[:4]), {}, ValueError, "6 rows, y has 4"),
        ("wrong-width", net_bce, (x, one_hot), {}, ValueError, "y must have shape"),
        ("unknown-grad", net_bce, (x, y01), {"grad": "numeric"}, ValueError, "grad must be"),
        ("not-a-pair", net_bce, x, {}, TypeError, "pair"),
        ("bad-optimizer", net_bce, (x, y01), {"optimizer": "sgd"}, TypeError, "optax"),
        ("bad-key", net_bce, (x, y01), {"key": 3}, TypeError, "key"),
        ("check-every-0", net_bce, (x, y01), {"check_every": 0}, ValueError, "check_every"),
        (
            "drop-last-empties",
            net_bce,
            (x, y01),
            {"drop_last": True, "batch_size": 7},
            ValueError,
            "no minibatch",
        ),
        (
            "bad-validation",
            net_bce,
            (x, y01),
            {"validation": (x, y01 + 2)},
            ValueError,
            r"validation: .*\[0, 1\]",
        ),
        ("bad-mesh", net_bce, (x, y01), {"mesh": "cpu"}, TypeError, "Mesh"),
    ]


@pytest.mark.parametrize(
    ("net", "data", "kwargs", "error", "match"),
    [case[1:] for case in _bad_input_cases()],
    ids=[case[0] for case in _bad_input_cases()],
)
def test_bad_input_is_refused_before_compiling(monkeypatch, net, data, kwargs, error, match):
    def no_tracing(*args, **kw):
        raise AssertionError("the epoch was traced before the input was checked")

    monkeypatch.setattr(train_module, "_epoch", no_tracing)
    params = net.init(jax.random.key(0))
    with pytest.raises(error, match=match):
        train(net, params, data, **{"epochs": 2, "batch_size": 2, **kwargs})


def test_probability_targets_that_sum_to_one_are_accepted():
    net = Network((2, 3), "tanh", "softmax", "softmax_cross_entropy")
    x = np.zeros((4, 2), np.float32)
    y = np.full((4, 3), 1 / 3, np.float32)
    _, history = train(
        net, net.init(jax.random.key(0)), (x, y), epochs=1, batch_size=2, key=jax.random.key(0)
    )
    assert len(history["train_loss"]) == 1


def test_fit_continues_a_history():
    net = Network((2, 3, 1))
    x, y = _regression_data(12, 2, 1)
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    state, history = fit(net, state, (x, y), optimizer=optimizer, epochs=2, batch_size=5)
    state, history = fit(
        net, state, (x, y), optimizer=optimizer, epochs=1, batch_size=5, history=history
    )
    assert history["epoch"] == [1, 2, 3]
    assert int(state.epoch) == 3


# ----- check_every: the verifier during training --------------------------------------------


def test_check_every_records_verdicts(monkeypatch):
    net = Network((3, 5, 1), "tanh", "sigmoid", "binary_cross_entropy")
    x, _ = _regression_data(30, 3, 1)
    y = (x[:, :1] > 0).astype(np.float32)
    kwargs = dict(optimizer=optax.sgd(0.5), epochs=3, batch_size=8, key=jax.random.key(0))
    params = net.init(jax.random.key(1))
    _, history = train(net, params, (x, y), check_every=2, **kwargs)
    assert [check["epoch"] for check in history["checks"]] == [2]
    assert all(check["ok"] and check["verdict"]["ok"] for check in history["checks"])
    json.dumps(history, allow_nan=False)

    # A manual gradient 10% too large (what the verifier receives) is caught.
    correct = netcheck.backprop.manual_grad_jit
    monkeypatch.setattr(
        netcheck.backprop,
        "manual_grad_jit",
        lambda *args: jax.tree.map(lambda g: 1.1 * g, correct(*args)),
    )
    _, history = train(net, params, (x, y), check_every=2, **kwargs)
    assert [check["ok"] for check in history["checks"]] == [False]


def test_donating_steps_never_delete_the_callers_arrays():
    net = Network((2, 3, 1))
    optimizer = optax.sgd(0.1)
    params, key = net.init(jax.random.key(0)), jax.random.key(1)
    x, y = (jnp.asarray(a) for a in _regression_data(10, 2, 1))
    epoch = make_epoch_fn(net, optimizer, n_examples=10, batch_size=4)
    step = make_train_step(net, optimizer)
    epoch(init_state(params, optimizer, key), x, y)
    step(init_state(params, optimizer, key), x, y)
    # Still alive: reading them raises if a donation deleted them.
    assert np.isfinite(np.asarray(params[0]["W"])).all()
    assert jax.random.key_data(key).shape == (2,)


def test_iterate_epochs_yields_after_every_epoch():
    net = Network((2, 3, 1))
    x, y = _regression_data(12, 2, 1)
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    run = iterate_epochs(net, state, (x, y), optimizer=optimizer, epochs=3, batch_size=5)
    seen = [(int(state.epoch), len(history["epoch"])) for state, history in run]
    assert seen == [(1, 1), (2, 2), (3, 3)]
    # The same epochs as fit's.
    fitted, history = fit(net, state, (x, y), optimizer=optimizer, epochs=3, batch_size=5)
    assert history["epoch"] == [1, 2, 3] and int(fitted.epoch) == 3
