"""``netcheck train`` end to end on tiny runs: outputs, checkpoints, resume and exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import signal

import jax
import numpy as np
import optax
import pytest

import netcheck.cli.train as train_cli
import netcheck.nn.backprop
from netcheck import datasets
from netcheck.cli import build_parser, main
from netcheck.training import checkpoint, trainer
from netcheck.training.checkpoint import load

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
    correct = netcheck.nn.backprop.manual_grad_jit

    def wrong_by_ten_percent(net, params, x, y):
        return jax.tree.map(lambda g: 1.1 * g, correct(net, params, x, y))

    monkeypatch.setattr(netcheck.nn.backprop, "manual_grad_jit", wrong_by_ten_percent)
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
        (["moons", "--check-every", "0"], "--check-every must be at least 1"),
        (["moons", "--save-every", "0", "--save", "x.npz"], "--save-every must be at least 1"),
        (["moons", "--save-every", "2"], "--save-every needs --save"),
        (["moons", "--evaluate"], "--evaluate needs --resume"),
        (["moons", "--allow-new-data"], "--allow-new-data needs --resume"),
        (["moons", "--sizes", "16,0"], "hidden widths must be at least 1"),
        (["moons", "--resume", "missing.npz"], "does not exist"),
        (["missing.csv"], "missing.csv"),
        (["moons", "--output-activation", "softmax"], "add --one-hot"),
        (["moons", "--save", "no/such/folder/run.npz"], "--save: folder 'no/such/folder'"),
        (["moons", "--save", "."], "--save: '.' is a folder"),
        (["moons", "--json", "no/such/folder/r.json"], "--json: folder 'no/such/folder'"),
        (["moons", "--sizes", "2,16,1"], "did you mean --sizes 16?"),
    ],
    ids=[
        "unknown-dataset",
        "batch-0",
        "epochs-0",
        "negative-lr",
        "check-every-0",
        "save-every-0",
        "save-every-without-save",
        "evaluate-without-resume",
        "allow-new-data-without-resume",
        "zero-width",
        "missing-checkpoint",
        "missing-file",
        "softmax-on-two-classes",
        "save-folder-missing",
        "save-onto-a-folder",
        "json-folder-missing",
        "sizes-with-input-and-output",
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


# ----- refused before any work ---------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [["--save", "."], ["--save", "missing/run.npz"], ["--json", "."], ["--save-every", "2"]],
    ids=["save-onto-folder", "save-into-missing-folder", "json-onto-folder", "save-every-alone"],
)
def test_unwritable_targets_are_refused_before_loading_anything(
    tmp_path, monkeypatch, capsys, arguments
):
    def no_work(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were checked")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load", no_work)
    assert main(["train", "moons", "--no-progress", *arguments]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ".tmp" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sizes", "message"),
    [("16,,16", "item 2 is empty"), ("", "got nothing"), ("16,", "item 2 is empty")],
    ids=["empty-item", "empty", "trailing-comma"],
)
def test_malformed_sizes_are_refused(capsys, sizes, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "moons", "--sizes", sizes])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--sizes" in err and message in err


def test_help_says_sizes_are_hidden_widths_and_shows_the_shared_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the HIDDEN layer widths only" in out
    assert "sgd 0.5, batches of 32, 30 epochs" in out
    args = build_parser().parse_args(["train", "moons"])
    assert args.batch_size == trainer.DEFAULT_BATCH_SIZE
    assert train_cli.DEFAULT_LR["sgd"] == trainer.DEFAULT_LEARNING_RATE


# ----- resuming only on the same data ----------------------------------------------------------


def test_resume_on_other_data_is_refused_naming_what_differs(tmp_path, capsys):
    saved = tmp_path / "run.npz"
    assert main(["train", *TINY, "--epochs", "2", "--save", str(saved)]) == 0
    resume = ["--n-samples", "120", "--no-progress", "--epochs", "3", "--resume", str(saved)]
    capsys.readouterr()
    assert main(["train", "circles", *resume]) == 2
    err = capsys.readouterr().err
    assert "dataset: 'moons' in the checkpoint, 'circles' now" in err
    assert "--allow-new-data" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "moons", *resume, "--seed", "1"]) == 2
    assert "seed: 0 in the checkpoint, 1 now" in capsys.readouterr().err
    # Accepted when asked for, with a note; the new checkpoint records the new data.
    again = tmp_path / "again.npz"
    code = main(
        ["train", "moons", *resume, "--seed", "1", "--allow-new-data", "--save", str(again)]
    )
    assert code == 0
    assert "resuming on other data (--allow-new-data): " in capsys.readouterr().err
    assert load(again, optax.sgd(0.5)).data["seed"] == 1


def test_resume_refuses_a_tampered_checkpoint(tmp_path, capsys):
    saved = tmp_path / "run.npz"
    assert main(["train", *TINY, "--epochs", "1", "--save", str(saved)]) == 0
    with np.load(saved) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["params/0/W"] = np.full_like(arrays["params/0/W"], np.nan)
    np.savez(saved, **arrays)
    capsys.readouterr()
    assert main(["train", *TINY[:3], "--no-progress", "--epochs", "2", "--resume", str(saved)]) == 2
    err = capsys.readouterr().err
    assert "run.npz holds a non-finite state" in err and "params/0/W (W_1)" in err


# ----- progress kept ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_saves_the_last_completed_epoch_and_exits_130(
    tmp_path, monkeypatch, capsys, signal_number
):
    original = trainer._record_epoch

    def signalled_in_epoch_3(history, epoch, *args):
        original(history, epoch, *args)
        if epoch == 3:  # epoch 3 has run but is not complete: epoch 2 is the one to keep
            os.kill(os.getpid(), signal_number)

    monkeypatch.setattr(trainer, "_record_epoch", signalled_in_epoch_3)
    before = [signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)]
    saved = tmp_path / "run.npz"
    assert main(["train", *TINY, "--epochs", "10", "--save", str(saved)]) == 130
    assert [signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)] == before
    err = capsys.readouterr().err
    interrupted = load(saved, optax.sgd(0.5))
    epoch = int(interrupted.state.epoch)
    # Epoch 2, unless Python swallowed the interrupt (raised inside a weakref callback, say):
    # then it is raised again as epoch 3 completes, and epoch 3 is the last one completed.
    assert epoch in (2, 3)
    assert f"saved epoch {epoch} to {saved}" in err and "interrupted" in err
    assert interrupted.history["epoch"] == list(range(1, epoch + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]  # no temporary left
    # Exactly what that many epochs give.
    monkeypatch.setattr(trainer, "_record_epoch", original)
    straight = tmp_path / "straight.npz"
    assert main(["train", *TINY, "--epochs", str(epoch), "--save", str(straight)]) == 0
    for got, want in zip(
        jax.tree.leaves(interrupted.state.params),
        jax.tree.leaves(load(straight, optax.sgd(0.5)).state.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_an_interrupt_python_swallowed_is_raised_again_at_the_epoch_boundary(
    tmp_path, monkeypatch, capsys
):
    original = trainer._record_epoch

    def swallowed_in_epoch_2(history, epoch, *args):
        original(history, epoch, *args)
        if epoch == 2:
            # os.kill runs the handler at once; swallowing its exception is what Python does
            # when the signal lands in a weakref callback or a finalizer.
            with contextlib.suppress(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "_record_epoch", swallowed_in_epoch_2)
    saved = tmp_path / "run.npz"
    assert main(["train", *TINY, "--epochs", "10", "--save", str(saved)]) == 130
    assert f"saved epoch 2 to {saved}" in capsys.readouterr().err
    assert int(load(saved, optax.sgd(0.5)).state.epoch) == 2


def test_save_every_writes_those_epochs_and_the_last(tmp_path, monkeypatch):
    written = []
    original = checkpoint.save

    def recording_save(path, net, state, history=None, **kwargs):
        written.append((int(state.epoch), list(history["epoch"])))
        return original(path, net, state, history, **kwargs)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    saved = tmp_path / "run.npz"
    arguments = ["train", *TINY, "--epochs", "5", "--save", str(saved), "--save-every", "2"]
    assert main(arguments) == 0
    assert written == [(2, [1, 2]), (4, [1, 2, 3, 4]), (5, [1, 2, 3, 4, 5])]


# ----- evaluation, dtype, one-hot --------------------------------------------------------------


def test_evaluate_reports_a_checkpoint_without_training(tmp_path, monkeypatch, capsys):
    saved, record = tmp_path / "run.npz", tmp_path / "eval.json"
    assert main(["train", *TINY, "--epochs", "3", "--save", str(saved)]) == 0
    trained_line = capsys.readouterr().out.splitlines()[0]

    def no_training(*args, **kwargs):
        raise AssertionError("--evaluate trained")

    monkeypatch.setattr(train_cli, "fit", no_training)
    resume = [*TINY[:3], "--no-progress", "--resume", str(saved), "--evaluate"]
    assert main(["train", *resume, "--json", str(record)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == trained_line
    assert json.loads(record.read_text())["final"]["epoch"] == 3
    assert main(["train", *resume, "--epochs", "4"]) == 2
    assert "--epochs cannot be combined with --evaluate" in capsys.readouterr().err


def test_float64_trains_saves_and_resumes_without_leaking_64_bit_mode(tmp_path):
    saved = tmp_path / "wide.npz"
    assert main(["train", *TINY, "--epochs", "1", "--dtype", "float64", "--save", str(saved)]) == 0
    assert not jax.config.jax_enable_x64
    assert checkpoint.read_metadata(saved)["dtype"] == "float64"
    record = tmp_path / "r.json"
    resume = [*TINY[:3], "--no-progress", "--epochs", "2", "--resume", str(saved)]
    assert main(["train", *resume, "--json", str(record)]) == 0
    assert json.loads(record.read_text())["dtype"] == "float64"
    assert not jax.config.jax_enable_x64


def test_one_hot_gives_two_columns_for_a_softmax_output(tmp_path):
    record = tmp_path / "r.json"
    arguments = [*TINY, "--epochs", "2", "--one-hot", "--json", str(record)]
    arguments += ["--output-activation", "softmax", "--loss", "softmax_cross_entropy"]
    assert main(["train", *arguments]) == 0
    result = json.loads(record.read_text())
    assert result["network"]["sizes"] == [2, 6, 2]
    assert result["data"]["one_hot"] is True
    assert result["final"]["validation_accuracy"] > 0.5


def test_a_file_dataset_is_known_by_its_content(tmp_path, capsys):
    moons = datasets.load("moons", n_samples=80, seed=0)
    first = tmp_path / "data.npz"
    np.savez(first, x=moons.x, y=moons.y)
    saved = tmp_path / "run.npz"
    common = ["--sizes", "4", "--no-progress"]
    assert main(["train", str(first), *common, "--epochs", "1", "--save", str(saved)]) == 0
    renamed = tmp_path / "renamed.npz"
    first.rename(renamed)
    resume = ["--no-progress", "--epochs", "2", "--resume", str(saved)]
    assert main(["train", str(renamed), *resume]) == 0  # same content, another name
    edited = moons.x.copy()
    edited[5, 1] += 0.5
    np.savez(renamed, x=edited, y=moons.y)
    capsys.readouterr()
    assert main(["train", str(renamed), *resume]) == 2
    err = capsys.readouterr().err
    assert "file_sha256: " in err and len(err.strip().splitlines()) == 1
