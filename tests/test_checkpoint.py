"""Checkpoints: exact round trips, bit-identical resumption, atomic writes, clear refusals."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import netcheck._io
from netcheck.nn import Network
from netcheck.training.checkpoint import (
    data_differences,
    fingerprint_arrays,
    load,
    read_metadata,
    save,
)
from netcheck.training.trainer import fit, init_state


def _problem():
    net = Network((3, 5, 2), "tanh", "softmax", "softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 23)]
    return net, x, y


def _leaves_equal(a, b) -> bool:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.asarray(p).dtype == np.asarray(q).dtype and np.array_equal(np.asarray(p), np.asarray(q))
        for p, q in zip(leaves_a, leaves_b, strict=True)
    )


def test_round_trip_is_exact(tmp_path):
    net, x, y = _problem()
    optimizer = optax.adam(0.01)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(42))
    state, history = fit(net, state, (x, y), optimizer=optimizer, epochs=2, batch_size=5)
    path = save(tmp_path / "run.npz", net, state, history)
    restored = load(path, optimizer)
    assert restored.net == net
    assert restored.history == history
    assert int(restored.state.epoch) == 2
    assert _leaves_equal(restored.state.params, state.params)
    assert _leaves_equal(restored.state.opt_state, state.opt_state)
    assert jax.tree.structure(restored.state.opt_state) == jax.tree.structure(state.opt_state)
    np.testing.assert_array_equal(
        jax.random.key_data(restored.state.key), jax.random.key_data(state.key)
    )


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, optimizer_name):
    net, x, y = _problem()
    optimizer = optax.sgd(0.5) if optimizer_name == "sgd" else optax.adam(0.05)
    params = net.init(jax.random.key(1))
    kwargs = dict(optimizer=optimizer, batch_size=5, validation=(x[:7], y[:7]))

    straight, straight_history = fit(
        net, init_state(params, optimizer, jax.random.key(9)), (x, y), epochs=4, **kwargs
    )
    first, history = fit(
        net, init_state(params, optimizer, jax.random.key(9)), (x, y), epochs=2, **kwargs
    )
    save(tmp_path / "half.npz", net, first, history)
    restored = load(tmp_path / "half.npz", optimizer)
    resumed, resumed_history = fit(
        restored.net, restored.state, (x, y), epochs=2, history=restored.history, **kwargs
    )
    assert _leaves_equal(resumed.params, straight.params)
    assert _leaves_equal(resumed.opt_state, straight.opt_state)
    assert resumed_history == straight_history
    # Not vacuous: training moved the parameters.
    assert not _leaves_equal(straight.params, params)


def test_a_crash_mid_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    net, x, y = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))
    path = save(tmp_path / "run.npz", net, state)
    good = path.read_bytes()
    moved, _ = fit(net, state, (x, y), optimizer=optimizer, epochs=1, batch_size=5)

    def crash(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(netcheck._io.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save(path, net, moved)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # no temporary left
    assert int(load(path, optimizer).state.epoch) == 0


def test_a_raw_key_is_saved_as_a_typed_key(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.PRNGKey(5))
    restored = load(save(tmp_path / "k.npz", net, state), optimizer)
    np.testing.assert_array_equal(
        jax.random.key_data(restored.state.key), np.asarray(jax.random.PRNGKey(5))
    )


def test_loading_with_another_optimizer_is_refused(tmp_path):
    net, _, _ = _problem()
    state = init_state(net.init(jax.random.key(0)), optax.adam(0.1), jax.random.key(0))
    save(tmp_path / "adam.npz", net, state)
    with pytest.raises(ValueError, match="optimizer it was trained with"):
        load(tmp_path / "adam.npz", optax.sgd(0.1))


def test_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a netcheck checkpoint"):
        load(tmp_path / "junk.npz", optax.sgd(0.1))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a netcheck checkpoint"):
        load(tmp_path / "other.npz", optax.sgd(0.1))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "missing.npz", optax.sgd(0.1))


def test_save_refuses_params_that_do_not_fit_the_network(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(Network((3, 4, 2)).init(jax.random.key(0)), optimizer, jax.random.key(0))
    with pytest.raises(ValueError, match="shape"):
        save(tmp_path / "bad.npz", net, state)
    assert not (tmp_path / "bad.npz").exists()


def test_save_refuses_a_history_that_is_not_json(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))
    with pytest.raises(ValueError, match="JSON"):
        save(tmp_path / "bad.npz", net, state, {"loss": [jnp.nan]})


# ----- never a non-finite state ----------------------------------------------------------------


def _adam_state(net):
    optimizer = optax.adam(0.1)
    return optimizer, init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))


@pytest.mark.parametrize("where", ["params", "opt_state"])
def test_save_refuses_a_non_finite_state_naming_file_and_leaf(tmp_path, where):
    net, _, _ = _problem()
    _, state = _adam_state(net)
    path = save(tmp_path / "run.npz", net, state)
    good = path.read_bytes()
    if where == "params":
        state.params[0]["b"] = state.params[0]["b"].at[1].set(jnp.inf)
        leaf = r"params/0/b \(b_1\) holds 1 non-finite value"
    else:
        state.opt_state[0].nu[1]["W"] = state.opt_state[0].nu[1]["W"].at[0, 0].set(jnp.nan)
        leaf = "opt_state/0/nu/1/W holds 1 non-finite value"
    with pytest.raises(ValueError, match=rf"refusing to write .*run\.npz: {leaf}"):
        save(path, net, state)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def _tampered(path, name, index, value):
    """Rewrite one array element of a saved checkpoint, keeping everything else."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays[name] = arrays[name].copy()
    arrays[name][index] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("name", "index", "leaf"),
    [
        ("params/1/W", (0, 3), r"params/1/W \(W_2\)"),
        ("opt_state/2", (2,), "opt_state/0/mu/0/b"),
    ],
    ids=["params", "opt_state"],
)
def test_load_refuses_a_tampered_non_finite_state_naming_file_and_leaf(tmp_path, name, index, leaf):
    net, _, _ = _problem()
    optimizer, state = _adam_state(net)
    path = save(tmp_path / "run.npz", net, state)
    _tampered(path, name, index, np.nan)
    with pytest.raises(
        ValueError, match=rf"run\.npz holds a non-finite state, refused: {leaf} holds 1"
    ):
        load(path, optimizer)


def test_a_float64_checkpoint_is_refused_in_32_bit_mode(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    with jax.enable_x64(True):
        state = init_state(net.init(jax.random.key(0), jnp.float64), optimizer, jax.random.key(0))
        path = save(tmp_path / "wide.npz", net, state)
        assert load(path, optimizer).state.params[0]["W"].dtype == jnp.float64
    assert read_metadata(path)["dtype"] == "float64"
    with pytest.raises(ValueError, match=r"float64 arrays .* 32-bit mode.*jax_enable_x64"):
        load(path, optimizer)


def test_save_onto_a_folder_is_refused(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))
    (tmp_path / "run.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save(tmp_path / "run.npz", net, state)


# ----- the training data's description -------------------------------------------------------


def test_the_data_description_round_trips(tmp_path):
    net, x, y = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))
    data = {"dataset": "moons", "seed": 3, "train_sha256": fingerprint_arrays(x, y)}
    path = save(tmp_path / "run.npz", net, state, data=data)
    assert load(path, optimizer).data == data
    meta = read_metadata(path)
    assert meta["data"] == data and meta["dtype"] == "float32" and meta["epoch"] == 0


def test_a_version_1_checkpoint_still_loads_without_a_description(tmp_path):
    net, _, _ = _problem()
    optimizer = optax.sgd(0.1)
    state = init_state(net.init(jax.random.key(0)), optimizer, jax.random.key(0))
    path = save(tmp_path / "old.npz", net, state)
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["version"] = 1
    del meta["data"], meta["dtype"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    restored = load(path, optimizer)
    assert restored.data is None
    assert _leaves_equal(restored.state.params, state.params)
    assert read_metadata(path)["data"] is None


def test_fingerprint_arrays_sees_one_changed_value_dtype_or_shape():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.eye(4, dtype=np.float32)
    reference = fingerprint_arrays(x, y)
    assert fingerprint_arrays(x.copy(), y.copy()) == reference
    changed = x.copy()
    changed[2, 1] += 1e-6 * changed[2, 1]
    assert fingerprint_arrays(changed, y) != reference
    assert fingerprint_arrays(x.astype(np.float64), y) != reference
    assert fingerprint_arrays(x.reshape(3, 4), y) != reference
    assert fingerprint_arrays(np.asfortranarray(x), y) == reference  # the values, not the layout


def test_data_differences_names_each_difference():
    saved = {"dataset": "moons", "n_samples": 120, "seed": 0, "test_fraction": 0.2}
    assert data_differences(saved, dict(saved)) == []
    now = {"dataset": "circles", "n_samples": 120, "seed": 1, "test_fraction": 0.2}
    assert data_differences(saved, now) == [
        "dataset: 'moons' in the checkpoint, 'circles' now",
        "seed: 0 in the checkpoint, 1 now",
    ]
    assert data_differences(None, now) == [
        "the checkpoint records no training data to compare with"
    ]
