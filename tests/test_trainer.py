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

import netcheck.nn.backprop
import netcheck.training.trainer as train_module
from netcheck.nn import Network
from netcheck.training.trainer import (
    DivergenceWarning,
    accuracy,
    check_data,
    evaluate_on,
    fit,
    history_through,
    init_state,
    iterate_epochs,
    make_epoch_fn,
    make_train_step,
    new_history,
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
    Returns the parameters and, per epoch, the running loss: the mean over the epoch's
    examples of the minibatch losses before each step, weighted by batch size.
    """
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), params)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    value_and_grad = jax.jit(jax.value_and_grad(net.mean_loss_unchecked))
    n = x.shape[0]
    running_losses = []
    for _ in range(epochs):
        key, shuffle_key = jax.random.split(key)
        order = np.asarray(jax.random.permutation(shuffle_key, n))
        stop = n - n % batch_size if drop_last else n
        total = 0.0
        for begin in range(0, stop, batch_size):
            rows = order[begin : begin + batch_size]
            loss, grads = value_and_grad(params, jnp.asarray(x[rows]), jnp.asarray(y[rows]))
            total += float(loss) * len(rows)
            params = jax.tree.map(lambda p, g: p - lr * np.asarray(g), params, grads)
        running_losses.append(total / stop)
    return params, running_losses


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
        eval_every=5,
    )
    assert history["validation_accuracy"][-1] >= 0.97
    assert history["epoch"] == list(range(1, 26))
    assert history["running_loss"][-1] < history["running_loss"][0]
    # The whole training set is evaluated only when asked: after epochs 5, 10, ..., 25.
    assert history["eval_epoch"] == [5, 10, 15, 20, 25]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert len(history["train_accuracy"]) == 5 and len(history["validation_loss"]) == 25
    json.dumps(history, allow_nan=False)  # JSON-able, no NaN


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last"),
    [(40, 8, False), (43, 8, False), (43, 8, True), (5, 8, False), (70, 32, False), (70, 32, True)],
    ids=[
        "divides",
        "partial-last-batch",
        "drop-last",
        "batch-larger-than-data",
        "gathered-per-step",  # batch_size >= GATHER_EPOCH_BELOW
        "gathered-per-step-drop-last",
    ],
)
def test_epochs_match_a_float64_python_loop(x64, n, batch_size, drop_last):
    assert (batch_size >= train_module.GATHER_EPOCH_BELOW) == (batch_size == 32)
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
        eval_every=3,
    )
    expected, running_losses = _reference_sgd(
        net, params, x, y, key, epochs=3, batch_size=batch_size, lr=0.3, drop_last=drop_last
    )
    _assert_params_close(trained, expected, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(history["running_loss"], running_losses, rtol=2e-5)
    # With eval_every=3, the train loss is the mean loss of the whole training set after
    # epoch 3.
    final_loss = float(
        net.mean_loss_unchecked(expected, jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64))
    )
    assert history["eval_epoch"] == [3]
    np.testing.assert_allclose(history["train_loss"], [final_loss], rtol=1e-5)


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
        runs["manual"][1]["running_loss"], runs["autodiff"][1]["running_loss"], rtol=1e-5
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


def test_divergence_never_hands_a_non_finite_state_to_on_save():
    net = Network((3, 4, 1), "identity", "identity", "squared_error")
    x, y = _regression_data(40, 3, 1)
    saved = []

    def on_save(state, history):
        arrays = jax.tree.map(np.asarray, (state.params, state.opt_state))
        saved.append((int(state.epoch), arrays, history["stopped"]))

    with pytest.warns(DivergenceWarning):
        trained, history = train(
            net,
            net.init(jax.random.key(0)),
            (x, y),
            optimizer=optax.sgd(1.5),
            epochs=50,
            batch_size=8,
            key=jax.random.key(3),
            on_save=on_save,
        )
    # Saved once, at the stop, with the last finite state and the reason.
    assert [(epoch, stopped) for epoch, _, stopped in saved] == [
        (len(history["epoch"]), history["stopped"])
    ]
    _, (params, opt_state), _ = saved[0]
    for leaf in jax.tree.leaves((params, opt_state)):
        assert np.all(np.isfinite(leaf))
    _assert_params_close(params, trained, rtol=0, atol=0)


def _overflowing_state_optimizer():
    """An optimizer whose state overflows to Inf while the parameters never move."""

    def init(params):
        return {"accumulated": jnp.ones((), jnp.float32)}

    def update(grads, state, params=None):
        zeros = jax.tree.map(jnp.zeros_like, grads)
        return zeros, {"accumulated": state["accumulated"] * jnp.float32(1e30)}

    return optax.GradientTransformation(init, update)


def test_a_non_finite_optimizer_state_trips_the_guard():
    net = Network((2, 3, 1))
    x, y = _regression_data(8, 2, 1)
    optimizer = _overflowing_state_optimizer()
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    # 1e30 per step: finite after epoch 1 (one step: 1e30), Inf during epoch 2.
    with pytest.warns(DivergenceWarning, match="diverged in epoch 2"):
        final, history = fit(net, state, (x, y), optimizer=optimizer, epochs=5, batch_size=8)
    assert history["epoch"] == [1]
    assert int(final.epoch) == 1
    np.testing.assert_array_equal(np.asarray(final.opt_state["accumulated"]), np.float32(1e30))


@pytest.mark.parametrize("where", ["params", "opt_state"])
def test_a_non_finite_starting_state_is_refused_naming_the_leaf(monkeypatch, where):
    monkeypatch.setattr(train_module, "_epoch", _no_tracing)
    net = Network((2, 3, 1))
    x, y = _regression_data(8, 2, 1)
    optimizer = optax.adam(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    if where == "params":
        state.params[1]["W"] = state.params[1]["W"].at[0, 2].set(jnp.nan)
        match = r"params/1/W \(W_2\) holds 1 non-finite value"
    else:
        mu = state.opt_state[0].mu
        mu[0]["b"] = mu[0]["b"].at[:].set(jnp.inf)
        match = r"opt_state/0/mu/0/b holds 3 non-finite value"
    with pytest.raises(ValueError, match=match):
        fit(net, state, (x, y), optimizer=optimizer, epochs=1)


# ----- refusing bad input up front ------------------------------------------------------


def _no_tracing(*args, **kwargs):
    raise AssertionError("the epoch was traced before the input was checked")


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
        (
            "integer-labels",
            net_ce,
            (x, np.array([0, 1, 2, 0, 1, 2])),
            {},
            ValueError,
            r"integer class labels .* values 0\.\.2.* jax\.nn\.one_hot\(y\.ravel\(\), 3\)",
        ),
        (
            "integer-label-column",
            net_ce,
            (x, np.array([[0.0], [1], [2], [2], [1], [0]], np.float32)),
            {},
            ValueError,
            r"integer class labels \(shape \(6, 1\)",
        ),
        ("1d-binary-targets", net_bce, (x, y01[:, 0]), {}, ValueError, r"y\.reshape\(-1, 1\)"),
        ("eval-every-0", net_bce, (x, y01), {"eval_every": 0}, ValueError, "eval_every"),
        ("save-every-0", net_bce, (x, y01), {"save_every": 0}, ValueError, "save_every"),
        (
            "save-every-without-on-save",
            net_bce,
            (x, y01),
            {"save_every": 2},
            ValueError,
            "save_every needs on_save",
        ),
        ("on-save-not-callable", net_bce, (x, y01), {"on_save": "ck.npz"}, TypeError, "on_save"),
    ]


@pytest.mark.parametrize(
    ("net", "data", "kwargs", "error", "match"),
    [case[1:] for case in _bad_input_cases()],
    ids=[case[0] for case in _bad_input_cases()],
)
def test_bad_input_is_refused_before_compiling(monkeypatch, net, data, kwargs, error, match):
    monkeypatch.setattr(train_module, "_epoch", _no_tracing)
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
    assert len(history["running_loss"]) == 1


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
    correct = netcheck.nn.backprop.manual_grad_jit
    monkeypatch.setattr(
        netcheck.nn.backprop,
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


# ----- checkpoint hook and interruptions ----------------------------------------------------


class _Saves:
    """An on_save hook that keeps host copies of what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, state, history):
        self.calls.append(
            {
                "epoch": int(state.epoch),
                "params": jax.tree.map(np.asarray, state.params),
                "history_epochs": list(history["epoch"]),
            }
        )

    @property
    def epochs(self):
        return [call["epoch"] for call in self.calls]


def _small_fit_problem():
    net = Network((2, 3, 1))
    x, y = _regression_data(12, 2, 1)
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(1))
    return net, x, y, optimizer, state


def test_save_every_saves_those_epochs_and_the_last_one():
    net, x, y, optimizer, state = _small_fit_problem()
    saves = _Saves()
    kwargs = dict(optimizer=optimizer, batch_size=5)
    fit(net, state, (x, y), epochs=5, save_every=2, on_save=saves, **kwargs)
    assert saves.epochs == [2, 4, 5]
    assert [call["history_epochs"] for call in saves.calls] == [
        [1, 2],
        [1, 2, 3, 4],
        [1, 2, 3, 4, 5],
    ]
    # What was saved at epoch 4 is exactly the state of a 4-epoch run.
    four, _ = fit(net, state, (x, y), epochs=4, **kwargs)
    _assert_params_close(saves.calls[1]["params"], four.params, rtol=0, atol=0)
    # Resumed runs count epochs from the checkpoint: 4 + 3 epochs save at 6 and 7.
    saves = _Saves()
    fit(net, four, (x, y), epochs=3, save_every=2, on_save=saves, **kwargs)
    assert saves.epochs == [6, 7]


def test_an_interrupt_in_on_epoch_saves_the_last_completed_epoch():
    net, x, y, optimizer, state = _small_fit_problem()
    saves = _Saves()

    def interrupt_after_third(state, history):
        if int(state.epoch) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            net,
            state,
            (x, y),
            optimizer=optimizer,
            epochs=10,
            batch_size=5,
            on_epoch=interrupt_after_third,
            on_save=saves,
        )
    assert saves.epochs == [3]
    assert saves.calls[0]["history_epochs"] == [1, 2, 3]
    three, _ = fit(net, state, (x, y), optimizer=optimizer, epochs=3, batch_size=5)
    _assert_params_close(saves.calls[0]["params"], three.params, rtol=0, atol=0)


def test_an_interrupt_during_an_epoch_saves_the_one_before(monkeypatch):
    net, x, y, optimizer, state = _small_fit_problem()
    saves = _Saves()
    original = train_module._record_epoch

    def interrupted_in_epoch_4(history, epoch, *args):
        original(history, epoch, *args)  # epoch 4 half recorded, not completed
        if epoch == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_record_epoch", interrupted_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        fit(net, state, (x, y), optimizer=optimizer, epochs=10, batch_size=5, on_save=saves)
    assert saves.epochs == [3]
    assert saves.calls[0]["history_epochs"] == [1, 2, 3]  # epoch 4's row left out


def test_an_interrupt_saves_nothing_new_when_nothing_new_finished(monkeypatch):
    net, x, y, optimizer, state = _small_fit_problem()
    saves = _Saves()

    def interrupted(history, epoch, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_record_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(net, state, (x, y), optimizer=optimizer, epochs=3, batch_size=5, on_save=saves)
    assert saves.epochs == []


def test_an_interrupt_right_after_a_periodic_save_does_not_save_twice():
    net, x, y, optimizer, state = _small_fit_problem()
    saves = _Saves()

    def interrupt_after_second(state, history):
        if int(state.epoch) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            net,
            state,
            (x, y),
            optimizer=optimizer,
            epochs=10,
            batch_size=5,
            on_epoch=interrupt_after_second,
            save_every=2,
            on_save=saves,
        )
    assert saves.epochs == [2]


def test_history_through_keeps_only_the_earlier_epochs():
    history = new_history()
    history.update(
        epoch=[1, 2, 3],
        running_loss=[0.3, 0.2, 0.1],
        validation_loss=[0.4, 0.3, 0.2],
        validation_accuracy=[0.5, 0.6, 0.7],
        eval_epoch=[2],
        train_loss=[0.25],
        train_accuracy=[0.9],
        checks=[{"epoch": 1, "ok": True}, {"epoch": 3, "ok": True}],
    )
    through = history_through(history, 2)
    assert through["epoch"] == [1, 2] and through["running_loss"] == [0.3, 0.2]
    assert through["validation_accuracy"] == [0.5, 0.6]
    assert through["eval_epoch"] == [2] and through["train_loss"] == [0.25]
    assert through["checks"] == [{"epoch": 1, "ok": True}]
    assert history["epoch"] == [1, 2, 3]  # a copy: the original is untouched


# ----- defaults, evaluation, checked data ------------------------------------------------------


def test_the_defaults_are_sgd_0_5_batches_of_32_and_30_epochs():
    net = Network((2, 4, 1))
    x, y = _regression_data(70, 2, 1)
    params = net.init(jax.random.key(0))
    default, default_history = train(net, params, (x, y), key=jax.random.key(1))
    explicit, _ = train(
        net,
        params,
        (x, y),
        optimizer=optax.sgd(0.5),
        epochs=30,
        batch_size=32,
        key=jax.random.key(1),
    )
    assert default_history["epoch"] == list(range(1, 31))
    _assert_params_close(default, explicit, rtol=0, atol=0)
    assert train_module.DEFAULT_LEARNING_RATE == 0.5
    assert (train_module.DEFAULT_BATCH_SIZE, train_module.DEFAULT_EPOCHS) == (32, 30)


def test_evaluate_on_matches_numpy():
    net = Network((3, 5, 1), "tanh", "sigmoid", "binary_cross_entropy")
    x, _ = _regression_data(20, 3, 1)
    y = (x[:, :1] > 0).astype(np.float32)
    params = net.init(jax.random.key(0))
    a = x.astype(np.float64)
    a = np.tanh(a @ np.asarray(params[0]["W"], np.float64).T + np.asarray(params[0]["b"]))
    z = a @ np.asarray(params[1]["W"], np.float64).T + np.asarray(params[1]["b"])
    p = 1 / (1 + np.exp(-z))
    expected_loss = np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)))
    expected_accuracy = np.mean((p >= 0.5) == (y >= 0.5))
    loss, accuracy_ = evaluate_on(net, params, (x, y))
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy_ == pytest.approx(expected_accuracy)


def test_checked_device_arrays_are_not_checked_again(monkeypatch):
    net, x, y, optimizer, state = _small_fit_problem()
    checks = []
    original = Network.check_batch

    def counting_check_batch(self, params, x, y):
        checks.append(1)
        return original(self, params, x, y)

    monkeypatch.setattr(Network, "check_batch", counting_check_batch)
    x_device, y_device = check_data(net, state.params, (x, y), "data")
    assert len(checks) == 1
    fit(net, state, (x_device, y_device), optimizer=optimizer, epochs=1, batch_size=5)
    evaluate_on(net, state.params, (x_device, y_device))
    assert len(checks) == 1  # the same (immutable) arrays: not checked again
    fit(net, state, (x, y), optimizer=optimizer, epochs=1, batch_size=5)
    assert len(checks) == 2  # numpy arrays may have changed: checked every time
    # Another loss asks other things of the targets: checked again.
    other = Network((2, 3, 1), "tanh", "sigmoid", "binary_cross_entropy")
    check_data(other, state.params, (x_device, y_device), "data")
    assert len(checks) == 3
