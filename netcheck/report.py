"""The comparison report: run the stages, keep one JSON record, render it as HTML and Markdown.

A report is built in two separate steps:

1. :func:`run_report` runs the *stages* (verification suite, planted-bug kill matrix,
   detection power, benchmark, training comparison) through the lower layers
   (:mod:`netcheck.suite`, :mod:`netcheck.bench`, :mod:`netcheck.trainer`) and collects their
   JSON-able records into one *report record* with a schema version;
2. :func:`write_report` renders a record, and nothing but the record, into
   ``reports/<name>/``: ``results.json``, ``report.md``, ``index.html`` (self-contained
   apart from the PNG figures beside it, which it links; no server needed) and the figures
   of :mod:`netcheck.figures`.

``netcheck report --from results.json`` is step 2 alone. Writing is atomic: the directory is
built under a temporary name beside its destination and renamed into place, so a failed
or interrupted run leaves the previous report (or nothing) behind, never half of one.

The report record::

    {"schema_version": 1, "kind": "netcheck.report", "name": str, "created": ISO time,
     "netcheck_version": str, "environment": {device, platform, jax_version, ...},
     "settings": {...}, "elapsed_s": float,
     "stages": {stage: {"elapsed_s": float, "record": {...}}}}
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import optax
from tqdm.auto import tqdm

from netcheck import __version__, bench, datasets, suite
from netcheck._io import make_temporary_directory, write_bytes_atomic
from netcheck.figures import FIGURES, png_bytes
from netcheck.network import Network
from netcheck.trainer import train

Record = dict[str, Any]
StageRunner = Callable[[bool], Record]

SCHEMA_VERSION = 1
"""Version of the report record; :func:`load_record` refuses any other."""

KIND = "netcheck.report"

STAGES = ("verification", "kill_matrix", "detection_power", "bench", "training")
"""The stages of a full report, in the order they run and are shown."""

STAGE_TITLES = {
    "verification": "Verification suite",
    "kill_matrix": "Planted-bug kill matrix",
    "detection_power": "Detection power",
    "bench": "Benchmark",
    "training": "Training: manual vs jax.grad",
}


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
            :func:`default_stages`. An exception in a stage propagates, so that no report
            is ever written from a run that failed halfway.
        name: the report's name (its directory under ``reports/``).
        settings: what the stages were asked to do, recorded as given.
        progress: show each stage's own tqdm bar on stderr.

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
    results: Record = {}
    for stage in STAGES:
        if stage not in stages:
            continue
        clock = time.perf_counter()
        record = stages[stage](progress)
        results[stage] = {"elapsed_s": time.perf_counter() - clock, "record": record}
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "name": name,
        "created": created,
        "netcheck_version": __version__,
        "environment": bench.environment(),
        "settings": dict(settings or {}),
        "elapsed_s": time.perf_counter() - started,
        "stages": results,
    }


def bench_stage(grid: str | bench.Grid = "report") -> StageRunner:
    """The benchmark stage: :func:`netcheck.bench.run_bench` on ``grid``."""
    grid = bench.resolve_grid(grid)  # refuse an unknown grid now, not after other stages
    return lambda progress: bench.run_bench(grid, progress=progress)


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
        settings: as :data:`TRAINING`.
        progress: a tqdm bar on stderr, one step per run.

    Returns:
        ``{"settings": ..., "histories": {"manual": history, "autodiff": history},
        "elapsed_s": {grad: seconds}, "max_abs_train_loss_difference": float,
        "final": {grad: {"train_loss", "validation_loss", "validation_accuracy"}}}``; a
        history is :func:`netcheck.trainer.train`'s (per-epoch lists).

    Raises:
        ValueError: ``settings`` lacks a key of :data:`TRAINING` or has an unknown one.
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
    for grad in tqdm(
        ("manual", "autodiff"), desc="training", disable=not progress, file=sys.stderr
    ):
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
        "n_cases": 8,
        "check_grads_cases": 2,
    },
    "bench": {"grid": "report"},
    "training": {k: list(v) if isinstance(v, tuple) else v for k, v in TRAINING.items()},
}
"""What ``netcheck report`` runs by default: every stage reduced so that the whole report
takes about 3 minutes on two idle CPU cores (the quick suite, the kill matrix in float32,
8 detection-power cases per dtype (one per
spec), 2 of them also through check_grads, the reduced ``report`` benchmark grid). The full
versions are the stage functions' defaults."""


def default_stages(
    settings: Mapping[str, Mapping[str, Any]] = REPORT_SETTINGS,
) -> dict[str, StageRunner]:
    """The stages of ``netcheck report``.

    Args:
        settings: per stage, the keyword arguments of its ``*_stage`` function (bench:
            ``grid``; training: a :data:`TRAINING`-like dict); default
            :data:`REPORT_SETTINGS`.

    Returns:
        stage name -> runner, for every stage in ``settings``.
    """
    builders: dict[str, Callable[..., StageRunner]] = {
        "verification": verification_stage,
        "kill_matrix": kill_matrix_stage,
        "detection_power": detection_power_stage,
        "bench": lambda grid="report": bench_stage(grid),
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
    """Read a report record written by :func:`write_report` (its ``results.json``).

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


def write_report(record: Record, directory: str | os.PathLike[str]) -> Path:
    """Render ``record`` into ``directory``, atomically.

    Everything is first written into a temporary directory beside ``directory``; only
    when every file is complete is it renamed into place (replacing an older report).
    On any error the temporary directory is removed and ``directory`` is left untouched.

    Args:
        record: a report record (from :func:`run_report` or :func:`load_record`).
        directory: where the report goes, e.g. ``reports/latest``.

    Returns:
        ``directory`` as a :class:`~pathlib.Path`.
    """
    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    # The folder and its files get the user's umask, as any folder and file they make.
    staging = make_temporary_directory(parent, prefix=f".{directory.name}.tmp-")
    try:
        render_into(record, staging)
        _replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is swapped out, then removed."""
    if not target.exists():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.rename(target, old / target.name)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def render_into(record: Record, directory: Path) -> list[str]:
    """Write ``results.json``, the figures, ``report.md`` and ``index.html`` into a folder.

    Returns:
        The figure file names written, in display order.
    """
    # Compact: the record of a default report is ~40% smaller without indentation.
    text = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    write_bytes_atomic(directory / "results.json", text.encode("utf-8"))
    figures = []
    for spec in FIGURES:
        stage = record["stages"].get(spec.stage)
        if stage is None:
            continue
        figure = spec.render(stage["record"])
        write_bytes_atomic(directory / spec.filename, png_bytes(figure))
        figures.append(spec.filename)
    write_bytes_atomic(directory / "report.md", render_markdown(record, figures).encode("utf-8"))
    write_bytes_atomic(directory / "index.html", render_html(record, figures).encode("utf-8"))
    return figures


# ----- numbers and tables --------------------------------------------------------------


def fmt(value: Any) -> str:
    """How every number appears in a rendered report (so tests can find it again).

    Floats to 4 significant digits, integers in full, booleans as pass/FAIL, None as "–".
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


def fmt_ms(seconds: float | None) -> str:
    """Seconds shown as milliseconds, through :func:`fmt`."""
    return fmt(None if seconds is None else seconds * 1e3)


def fmt_bytes(value: int | None) -> str:
    """Bytes shown in KiB, through :func:`fmt`."""
    return fmt(None if value is None else value / 1024)


class Table:
    """A table both renderers draw: a title, column headings and rows of strings."""

    def __init__(
        self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], note: str = ""
    ) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.note = note


def goal_table(goals: Sequence[Record]) -> Table:
    """The performance goals: name, target, measured value, verdict, where."""
    return Table(
        "Performance goals",
        ["goal", "target", "measured", "verdict", "where"],
        [
            [g["name"], g["target"], fmt(g["measured"]), _verdict(g["passed"]), g["detail"]]
            for g in goals
        ],
    )


def bench_table(record: Record) -> Table:
    """One row per shape: times of manual, jax.grad and the roofline; ratios; FLOP/s; memory."""
    rows = []
    for row in record["results"]:
        m = row["methods"]
        manual, auto, roof = m.get("manual"), m.get("autodiff"), m["roofline"]
        rows.append(
            [
                bench_label(row),
                fmt(row["flops"]),
                fmt_ms(manual and manual["median_s"]),
                fmt_ms(auto and auto["median_s"]),
                fmt_ms(roof["median_s"]),
                fmt(row.get("manual_over_autodiff")),
                fmt(manual and manual["time_over_roofline"]),
                fmt(manual and manual["flops_per_s"] / 1e9),
                fmt(roof["flops_per_s"] / 1e9),
                fmt_bytes(manual and manual["temp_bytes"]),
                fmt_bytes(auto and auto["temp_bytes"]),
                fmt(_ratio(manual and manual["xla_flops"], auto and auto["xla_flops"])),
            ]
        )
    return Table(
        "Step time per shape (median of interleaved rounds)",
        [
            "shape",
            "FLOPs",
            "manual ms",
            "jax.grad ms",
            "roofline ms",
            "manual/jax.grad",
            "manual/roofline",
            "manual GFLOP/s",
            "roofline GFLOP/s",
            "manual temp KiB",
            "jax.grad temp KiB",
            "XLA FLOPs manual/jax.grad",
        ],
        rows,
        note="FLOPs: the matrix products of one forward-plus-backward step. Roofline: those "
        "products alone, timed in the same run. Ratios are paired: the median over rounds of "
        "the two times measured back to back in each round. Temp: compiled temporary memory. "
        "XLA FLOPs: XLA's own count of every operation in the compiled programs.",
    )


def slow_methods_table(record: Record) -> Table:
    """The slow methods where they ran: median time and multiple of the roofline."""
    slow = [
        m
        for m in ("literal", "numpy_loop", "finite_differences")
        if any(m in row["methods"] for row in record["results"])
    ]
    rows = []
    for row in record["results"]:
        if not any(m in row["methods"] for m in slow):
            continue
        cells = [bench_label(row)]
        for method in ("manual", *slow):
            stats = row["methods"].get(method)
            cells += [
                fmt_ms(stats and stats["median_s"]),
                fmt(stats and stats["time_over_roofline"]),
            ]
        rows.append(cells)
    columns = ["shape"]
    for method in ("manual", *slow):
        columns += [f"{method} ms", f"{method}/roofline"]
    return Table("The other methods (small shapes only)", columns, rows)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else numerator / denominator


def bench_label(row: Record) -> str:
    """``w256 L2 n32 float32``: width, depth, batch, dtype of a bench row."""
    return f"w{row['width']} L{row['depth']} n{row['batch']} {row['dtype']}"


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else fmt(bool(passed))


def stage_tables(stage: str, record: Record) -> list[Table]:
    """The tables of one stage's record."""
    if stage == "bench":
        tables = [goal_table(record["goals"]), bench_table(record)]
        slow = slow_methods_table(record)
        return [*tables, slow] if slow.rows else tables
    if stage == "training":
        return [training_table(record)]
    if stage == "verification":
        tables = [verification_table(record)]
        failures = verification_failures_table(record)
        return [*tables, failures] if failures.rows else tables
    if stage == "kill_matrix":
        return [kill_table(record)]
    if stage == "detection_power":
        return [power_table(record)]
    return []


def verification_table(record: Record) -> Table:
    """Per dtype: cases, failures, kinks, and the median and worst distance / tolerance."""
    rows = []
    dtypes = sorted({c["dtype"] for c in record["cases"]})
    for dtype in dtypes:
        cases = [c for c in record["cases"] if c["dtype"] == dtype]
        ratios = [c["worst_ratio"] for c in cases]
        finite = [r for r in ratios if r is not None]
        rows.append(
            [
                dtype,
                fmt(len(cases)),
                fmt(sum(not c["ok"] for c in cases)),
                fmt(sum(bool(c["kink"]) for c in cases)),
                fmt(statistics.median(finite) if finite else None),
                "nan/inf" if len(finite) < len(ratios) else fmt(max(finite)),
            ]
        )
    return Table(
        "Manual gradient vs the float64 truth, per dtype",
        [
            "dtype",
            "cases",
            "failed",
            "kinks",
            "median worst distance/tolerance",
            "max worst distance/tolerance",
        ],
        rows,
        note=f"{record['n_cases']} cases, {record['n_failed']} failed. A case passes when "
        "every layer's distance to float64 autodiff is within "
        f"{fmt(record['constants']['noise_multiple'])} x autodiff's own error at that dtype "
        "(distance/tolerance below 1).",
    )


def verification_failures_table(record: Record) -> Table:
    """The failed cases, with the first bad layer and the verifier's reasons."""
    rows = [
        [c["id"], c["dtype"], fmt(c["first_bad_layer"]), "; ".join(c["reasons"])]
        for c in record["cases"]
        if not c["ok"]
    ]
    return Table("Failed cases", ["case", "dtype", "first bad layer", "reasons"], rows)


def kill_table(record: Record) -> Table:
    """Per planted bug: what it corrupts, on how many cases it ran, caught, localised."""
    rows = [
        [
            m["name"],
            m["corrupts"],
            fmt(len(m["cases"])),
            fmt(sum(c["killed"] for c in m["cases"])),
            fmt(sum(c["localised"] for c in m["cases"])),
            m["description"],
        ]
        for m in record["mutants"]
    ]
    control = record["control"]
    return Table(
        "Planted bugs",
        ["mutant", "corrupts", "cases", "caught", "right layer named", "the mistake"],
        rows,
        note=f"dtypes {', '.join(record['dtypes'])}. All caught: {fmt(record['all_killed'])}; "
        f"all localised: {fmt(record['all_localised'])}; correct code passes on "
        f"{sum(c['ok'] for c in control)} of {len(control)} cases.",
    )


def caught(power: Record) -> str:
    """The smallest ε caught in every case, marked when correct gradients were flagged too.

    A checker that flags everything "catches" every ε; the mark keeps that from reading as
    sensitivity.
    """
    value = fmt(power["smallest_detected_all"])
    return f"{value} (also flags correct ones)" if power["false_alarms"] else value


def power_table(record: Record) -> Table:
    """Per dtype: false alarms and the smallest scaling caught, netcheck vs check_grads."""
    rows = []
    for entry in record["dtypes"]:
        theirs = entry["check_grads"]
        rows.append(
            [
                entry["dtype"],
                fmt(entry["n_cases"]),
                fmt(entry["false_alarms"]),
                fmt(entry["kinks"]),
                caught(entry),
                fmt(entry["median_threshold"]),
                fmt(theirs["n_cases"]),
                fmt(theirs["false_alarms"]),
                caught(theirs),
            ]
        )
    return Table(
        "Detection power: one layer's gradient scaled by 1 + ε",
        [
            "dtype",
            "cases",
            "false alarms",
            "kinks",
            "smallest ε caught in every case",
            "median per-case threshold",
            "check_grads cases",
            "check_grads false alarms",
            "check_grads smallest ε caught in every case",
        ],
        rows,
        note="ε = 0 is the correct gradient: a failure there is a false alarm. check_grads "
        "runs on the first cases only (it is slow), at its default tolerances.",
    )


def training_table(record: Record) -> Table:
    """Final losses and accuracy of the manual and jax.grad runs, and their largest gap."""
    rows = [
        [
            grad,
            fmt(final["train_loss"]),
            fmt(final["validation_loss"]),
            fmt(final["validation_accuracy"]),
            fmt(record["elapsed_s"][grad]),
        ]
        for grad, final in record["final"].items()
    ]
    s = record["settings"]
    return Table(
        "Training on the same data from the same start",
        [
            "gradient",
            "final train loss",
            "final validation loss",
            "validation accuracy",
            "wall time s (with compiling)",
        ],
        rows,
        note=f"{s['dataset']} ({s['n_samples']} examples), sizes {s['sizes']}, "
        f"{s['activation']}/{s['output_activation']}, {s['loss']}, sgd({s['learning_rate']}), "
        f"{s['epochs']} epochs of batch {s['batch_size']}. Largest |manual - jax.grad| "
        f"train loss over the epochs: {fmt(record['max_abs_train_loss_difference'])}.",
    )


def summary_lines(record: Record) -> list[str]:
    """The report's opening lines: where it ran, what each stage took, the bench grid."""
    env = record["environment"]
    lines = [
        f"Created {record['created']} by netcheck {record['netcheck_version']} on "
        f"{env['device']} ({env['platform']}, {env['device_count']} device(s)), "
        f"JAX {env['jax_version']}, matmul precision {env['matmul_precision']}; "
        f"all stages took {fmt(record['elapsed_s'])} s.",
    ]
    if env.get("load_average") is not None:
        lines.append(
            f"Load average when the run started: {fmt(env['load_average'])} on "
            f"{env['cpu_count']} CPU(s); timings are only as quiet as the machine was."
        )
    for stage in STAGES:
        entry = record["stages"].get(stage)
        if entry is None:
            lines.append(f"{STAGE_TITLES[stage]}: not run.")
            continue
        options = record["settings"].get(stage)
        shown = (
            f" (settings: {', '.join(f'{k}={v}' for k, v in options.items())})"
            if isinstance(options, dict) and options and stage != "training"  # stated below
            else ""
        )
        lines.append(f"{STAGE_TITLES[stage]}: {fmt(entry['elapsed_s'])} s{shown}.")
    if "bench" in record["stages"]:
        grid = record["stages"]["bench"]["record"]["grid"]
        lines.append(
            f"Benchmark grid {grid['name']!r}: widths {grid['widths']}, depths "
            f"{grid['depths']}, batches {grid['batches']}, dtypes {grid['dtypes']}"
            + (f", steps up to {fmt(grid['max_flops'])} FLOPs" if grid["max_flops"] else "")
            + f"; at least {grid['rounds']} interleaved rounds per shape."
        )
    return lines


def _closing_note(record: Record) -> list[str]:
    bench_entry = record["stages"].get("bench")
    if bench_entry is None:
        return ["No benchmark in this report, so no performance goals were judged."]
    goals = bench_entry["record"]["goals"]
    met = sum(1 for g in goals if g["passed"])
    lines = [f"{met} of {len(goals)} performance goals met on {record['environment']['device']}:"]
    lines += [
        f"{g['name']}: {fmt(g['measured'])} (target {g['target']}, {_verdict(g['passed'])})."
        for g in goals
    ]
    ratios = [
        r["manual_over_autodiff"]
        for r in bench_entry["record"]["results"]
        if "manual_over_autodiff" in r
    ]
    if ratios:
        lines.append(
            f"manual/jax.grad over {len(ratios)} shapes: median {fmt(statistics.median(ratios))}, "
            f"min {fmt(min(ratios))}, max {fmt(max(ratios))}. Timings on a shared machine are "
            "noisy; the methods of a shape were interleaved so that noise hits them alike."
        )
    work = [
        _ratio(r["methods"]["manual"]["xla_flops"], r["methods"]["autodiff"]["xla_flops"])
        for r in bench_entry["record"]["results"]
        if "manual" in r["methods"] and "autodiff" in r["methods"]
    ]
    work = [w for w in work if w is not None]
    if work:
        lines.append(
            "Noise-free comparison of the compiled programs: XLA's FLOP count of manual over "
            f"jax.grad's ranges from {fmt(min(work))} to {fmt(max(work))} over the shapes."
        )
    return lines


def check_outcomes(record: Record) -> dict[str, bool | None]:
    """Every pass/fail a report contains: correctness checks, then ``goal:``-prefixed goals.

    Returns:
        name -> True (passed), False (failed) or None (could not be judged).
    """
    outcomes: dict[str, bool | None] = {}
    stages = {stage: entry["record"] for stage, entry in record["stages"].items()}
    if "verification" in stages:
        outcomes["verification: every case agrees with the float64 truth"] = stages["verification"][
            "ok"
        ]
    if "kill_matrix" in stages:
        kill = stages["kill_matrix"]
        outcomes["kill matrix: every planted bug caught"] = kill["all_killed"]
        outcomes["kill matrix: every planted bug localised"] = kill["all_localised"]
        outcomes["kill matrix: the correct code passes"] = kill["control_ok"]
    if "detection_power" in stages:
        alarms = sum(entry["false_alarms"] for entry in stages["detection_power"]["dtypes"])
        outcomes["detection power: no false alarm on correct gradients"] = alarms == 0
    if "bench" in stages:
        for goal in stages["bench"]["goals"]:
            outcomes[f"goal: {goal['name']}"] = goal["passed"]
    return outcomes


def verdict_lines(record: Record) -> list[str]:
    """One line per check and goal, for the terminal."""
    return [f"[{_verdict(passed)}] {name}" for name, passed in check_outcomes(record).items()]


# ----- the renderers -----------------------------------------------------------------


def _figure_captions() -> dict[str, str]:
    return {spec.filename: spec.caption for spec in FIGURES}


def _figure_stage() -> dict[str, str]:
    return {spec.filename: spec.stage for spec in FIGURES}


def render_markdown(record: Record, figures: Sequence[str]) -> str:
    """The report as Markdown, figures linked beside it."""
    captions, figure_stage = _figure_captions(), _figure_stage()
    out = [f"# netcheck report: {record['name']}", ""]
    out += [f"- {line}" for line in summary_lines(record)] + [""]
    for stage in STAGES:
        entry = record["stages"].get(stage)
        if entry is None:
            continue
        out += [f"## {STAGE_TITLES[stage]}", ""]
        for table in stage_tables(stage, entry["record"]):
            out += [f"### {table.title}", "", _markdown_table(table), ""]
            if table.note:
                out += [table.note, ""]
        for filename in figures:
            if figure_stage[filename] == stage:
                out += [f"![{captions[filename]}]({filename})", "", f"*{captions[filename]}*", ""]
    out += ["## Closing note", ""] + [f"- {line}" for line in _closing_note(record)] + [""]
    return "\n".join(out)


def _markdown_table(table: Table) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join(
        [line(table.columns), line(["---"] * len(table.columns))] + [line(r) for r in table.rows]
    )


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-style: italic; color: #555; }
.note { color: #555; font-size: 0.85em; }
"""


def render_html(record: Record, figures: Sequence[str]) -> str:
    """The report as one HTML page; the PNG figures beside it are linked (no server needed)."""
    captions, figure_stage = _figure_captions(), _figure_stage()
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>netcheck report: {esc(record['name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>netcheck report: {esc(record['name'])}</h1>",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary_lines(record)) + "</ul>",
    ]
    for stage in STAGES:
        entry = record["stages"].get(stage)
        if entry is None:
            continue
        out.append(f"<h2>{esc(STAGE_TITLES[stage])}</h2>")
        for table in stage_tables(stage, entry["record"]):
            out.append(_html_table(table))
        for filename in figures:
            if figure_stage[filename] == stage:
                out.append(
                    f'<figure><img src="{esc(filename)}" alt="{esc(captions[filename])}">'
                    f"<figcaption>{esc(captions[filename])}</figcaption></figure>"
                )
    out.append("<h2>Closing note</h2>")
    out.append(
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in _closing_note(record)) + "</ul>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    return f"<h3>{esc(table.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


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
