"""``netcheck train`` end to end on tiny runs: outputs, checkpoints, resume and exit codes."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

import netcheck.backprop
from netcheck import datasets
from netcheck.checkpoint import load
from netcheck.cli import main

TINY = ["moons", "--n-samples", "120", "--sizes", "6", "--batch-size", "16", "--no-progress"]


def _numpy_mean_bce(params, x, y) -> float:
    """Binary cross-entropy of a tanh network with a sigmoid output, in float64 numpy."""
    a = x.astype(np.float64)
    for layer, weights in enumerate(params):
        z = a @ np.asarray(weights["W"], np.float64).T + np.asarray(weights["b"], np.float64)
        a = np.tanh(z) if layer < len(params) - 1 else 1 / (1 + np.exp(-z))
    return float(np.mean(-(y * np.log(a) + (1 - y) * np.log1p(-a))))


def test_a_tiny_run_end_to_end(tmp_path, capsys):
    record_path, checkpoint_path = tmp_path / "run.json", tmp_path / "run.npz"
    code = main(
        [
            "train",
            *TINY,
            "--epochs",
            "3",
            "--json",
            str(record_path),
            "--save",
            str(checkpoint_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 3: train loss" in out and "test loss" in out
    record = json.loads(record_path.read_text())
    assert record["history"]["epoch"] == [1, 2, 3]
    assert record["network"]["sizes"] == [2, 6, 1]
    # The reported final train loss, recomputed from the saved parameters in numpy.
    saved = load(checkpoint_path, optax.sgd(0.5))
    assert int(saved.state.epoch) == 3
    train, test = datasets.standardize(
        *datasets.train_test_split(datasets.load("moons", n_samples=120, seed=0), 0.2, 0)
    )
    assert train.n_samples == 96 and test.n_samples == 24
    np.testing.assert_allclose(
        record["final"]["train_loss"],
        _numpy_mean_bce(saved.state.params, train.x, train.y),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        record["final"]["validation_loss"],
        _numpy_mean_bce(saved.state.params, test.x, test.y),
        rtol=1e-5,
    )


def test_resume_continues_exactly(tmp_path):
    straight, half, resumed = (tmp_path / name for name in ("a.json", "b.npz", "c.json"))
    assert (
        main(["train", *TINY, "--optimizer", "adam", "--epochs", "4", "--json", str(straight)]) == 0
    )
    assert main(["train", *TINY, "--optimizer", "adam", "--epochs", "2", "--save", str(half)]) == 0
    code = main(
        [
            "train",
            "moons",
            "--n-samples",
            "120",
            "--batch-size",
            "16",
            "--no-progress",
            "--optimizer",
            "adam",
            "--epochs",
            "4",
            "--resume",
            str(half),
            "--json",
            str(resumed),
        ]
    )
    assert code == 0
    assert json.loads(resumed.read_text())["history"] == json.loads(straight.read_text())["history"]


def test_a_failed_gradient_check_exits_1(monkeypatch, capsys):
    correct = netcheck.backprop.manual_grad_jit

    def wrong_by_ten_percent(net, params, x, y):
        return jax.tree.map(lambda g: 1.1 * g, correct(net, params, x, y))

    monkeypatch.setattr(netcheck.backprop, "manual_grad_jit", wrong_by_ten_percent)
    assert main(["train", *TINY, "--epochs", "2", "--check-every", "1"]) == 1
    assert "FAILED after epoch(s) 1, 2" in capsys.readouterr().out


def test_divergence_exits_1_with_the_epoch(capsys):
    code = main(
        [
            "train",
            *TINY,
            "--epochs",
            "5",
            "--lr",
            "1e30",
            "--loss",
            "squared_error",
            "--output-activation",
            "identity",
        ]
    )
    assert code == 1
    assert "stopped: training diverged in epoch 1" in capsys.readouterr().out


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nonsense"], "dataset must be one of"),
        (["moons", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["moons", "--epochs", "0"], "--epochs must be at least 1"),
        (["moons", "--lr", "-1"], "--lr must be positive"),
        (["moons", "--check-every", "0"], "check_every must be at least 1"),
        (["moons", "--resume", "missing.npz"], "does not exist"),
        (["missing.csv"], "missing.csv"),
        (["moons", "--output-activation", "softmax"], "needs output_activation='sigmoid'"),
        (["moons", "--save", "no/such/folder/run.npz"], "--save: folder 'no/such/folder'"),
    ],
    ids=[
        "unknown-dataset",
        "batch-0",
        "epochs-0",
        "negative-lr",
        "check-every-0",
        "missing-checkpoint",
        "missing-file",
        "bad-network",
        "save-folder-missing",
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(tmp_path)
    code = main(["train", *arguments, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_resume_refuses_architecture_flags_and_finished_runs(tmp_path, capsys):
    saved = tmp_path / "run.npz"
    assert main(["train", *TINY, "--epochs", "2", "--save", str(saved)]) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "3", "--resume", str(saved)]) == 2
    assert "--sizes cannot be combined with --resume" in capsys.readouterr().err
    resume = ["train", "moons", "--n-samples", "120", "--no-progress", "--resume", str(saved)]
    assert main([*resume, "--epochs", "2"]) == 2
    assert "has 2 epochs already" in capsys.readouterr().err
