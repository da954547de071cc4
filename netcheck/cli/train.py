"""``netcheck train``: train a network on a dataset with the jit-compiled trainer.

The data is a dataset from ``netcheck.datasets`` (or an ``.npz``/``.csv`` file), split
into training and test parts and standardised with the training statistics. The network's
input and output widths come from the data; ``--sizes`` names the hidden widths only. The
defaults are the trainer's (``netcheck.training.trainer``: sgd 0.5, batches of 32, 30 epochs).

Prints the final train and test metrics (one evaluation of each set after the last epoch;
during training the progress bar shows the running loss). ``--save`` writes a checkpoint at
the end, after every ``--save-every`` epochs, and, on Ctrl-C or SIGTERM, with the last
completed epoch before exiting 130. ``--resume`` continues a checkpoint (the network comes
from it) on the same data only, unless ``--allow-new-data``; ``--evaluate`` with
``--resume`` evaluates a checkpoint without training. ``--json`` writes the history and the
final metrics. Exit 0 when training finished, 1 when a ``--check-every`` verification failed
or the loss diverged, 2 on bad usage (checked before any work), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from tqdm import tqdm

from netcheck import datasets
from netcheck._io import check_writable, write_json_atomic
from netcheck.cli import EXIT_CHECK_FAILED, EXIT_OK, UsageError, int_list
from netcheck.nn import Network
from netcheck.nn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from netcheck.nn.losses import LOSSES
from netcheck.training import checkpoint
from netcheck.training.trainer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    GRADS,
    DivergenceWarning,
    TrainState,
    check_data,
    evaluate_on,
    fit,
    init_state,
)

OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULT_LR = {"sgd": DEFAULT_LEARNING_RATE, "momentum": 0.1, "adam": 0.01}
MOMENTUM = 0.9
DEFAULT_HIDDEN = (16, 16)
DTYPES = ("float32", "float64", "bfloat16", "float16")
STANDARDIZATION = "training mean and standard deviation"
_ARCHITECTURE_FLAGS = ("sizes", "activation", "output_activation", "loss", "dtype")
_TRAINING_FLAGS = ("epochs", "save", "save_every", "check_every", "eval_every")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``netcheck train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a network on a dataset (manual backprop, jit-compiled epochs)",
        description="Train a network on a dataset with netcheck's trainer: one compiled "
        "program per epoch, the manual gradient, an optax optimizer. Defaults: "
        f"sgd {DEFAULT_LEARNING_RATE:g}, batches of {DEFAULT_BATCH_SIZE}, "
        f"{DEFAULT_EPOCHS} epochs.",
    )
    parser.add_argument(
        "dataset",
        help=f"a dataset name ({', '.join(datasets.DATASETS)}) or an .npz/.csv file",
    )
    parser.add_argument("--n-samples", type=int, help="examples to generate (default: its own)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="held-out share (default 0.2)"
    )
    parser.add_argument(
        "--one-hot",
        action="store_true",
        help="targets as one-hot rows, one column per class, also for two classes (for a "
        "softmax output)",
    )
    parser.add_argument(
        "--sizes",
        type=int_list,
        help="the HIDDEN layer widths only, e.g. 16,16 (default "
        f"{','.join(map(str, DEFAULT_HIDDEN))}); the input and output widths come from the data",
    )
    parser.add_argument(
        "--activation", choices=HIDDEN_ACTIVATIONS, help="hidden activation (default tanh)"
    )
    parser.add_argument(
        "--output-activation",
        choices=tuple(ACTIVATIONS),
        help="output activation (default: sigmoid for 2 classes, softmax for more)",
    )
    parser.add_argument(
        "--loss",
        choices=tuple(LOSSES),
        help="loss (default: binary_cross_entropy for 2 classes, softmax_cross_entropy for more)",
    )
    parser.add_argument("--dtype", choices=DTYPES, help="parameters and data (default float32)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="default sgd")
    parser.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: "
        + ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
        + ")",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"epochs in all, counting resumed ones (default {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"examples per step (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--drop-last", action="store_true", help="skip the last partial batch")
    parser.add_argument("--grad", choices=tuple(GRADS), default="manual", help="default manual")
    parser.add_argument(
        "--check-every", type=int, metavar="N", help="verify the gradient every N epochs"
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="also evaluate the whole training set every N epochs (history's train_loss)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds data, init and shuffles (0)")
    parser.add_argument(
        "--save",
        metavar="PATH",
        help="write a checkpoint here at the end (and on Ctrl-C/SIGTERM: the last epoch)",
    )
    parser.add_argument(
        "--save-every", type=int, metavar="N", help="with --save: also every N epochs"
    )
    parser.add_argument("--resume", metavar="PATH", help="continue from this checkpoint")
    parser.add_argument(
        "--allow-new-data",
        action="store_true",
        help="with --resume: accept data other than the checkpoint's",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="with --resume: evaluate the checkpoint on the data, no training",
    )
    parser.add_argument("--json", metavar="PATH", help="write the history and metrics as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


# ----- checks before any work -----------------------------------------------------------------


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, before anything is loaded or compiled, flags that cannot work together."""
    for flag in ("batch_size", "epochs", "save_every", "check_every", "eval_every"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.sizes is not None and min(args.sizes) < 1:
        raise UsageError(f"--sizes: hidden widths must be at least 1, got {args.sizes}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    if args.save_every is not None and args.save is None:
        raise UsageError("--save-every needs --save PATH, the checkpoint to write")
    for flag in ("allow_new_data", "evaluate"):
        if getattr(args, flag) and args.resume is None:
            raise UsageError(f"--{flag.replace('_', '-')} needs --resume CHECKPOINT")
    if args.resume is not None:
        _refuse_flags(args, _ARCHITECTURE_FLAGS, "--resume: the network comes from the checkpoint")
    if args.evaluate:
        _refuse_flags(args, _TRAINING_FLAGS, "--evaluate: it does not train")
    for flag in ("save", "json"):
        if getattr(args, flag) is not None:
            try:
                check_writable(getattr(args, flag))
            except OSError as error:
                raise UsageError(f"--{flag}: {error}") from None


def _refuse_flags(args: argparse.Namespace, flags: tuple[str, ...], why: str) -> None:
    given = [f"--{flag.replace('_', '-')}" for flag in flags if getattr(args, flag) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be combined with {why}")


# ----- data, network, optimizer -------------------------------------------------------------


def load_data(
    args: argparse.Namespace,
) -> tuple[datasets.Dataset, datasets.Dataset, dict[str, Any]]:
    """The dataset named by ``args``, split and standardised: ``(train, test, description)``.

    The description identifies the data for a checkpoint (see ``netcheck.training.checkpoint``):
    the dataset's name or the file's SHA-256, the number of examples, the split's seed and
    test fraction, the standardisation, ``--one-hot``, and a hash of the training split.
    """
    name = args.dataset
    description: dict[str, Any] = {"dataset": name}
    if name in datasets.DATASETS:
        ds = datasets.load(name, n_samples=args.n_samples, seed=args.seed)
    else:
        path = Path(name)
        if path.suffix not in (".npz", ".csv"):
            raise UsageError(
                f"dataset must be one of {', '.join(datasets.DATASETS)} or an .npz/.csv file, "
                f"got {name!r}"
            )
        if args.n_samples is not None:
            raise UsageError("--n-samples applies to generated datasets, not to files")
        ds = datasets.load_npz(path) if path.suffix == ".npz" else datasets.load_csv(path)
        # A file is known by its content, so that moving or renaming it changes nothing.
        description = {"dataset": "file", "file_sha256": _file_sha256(path)}
    if args.one_hot:
        ds = _one_hot(ds)
    train, test = datasets.standardize(
        *datasets.train_test_split(ds, args.test_fraction, args.seed)
    )
    description.update(
        n_samples=ds.n_samples,
        seed=args.seed,
        test_fraction=args.test_fraction,
        standardization=STANDARDIZATION,
        one_hot=args.one_hot,
        train_sha256=checkpoint.fingerprint_arrays(train.x, train.y),
    )
    return train, test, description


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_hot(ds: datasets.Dataset) -> datasets.Dataset:
    """``ds`` with one-hot targets, one column per class (two for a binary problem)."""
    if ds.y.shape[1] > 1:
        return ds  # one column per class already
    if not ((ds.y == 0) | (ds.y == 1)).all():
        raise UsageError(
            f"--one-hot needs class labels, but {ds.name}'s targets are probabilities in [0, 1]"
        )
    return ds._replace(y=datasets.to_one_hot(ds.labels, 2))


def build_network(args: argparse.Namespace, train: datasets.Dataset) -> Network:
    """The network the flags describe, with the data's input and output widths."""
    n_in, n_out = train.n_features, train.y.shape[1]
    hidden = DEFAULT_HIDDEN if args.sizes is None else args.sizes
    if len(hidden) >= 2 and hidden[0] == n_in and hidden[-1] == n_out:
        inner = ",".join(map(str, hidden[1:-1])) or "16"
        raise UsageError(
            f"--sizes lists the hidden widths only; the input width ({n_in}) and the output "
            f"width ({n_out}) come from the data: got --sizes "
            f"{','.join(map(str, hidden))}, did you mean --sizes {inner}?"
        )
    multiclass = n_out > 1
    output = args.output_activation or ("softmax" if multiclass else "sigmoid")
    if output == "softmax" and n_out == 1:
        raise UsageError(
            "a softmax output needs one column per class, but the targets have one "
            "(two classes): add --one-hot, or use --output-activation sigmoid"
        )
    return Network(
        sizes=(n_in, *hidden, n_out),
        activation=args.activation or "tanh",
        output_activation=output,
        loss=args.loss or ("softmax_cross_entropy" if multiclass else "binary_cross_entropy"),
    )


def build_optimizer(name: str, lr: float | None) -> optax.GradientTransformation:
    """``sgd``, ``momentum`` (heavy ball, 0.9) or ``adam`` at ``lr`` (or its default)."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=MOMENTUM)
    return optax.adam(lr)


def _starting_point(
    args: argparse.Namespace,
    train: datasets.Dataset,
    optimizer: optax.GradientTransformation,
    description: dict[str, Any],
) -> tuple[Network, TrainState, dict[str, Any] | None]:
    """A fresh network and state, or those of the ``--resume`` checkpoint (same data only)."""
    if args.resume is None:
        net = build_network(args, train)
        init_key, shuffle_key = jax.random.split(jax.random.key(args.seed))
        params = net.init(init_key, dtype=jnp.dtype(args.dtype or "float32"))
        return net, init_state(params, optimizer, shuffle_key), None
    saved = checkpoint.load(args.resume, optimizer)
    differences = checkpoint.data_differences(saved.data, description)
    if differences and not args.allow_new_data:
        raise UsageError(
            f"--resume {args.resume}: not the data it was trained on: {'; '.join(differences)}"
            " (pass --allow-new-data to resume on this data anyway)"
        )
    if differences:
        print(
            f"netcheck train: resuming on other data (--allow-new-data): {'; '.join(differences)}",
            file=sys.stderr,
        )
    return saved.net, saved.state, saved.history


# ----- running ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Train (or ``--evaluate``) as the flags say; print the final metrics; the exit code."""
    check_flags(args)
    dtype = args.dtype
    if args.resume is not None:
        dtype = checkpoint.read_metadata(args.resume)["dtype"]
    # float64 needs JAX's 64-bit mode, for this run only.
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    optimizer = build_optimizer(args.optimizer, args.lr)
    train, test, description = load_data(args)
    net, state, history = _starting_point(args, train, optimizer, description)
    # Checked and moved to the device once; training and evaluation reuse them unchecked.
    train_data = check_data(net, state.params, (train.x, train.y), "training data")
    test_data = check_data(net, state.params, (test.x, test.y), "test data")
    if args.evaluate:
        final = _evaluation(net, state, train_data, test_data)
        print(_summary(net, final, None))
        if args.json:
            write_json_atomic(args.json, _record(args, net, description, final, history))
        return EXIT_OK
    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    remaining = epochs - int(state.epoch)
    if remaining < 1:
        raise UsageError(
            f"the checkpoint has {int(state.epoch)} epochs already; ask for more with --epochs"
        )
    saver = _Saver(args.save, net, description) if args.save else None
    progress = tqdm(
        total=epochs,
        initial=int(state.epoch),
        desc="train",
        unit="epoch",
        file=sys.stderr,
        disable=args.no_progress,
    )

    # The divergence message lands in the history and the summary; no warning on top.
    with progress, warnings.catch_warnings(), _signals_as_interrupt() as signals:
        warnings.simplefilter("ignore", DivergenceWarning)

        def on_epoch(state: TrainState, history: dict[str, Any]) -> None:
            progress.set_postfix(loss=f"{history['running_loss'][-1]:.4g}", refresh=False)
            progress.update(1)
            if signals:  # an interrupt that Python swallowed: raise it again
                raise KeyboardInterrupt(f"signal {signals[0]}")

        try:
            state, history = fit(
                net,
                state,
                train_data,
                optimizer=optimizer,
                epochs=remaining,
                batch_size=args.batch_size,
                grad=args.grad,
                validation=test_data,
                eval_every=args.eval_every,
                check_every=args.check_every,
                drop_last=args.drop_last,
                history=history,
                on_epoch=on_epoch,
                save_every=args.save_every,
                on_save=saver,
            )
        except KeyboardInterrupt:
            progress.close()
            print(f"netcheck train: {_interrupted_note(saver)}", file=sys.stderr)
            raise
    final = _evaluation(net, state, train_data, test_data)
    print(_summary(net, final, history))
    if args.json:
        write_json_atomic(args.json, _record(args, net, description, final, history))
    return EXIT_CHECK_FAILED if _failed_checks(history) or history["stopped"] else EXIT_OK


class _Saver:
    """The ``on_save`` hook of ``--save``: writes the checkpoint, remembers the epoch."""

    def __init__(self, path: str, net: Network, description: dict[str, Any]) -> None:
        self.path, self.net, self.description = path, net, description
        self.epoch: int | None = None

    def __call__(self, state: TrainState, history: dict[str, Any]) -> None:
        checkpoint.save(self.path, self.net, state, history, data=self.description)
        self.epoch = int(state.epoch)


def _interrupted_note(saver: _Saver | None) -> str:
    if saver is None:
        return "nothing saved (no --save)"
    if saver.epoch is None:
        return "nothing saved: no epoch finished"
    return f"saved epoch {saver.epoch} to {saver.path}"


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[list[int]]:
    """Meanwhile SIGINT and SIGTERM raise ``KeyboardInterrupt`` (saved, exit 130) and are listed.

    Python raises a signal's exception wherever the main thread happens to be; inside a
    finalizer or a weakref callback it is printed and lost. The list keeps it: the caller
    raises it again at the next epoch boundary.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {number: signal.signal(number, interrupt) for number in _STOP_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _evaluation(
    net: Network, state: TrainState, train_data: tuple[Any, Any], test_data: tuple[Any, Any]
) -> dict[str, float | int]:
    """The train and test metrics of ``state``'s parameters, at its epoch."""
    train_loss, train_accuracy = evaluate_on(net, state.params, train_data)
    test_loss, test_accuracy = evaluate_on(net, state.params, test_data)
    return {
        "epoch": int(state.epoch),
        "dtype": jnp.dtype(net.check_params(state.params)).name,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "validation_loss": test_loss,
        "validation_accuracy": test_accuracy,
    }


def _summary(net: Network, final: dict[str, Any], history: dict[str, Any] | None) -> str:
    """The lines printed at the end: final train and test metrics, checks, any stop."""
    lines = [
        f"epoch {final['epoch']}: train loss {final['train_loss']:.6g}, "
        f"accuracy {final['train_accuracy']:.4f} | test loss {final['validation_loss']:.6g}, "
        f"accuracy {final['validation_accuracy']:.4f}  ({net.loss}, sizes {net.sizes})"
    ]
    checks = history["checks"] if history else []
    if checks:
        failed = _failed_checks(history)
        line = f"gradient checks: {len(checks) - len(failed)} of {len(checks)} passed"
        if failed:
            line += f"; FAILED after epoch(s) {', '.join(map(str, failed))}"
        lines.append(line)
    if history and history["stopped"]:
        lines.append(f"stopped: {history['stopped']}")
    return "\n".join(lines)


def _failed_checks(history: dict[str, Any]) -> list[int]:
    return [check["epoch"] for check in history["checks"] if not check["ok"]]


def _record(
    args: argparse.Namespace,
    net: Network,
    description: dict[str, Any],
    final: dict[str, Any],
    history: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``--json`` record: the run's settings, the network, the data, the final metrics."""
    return {
        "command": "train",
        "evaluate_only": args.evaluate,
        "dataset": args.dataset,
        "data": description,
        "network": {**dataclasses.asdict(net), "sizes": list(net.sizes)},
        "dtype": final["dtype"],
        "optimizer": args.optimizer,
        "lr": args.lr if args.lr is not None else DEFAULT_LR[args.optimizer],
        "batch_size": args.batch_size,
        "grad": args.grad,
        "seed": args.seed,
        "final": final,
        "history": history,
    }
