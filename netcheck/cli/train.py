"""``netcheck train``: train a network on a dataset with the jit-compiled trainer.

The data is a dataset from :mod:`netcheck.datasets` (or an ``.npz``/``.csv`` file), split
into training and test parts and standardised with the training statistics. The network's
input and output widths come from the data; ``--sizes`` names the hidden widths. Prints the
final train and test metrics; ``--save`` writes a checkpoint, ``--resume`` continues one
(the network then comes from the checkpoint), ``--json`` writes the history. Exit 0 when
training finished, 1 when a ``--check-every`` verification failed or the loss diverged,
2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import optax
from tqdm import tqdm

from netcheck import checkpoint, datasets
from netcheck._io import write_json_atomic
from netcheck.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from netcheck.cli import EXIT_CHECK_FAILED, EXIT_OK, UsageError, int_list
from netcheck.losses import LOSSES
from netcheck.network import Network
from netcheck.trainer import GRADS, DivergenceWarning, TrainState, fit, init_state

OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULT_LR = {"sgd": 0.5, "momentum": 0.1, "adam": 0.01}
MOMENTUM = 0.9
_ARCHITECTURE_FLAGS = ("sizes", "activation", "output_activation", "loss")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``netcheck train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a network on a dataset (manual backprop, jit-compiled epochs)",
        description="Train a network on a dataset with netcheck's trainer: one compiled "
        "program per epoch, the manual gradient, an optax optimizer.",
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
        "--sizes",
        type=int_list,
        help="hidden layer widths, e.g. 16,16 (default 16,16); input and output widths "
        "come from the data",
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
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="default sgd")
    parser.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: "
        + ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
        + ")",
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="epochs in all, counting resumed ones (30)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (32)")
    parser.add_argument("--drop-last", action="store_true", help="skip the last partial batch")
    parser.add_argument("--grad", choices=tuple(GRADS), default="manual", help="default manual")
    parser.add_argument(
        "--check-every", type=int, metavar="N", help="verify the gradient every N epochs"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds data, init and shuffles (0)")
    parser.add_argument("--save", metavar="PATH", help="write a checkpoint here at the end")
    parser.add_argument("--resume", metavar="PATH", help="continue from this checkpoint")
    parser.add_argument("--json", metavar="PATH", help="write the history and metrics as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def load_data(args: argparse.Namespace) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The dataset named by ``args``, split and standardised: ``(train, test)``."""
    name = args.dataset
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
    return datasets.standardize(*datasets.train_test_split(ds, args.test_fraction, args.seed))


def build_network(args: argparse.Namespace, train: datasets.Dataset) -> Network:
    """The network the flags describe, with the data's input and output widths."""
    multiclass = train.y.shape[1] > 1
    hidden = (16, 16) if args.sizes is None else args.sizes
    return Network(
        sizes=(train.n_features, *hidden, train.y.shape[1]),
        activation=args.activation or "tanh",
        output_activation=args.output_activation or ("softmax" if multiclass else "sigmoid"),
        loss=args.loss or ("softmax_cross_entropy" if multiclass else "binary_cross_entropy"),
    )


def build_optimizer(name: str, lr: float | None) -> optax.GradientTransformation:
    """``sgd``, ``momentum`` (heavy ball, 0.9) or ``adam`` at ``lr`` (or its default)."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if not lr > 0:
        raise UsageError(f"--lr must be positive, got {lr}")
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=MOMENTUM)
    return optax.adam(lr)


def _starting_point(
    args: argparse.Namespace, train: datasets.Dataset, optimizer: optax.GradientTransformation
) -> tuple[Network, TrainState, dict[str, Any] | None]:
    """A fresh network and state, or those of the ``--resume`` checkpoint."""
    if args.resume is None:
        net = build_network(args, train)
        init_key, shuffle_key = jax.random.split(jax.random.key(args.seed))
        return net, init_state(net.init(init_key), optimizer, shuffle_key), None
    given = [f"--{flag.replace('_', '-')}" for flag in _ARCHITECTURE_FLAGS if getattr(args, flag)]
    if given:
        raise UsageError(
            f"{', '.join(given)} cannot be combined with --resume: "
            "the network comes from the checkpoint"
        )
    saved = checkpoint.load(args.resume, optimizer)
    return saved.net, saved.state, saved.history


def run(args: argparse.Namespace) -> int:
    """Train as the flags say; print the final metrics; return the exit code."""
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}"
            )
    for flag in ("save", "json"):
        path = getattr(args, flag)
        if path is not None and not Path(path).parent.is_dir():
            # Refused now rather than after the whole run.
            raise UsageError(f"--{flag}: folder {str(Path(path).parent)!r} does not exist")
    optimizer = build_optimizer(args.optimizer, args.lr)
    train, test = load_data(args)
    net, state, history = _starting_point(args, train, optimizer)
    remaining = args.epochs - int(state.epoch)
    if remaining < 1:
        raise UsageError(
            f"the checkpoint has {int(state.epoch)} epochs already; ask for more with --epochs"
        )
    progress = tqdm(
        total=args.epochs,
        initial=int(state.epoch),
        desc="train",
        unit="epoch",
        file=sys.stderr,
        disable=args.no_progress,
    )

    def on_epoch(state: TrainState, history: dict[str, Any]) -> None:
        progress.set_postfix(loss=f"{history['running_loss'][-1]:.4g}", refresh=False)
        progress.update(1)

    # The divergence message lands in the history and the summary; no warning on top.
    with progress, warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        state, history = fit(
            net,
            state,
            (train.x, train.y),
            optimizer=optimizer,
            epochs=remaining,
            batch_size=args.batch_size,
            grad=args.grad,
            validation=(test.x, test.y),
            check_every=args.check_every,
            drop_last=args.drop_last,
            history=history,
            on_epoch=on_epoch,
        )
    if args.save:
        checkpoint.save(args.save, net, state, history)
    failed_checks = [check["epoch"] for check in history["checks"] if not check["ok"]]
    print(_summary(net, history, failed_checks))
    if args.json:
        write_json_atomic(args.json, _record(args, net, history))
    return EXIT_CHECK_FAILED if failed_checks or history["stopped"] else EXIT_OK


def _final(history: dict[str, Any]) -> dict[str, float | int] | None:
    """The last epoch's row of the history, or ``None`` if no epoch finished."""
    if not history["epoch"]:
        return None
    keys = ("epoch", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy")
    return {key: history[key][-1] for key in keys}


def _summary(net: Network, history: dict[str, Any], failed_checks: list[int]) -> str:
    """The lines printed at the end: final train and test metrics, checks, any stop."""
    final = _final(history)
    lines = []
    if final is None:
        lines.append("no epoch finished")
    else:
        lines.append(
            f"epoch {final['epoch']}: train loss {final['train_loss']:.6g}, "
            f"accuracy {final['train_accuracy']:.4f} | test loss {final['validation_loss']:.6g}, "
            f"accuracy {final['validation_accuracy']:.4f}  ({net.loss}, sizes {net.sizes})"
        )
    if history["checks"]:
        passed = len(history["checks"]) - len(failed_checks)
        line = f"gradient checks: {passed} of {len(history['checks'])} passed"
        if failed_checks:
            line += f"; FAILED after epoch(s) {', '.join(map(str, failed_checks))}"
        lines.append(line)
    if history["stopped"]:
        lines.append(f"stopped: {history['stopped']}")
    return "\n".join(lines)


def _record(args: argparse.Namespace, net: Network, history: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` record: the run's settings, the network, the history, the final row."""
    return {
        "command": "train",
        "dataset": args.dataset,
        "network": {**dataclasses.asdict(net), "sizes": list(net.sizes)},
        "optimizer": args.optimizer,
        "lr": args.lr if args.lr is not None else DEFAULT_LR[args.optimizer],
        "batch_size": args.batch_size,
        "grad": args.grad,
        "seed": args.seed,
        "final": _final(history),
        "history": history,
    }
