"""Running a report: the stages, each into a JSON-able record, collected into one record.

``run_report`` runs the *stages* (verification suite, planted-bug kill matrix,
detection power, benchmark, training comparison) through the lower layers
(``netcheck.bench.suite``, ``netcheck.bench``, ``netcheck.training.trainer``) and collects their
plain-dict records into one *report record*; ``load_record`` reads one back from a
``results.json``. Nothing here renders; nothing in ``netcheck.report.tables``,
``figures`` or ``render`` runs a stage.

The report record::

    {"schema_version": 2, "kind": "netcheck.report", "name": str, "created": ISO time,
     "netcheck_version": str, "environment": {device, platform, jax_version, ...,
     load_average (1 minute, at the start)}, "load_average_after": float | None,
     "settings": {...}, "elapsed_s": float,
     "stages": {stage: {"elapsed_s": float, "record": {...}}}}

Each stage's record is the plain dict its lower-layer function returns; readers ignore
fields they do not know, so a stage may add fields without a new schema version.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import optax
from tqdm.auto import tqdm

from netcheck import __version__, datasets
from netcheck.bench import step, suite, timing, verifier_cost
from netcheck.nn import Network
from netcheck.training.trainer import train

Record = dict[str, Any]
StageRunner = Callable[[bool], Record]

SCHEMA_VERSION = 3
"""Version of the report record; ``load_record`` refuses any other. Version 2: the
benchmark's goals are judged by intervals (``met``, ``interval``) instead of ``passed``.
Version 3: detection power per mutation (one element, whole layer) and per part (formula +
precision, precision alone); the verifier-cost stage."""

KIND = "netcheck.report"

STAGES = ("verification", "kill_matrix", "detection_power", "bench", "verifier_cost", "training")
"""The stages of a full report, in the order they run and are shown."""

# ----- running the stages -------------------------------------------------------------


def run_report(
    stages: Mapping[str, StageRunner] | None = None,
    name: str = "latest",
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Record:
    """Run every stage and collect the report record (nothing is written here).

    Args:
        stages: stage name -> ``runner(progress) -> record``; default
            ``default_stages``. An exception in a stage propagates, so that no report
            is ever written from a run that failed halfway.
        name: the report's name (its directory under ``reports/``).
        settings: what the stages were asked to do, recorded as given.
        progress: report progress on stderr: each stage's own tqdm bar when stderr is a
            terminal, else one line per finished stage (bars would fill a log).

    Returns:
        The report record (see the module docstring).
    """
    if stages is None:
        stages, settings = default_stages(), REPORT_SETTINGS
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown report stage(s) {unknown}; known: {', '.join(STAGES)}")
    check_name(name)
    started = time.perf_counter()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    environment = timing.environment()  # its load average is the one at the start
    bars = progress and sys.stderr.isatty()
    results: Record = {}
    for stage in STAGES:
        if stage not in stages:
            continue
        clock = time.perf_counter()
        record = stages[stage](bars)
        elapsed = time.perf_counter() - clock
        results[stage] = {"elapsed_s": elapsed, "record": record}
        if progress and not bars:
            print(f"report: {stage} done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "name": name,
        "created": created,
        "netcheck_version": __version__,
        "environment": environment,
        "load_average_after": timing.environment()["load_average"],
        "settings": dict(settings or {}),
        "elapsed_s": time.perf_counter() - started,
        "stages": results,
    }


def verifier_cost_stage(grid: str = "report", rounds: int = 5) -> StageRunner:
    """The verifier's cost: ``netcheck.bench.verifier_cost.run_verifier_bench`` on ``grid``."""
    if grid not in verifier_cost.GRIDS:  # refuse an unknown grid now, not after other stages
        raise ValueError(f"unknown verifier grid {grid!r}; known: {', '.join(verifier_cost.GRIDS)}")
    return lambda progress: verifier_cost.run_verifier_bench(grid, rounds, progress)


def bench_stage(grid: str | step.Grid = "report") -> StageRunner:
    """The benchmark stage: ``netcheck.bench.step.run_bench`` on ``grid``."""
    grid = step.resolve_grid(grid)  # refuse an unknown grid now, not after other stages
    return lambda progress: step.run_bench(grid, progress=progress)


TRAINING = {
    "dataset": "moons",
    "n_samples": 400,
    "test_fraction": 0.25,
    "sizes": (2, 16, 16, 1),
    "activation": "tanh",
    "output_activation": "sigmoid",
    "loss": "binary_cross_entropy",
    "learning_rate": 0.5,
    "epochs": 40,
    "batch_size": 16,
    "seed": 0,
}
"""The short training comparison of ``netcheck report``: plain SGD on two moons."""


def training_comparison(settings: Mapping[str, Any] = TRAINING, progress: bool = False) -> Record:
    """Train the same network from the same start twice, manual gradient vs ``jax.grad``.

    Same data, parameters, shuffles and optimizer (``optax.sgd``); only the gradient's
    source differs, so the two loss curves should coincide up to round-off.

    Args:
        settings: as ``TRAINING``.
        progress: a tqdm bar on stderr, one step per run (only when stderr is a terminal).

    Returns:
        ``{"settings": ..., "histories": {"manual": history, "autodiff": history},
        "elapsed_s": {grad: seconds}, "max_abs_train_loss_difference": float,
        "final": {grad: {"train_loss", "validation_loss", "validation_accuracy"}}}``; a
        history is ``netcheck.training.trainer.train``'s (per-epoch lists).

    Raises:
        ValueError: ``settings`` lacks a key of ``TRAINING`` or has an unknown one.
    """
    if set(settings) != set(TRAINING):
        missing, extra = (
            sorted(set(TRAINING) - set(settings)),
            sorted(set(settings) - set(TRAINING)),
        )
        raise ValueError(
            f"training settings: missing keys {missing}, unknown keys {extra}; "
            f"expected {sorted(TRAINING)}"
        )
    data = datasets.load(
        settings["dataset"], n_samples=settings["n_samples"], seed=settings["seed"]
    )
    split = datasets.train_test_split(
        data, test_fraction=settings["test_fraction"], seed=settings["seed"]
    )
    train_set, test_set = datasets.standardize(*split)
    net = Network(
        sizes=tuple(settings["sizes"]),
        activation=settings["activation"],
        output_activation=settings["output_activation"],
        loss=settings["loss"],
    )
    key = jax.random.key(settings["seed"])
    params = net.init(key)
    histories, elapsed = {}, {}
    # disable=None: no bar when stderr is not a terminal.
    runs = tqdm(
        ("manual", "autodiff"),
        desc="training",
        disable=None if progress else True,
        file=sys.stderr,
    )
    for grad in runs:
        clock = time.perf_counter()
        _, histories[grad] = train(
            net,
            params,
            (train_set.x, train_set.y),
            optimizer=optax.sgd(settings["learning_rate"]),
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            key=jax.random.fold_in(key, 1),
            grad=grad,
            validation=(test_set.x, test_set.y),
            eval_every=1,  # the curves compare the whole training set's loss, every epoch
        )
        elapsed[grad] = time.perf_counter() - clock
    differences = [
        abs(a - b)
        for a, b in zip(
            histories["manual"]["train_loss"], histories["autodiff"]["train_loss"], strict=True
        )
    ]
    return {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "histories": histories,
        "elapsed_s": elapsed,
        "max_abs_train_loss_difference": max(differences),
        "final": {
            grad: {
                "train_loss": history["train_loss"][-1],
                "validation_loss": history["validation_loss"][-1],
                "validation_accuracy": history["validation_accuracy"][-1],
            }
            for grad, history in histories.items()
        },
    }


def verification_stage(quick: bool = True, max_cases: int | None = None) -> StageRunner:
    """The verification suite: ``suite.run_suite(suite.default_cases(quick=quick))``.

    Args:
        quick: the quick selection of cases.
        max_cases: keep only the first cases (for a smoke run).
    """

    def run(progress: bool) -> Record:
        cases = suite.default_cases(quick=quick)[:max_cases]
        return suite.run_suite(cases, progress=progress)

    return run


def kill_matrix_stage(dtypes: Sequence[str] = ("float32", "float64")) -> StageRunner:
    """The planted-bug kill matrix: ``suite.kill_matrix(dtypes)``."""
    return lambda progress: suite.kill_matrix(dtypes=tuple(dtypes), progress=progress)


def detection_power_stage(
    dtypes: Sequence[str] = ("float64", "float32", "bfloat16", "float16"),
    n_cases: int = 1000,
    check_grads_cases: int = 200,
) -> StageRunner:
    """Detection power per dtype beside check_grads: ``suite.detection_power(...)``."""
    return lambda progress: suite.detection_power(
        dtypes=tuple(dtypes),
        n_cases=n_cases,
        check_grads_cases=check_grads_cases,
        progress=progress,
    )


REPORT_SETTINGS: dict[str, Any] = {
    "verification": {"quick": True},
    "kill_matrix": {"dtypes": ["float32"]},
    "detection_power": {
        "dtypes": ["float64", "float32", "bfloat16", "float16"],
        "n_cases": 4,
        "check_grads_cases": 2,
    },
    "bench": {"grid": "report"},
    "verifier_cost": {"grid": "report", "rounds": 3},
    "training": {k: list(v) if isinstance(v, tuple) else v for k, v in TRAINING.items()},
}
"""What ``netcheck report`` runs by default: every stage reduced (the quick suite, the kill
matrix in float32, 4 detection-power cases per dtype (the first four power specs: every
output and loss), 2 of them also through check_grads, the reduced ``report`` benchmark and
verifier-cost grids). On two idle CPU cores it takes about 4 minutes, most of it compiling
(one program per detection-power spec and dtype, one per verifier-cost model and method).
The full versions are the stage functions' defaults."""


def default_stages(
    settings: Mapping[str, Mapping[str, Any]] = REPORT_SETTINGS,
) -> dict[str, StageRunner]:
    """The stages of ``netcheck report``.

    Args:
        settings: per stage, the keyword arguments of its ``*_stage`` function (bench:
            ``grid``; training: a ``TRAINING``-like dict); default
            ``REPORT_SETTINGS``.

    Returns:
        stage name -> runner, for every stage in ``settings``.
    """
    builders: dict[str, Callable[..., StageRunner]] = {
        "verification": verification_stage,
        "kill_matrix": kill_matrix_stage,
        "detection_power": detection_power_stage,
        "bench": lambda grid="report": bench_stage(grid),
        "verifier_cost": verifier_cost_stage,
        "training": lambda **training: (
            lambda progress: training_comparison({**TRAINING, **training}, progress)
        ),
    }
    unknown = sorted(set(settings) - set(builders))
    if unknown:
        raise ValueError(f"unknown report stage(s) {unknown}; known: {', '.join(STAGES)}")
    return {stage: builders[stage](**options) for stage, options in settings.items()}


# ----- the record on disk -------------------------------------------------------------


def load_record(path: str | os.PathLike[str]) -> Record:
    """Read a report record written by ``write_report`` (its ``results.json``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not a netcheck report, or another schema version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"results file {str(path)!r} is not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"results file {str(path)!r} is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise ValueError(
            f"results file {str(path)!r} is not a netcheck report "
            f"(expected a JSON object with kind {KIND!r})"
        )
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"results file {str(path)!r} has schema_version {version!r}; "
            f"this netcheck reads schema_version {SCHEMA_VERSION}"
        )
    if not isinstance(record.get("stages"), dict):
        raise ValueError(f"results file {str(path)!r} has no 'stages' object")
    return record


def check_name(name: Any) -> None:
    """Refuse a report name that is not a plain folder name (``latest``, ``example-cpu``)."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or (os.sep in name)
    ):
        raise ValueError(f"report name must be a plain folder name like 'latest', got {name!r}")
