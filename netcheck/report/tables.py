"""Tables and the checklist of a report: a record in, strings out; nothing is run here.

Every number a report shows passes through ``fmt`` (so tests can find it again), and
every table is a ``Table`` that both the HTML and the Markdown template draw. The
``checklist`` is the verdict: correctness checks (PASS/FAIL) and performance goals
(target met / target missed); the terminal prints each check's ``line``, and the page
opens with the same lines. ``SECTIONS`` gives each stage its title and its tables.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netcheck.bench.step import row_label

Record = dict[str, Any]


# ----- numbers -------------------------------------------------------------------------


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
    """Seconds shown as milliseconds, through ``fmt``."""
    return fmt(None if seconds is None else seconds * 1e3)


def fmt_bytes(value: int | None) -> str:
    """Bytes shown in KiB, through ``fmt``."""
    return fmt(None if value is None else value / 1024)


def fmt_interval(interval: Sequence[float] | None) -> str:
    """``[low, high]`` as ``low to high``, through ``fmt``."""
    return "–" if interval is None else f"{fmt(interval[0])} to {fmt(interval[1])}"


_SHORT = 24
_NUMBER = re.compile(r"^(–|nan|-?inf|-?\d+(\.\d*)?(e[-+]?\d+)?)$")


@dataclass
class Table:
    """A table both templates draw.

    Attributes:
        title: the heading above it.
        columns: column headings.
        rows: rows of cell strings, one per column.
        note: a sentence or two under it.
        notation: indices of columns written in the lecture's notation (``δ^{L-1}``,
            ``W_ℓ``), which the HTML draws with superscripts and subscripts.
        legend: a key to a figure's short ids, drawn after the section's figures.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    notation: frozenset[int] = field(default_factory=frozenset)
    legend: bool = False

    @property
    def numeric(self) -> list[bool]:
        """Per column, whether every cell is a number (right-aligned; text is left-aligned)."""
        return [
            bool(self.rows) and all(_NUMBER.match(row[i]) for row in self.rows)
            for i in range(len(self.columns))
        ]

    @property
    def short(self) -> list[bool]:
        """Per column, whether every cell is short enough to keep on one line."""
        return [all(len(row[i]) <= _SHORT for row in self.rows) for i in range(len(self.columns))]


# ----- the checklist -------------------------------------------------------------------

GOAL_VERDICTS = {True: "target met", False: "target missed", None: "n/a"}
"""How a performance goal's ``met`` reads: a target is met or missed, never "FAIL"."""

CHECK_VERDICTS = {True: "PASS", False: "FAIL", None: "n/a"}
"""How a correctness check reads."""


@dataclass(frozen=True)
class Check:
    """One line of the verdict.

    Attributes:
        kind: ``"correctness"`` (a failure exits 1) or ``"performance"`` (a missed target
            exits 1 only with ``--strict``).
        name: what is checked.
        ok: True (passed / met), False (failed / missed), None (could not be judged).
        line: the line the terminal prints and the page shows.
    """

    kind: str
    name: str
    ok: bool | None
    line: str


def goal_line(goal: Mapping[str, Any]) -> str:
    """``[target met] name: measured, interval a to b (target <= x; where)``."""
    interval = goal.get("interval")
    spread = "" if interval is None else f", 95% interval {fmt_interval(interval)}"
    return (
        f"[{GOAL_VERDICTS[goal['met']]}] {goal['name']}: {fmt(goal['measured'])}{spread} "
        f"(target {goal['target']}; {goal['where']})"
    )


def _correctness(name: str, ok: bool | None, value: str) -> Check:
    return Check("correctness", name, ok, f"[{CHECK_VERDICTS[ok]}] {name}: {value}")


def checklist(record: Record) -> list[Check]:
    """Every verdict a report holds: correctness checks first, then performance goals.

    Correctness: the suite agrees with the float64 truth; every planted bug is caught and
    named at its layer; the correct code passes the kill cases; detection power raised no
    false alarm on a correct gradient. Performance: the benchmark's goals as judged by
    ``netcheck.bench.step.performance_goals`` (by intervals, not by one median), and the
    verifier's cost goals (``netcheck.bench.verifier_cost.verifier_goals``).
    """
    stages = {stage: entry["record"] for stage, entry in record["stages"].items()}
    checks = []
    if "verification" in stages:
        suite = stages["verification"]
        agree = suite["n_cases"] - suite["n_failed"]
        checks.append(
            _correctness(
                "verification: every case agrees with the float64 truth",
                suite["ok"],
                f"{agree} of {suite['n_cases']} cases agree",
            )
        )
    if "kill_matrix" in stages:
        kill = stages["kill_matrix"]
        mutants, control = kill["mutants"], kill["control"]
        killed = sum(m["killed"] for m in mutants)
        localised = sum(m["localised"] for m in mutants)
        clean = sum(c["ok"] for c in control)
        checks += [
            _correctness(
                "kill matrix: every planted bug caught",
                kill["all_killed"],
                f"{killed} of {len(mutants)} caught on every case",
            ),
            _correctness(
                "kill matrix: every planted bug named at its layer",
                kill["all_localised"],
                f"{localised} of {len(mutants)} named at the right layer on every case",
            ),
            _correctness(
                "kill matrix: the correct code passes",
                kill["control_ok"],
                f"{clean} of {len(control)} cases pass",
            ),
        ]
    if "detection_power" in stages:
        entries = stages["detection_power"]["dtypes"]
        alarms = sum(entry["false_alarms"] for entry in entries)
        cases = sum(entry["n_cases"] for entry in entries)
        checks.append(
            _correctness(
                "detection power: no false alarm on correct gradients",
                alarms == 0,
                f"{alarms} false alarms in {cases} correct cases",
            )
        )
    for stage in ("bench", "verifier_cost"):
        if stage in stages:
            checks += [
                Check("performance", goal["name"], goal["met"], goal_line(goal))
                for goal in stages[stage]["goals"]
            ]
    return checks


def headline(checks: Sequence[Check]) -> list[tuple[str, bool | None]]:
    """The verdict in two lines, each with its outcome (None: nothing judged).

    ``Correctness: PASS (5 checks)`` or ``Correctness: FAIL (2 of 5 checks failed)``;
    ``Performance: 3 of 4 targets met``.
    """
    correctness = [c for c in checks if c.kind == "correctness"]
    performance = [c for c in checks if c.kind == "performance"]
    lines: list[tuple[str, bool | None]] = []
    failed = sum(c.ok is False for c in correctness)
    if correctness:
        text = (
            f"Correctness: FAIL ({failed} of {len(correctness)} checks failed)"
            if failed
            else f"Correctness: PASS ({len(correctness)} checks)"
        )
        lines.append((text, not failed))
    else:
        lines.append(("Correctness: nothing checked in this report", None))
    if performance:
        met = sum(c.ok is True for c in performance)
        missed = sum(c.ok is False for c in performance)
        unjudged = len(performance) - met - missed
        text = (
            f"Performance: {met} of {len(performance)} targets met"
            + (f", {missed} missed" if missed else "")
            + (f", {unjudged} not judged" if unjudged else "")
        )
        lines.append((text, not missed))
    else:
        lines.append(("Performance: no benchmark in this report", None))
    return lines


# ----- short ids for figure axes -------------------------------------------------------


def short_ids(ids: Sequence[str], prefix: str) -> dict[str, str]:
    """Full case id -> ``prefix`` + its 1-based position, zero-padded (``c01 .. c36``)."""
    unique = list(dict.fromkeys(ids))
    width = len(str(len(unique)))
    return {full: f"{prefix}{index:0{width}d}" for index, full in enumerate(unique, start=1)}


VERIFICATION_PREFIX, KILL_PREFIX = "c", "k"


def _case_legend(title: str, ids: dict[str, str], specs: Mapping[str, Any]) -> Table:
    """The key from a figure's short ids to the cases, with their spec where known."""
    fields = ("activation", "output_activation", "loss", "sizes", "batch", "bias", "seed")
    if ids and all(isinstance(specs.get(full), dict) for full in ids):
        rows = [
            [short, *(_spec_cell(specs[full].get(name)) for name in fields)]
            for full, short in ids.items()
        ]
        columns = ["id", "hidden", "output", "loss", "sizes", "batch", "bias", "seed"]
        dtypes = [specs[full].get("dtype", "") for full in ids]
        if any(dtypes):
            columns.insert(-1, "dtype")
            for row, dtype in zip(rows, dtypes, strict=True):
                row.insert(-1, str(dtype))
        return Table(title, columns, rows, legend=True)
    return Table(title, ["id", "case"], [[short, full] for full, short in ids.items()], legend=True)


def _spec_cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "x".join(map(str, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt(value)


# ----- the stages' tables --------------------------------------------------------------


def verification_tables(record: Record) -> list[Table]:
    """The suite per dtype, its failures (if any), and the heat map's case key."""
    tables = [verification_table(record)]
    failures = verification_failures_table(record)
    if failures.rows:
        tables.append(failures)
    cases = record["cases"]
    ids = short_ids([c["id"] for c in cases], VERIFICATION_PREFIX)
    specs = {c["id"]: c.get("spec") for c in cases}
    tables.append(_case_legend("Case ids of the heat map", ids, specs))
    return tables


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


def kill_tables(record: Record) -> list[Table]:
    """The planted bugs, and the kill matrix's case key."""
    ids = short_ids([c["id"] for c in record["control"]], KILL_PREFIX)
    return [kill_table(record), _case_legend("Case ids of the kill matrix", ids, {})]


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
        notation=frozenset({1, 5}),
    )


def caught(power: Record, epsilons: Sequence[float]) -> str:
    """The smallest ε caught in every case, in words where a number would mislead.

    A checker that already fails correct gradients "catches" every ε; that is no
    sensitivity, so it is said instead of the number.
    """
    if power["false_alarms"]:
        return (
            f"no measure: {power['false_alarms']} of {power['n_cases']} correct "
            "gradients already fail"
        )
    if power["smallest_detected_all"] is None:
        largest = fmt(max(epsilons)) if epsilons else "–"
        return f"none: some case passes even at ε = {largest}"
    return fmt(power["smallest_detected_all"])


MUTATION_TITLES = {"element": "one element", "layer": "whole layer"}
MODE_TITLES = {"both": "formula + precision", "precision": "precision alone"}


def power_table(record: Record) -> Table:
    """Per dtype: false alarms and the smallest ε caught in every case, for one element
    and a whole layer scaled by ``1 + ε``, with and without the formula part, beside
    check_grads on the same mutations."""
    rows = []
    for entry in record["dtypes"]:
        theirs = entry["check_grads"]
        row = [
            entry["dtype"],
            fmt(entry["n_cases"]),
            f"{entry['false_alarms']} / {entry['false_alarms_precision']}",
        ]
        for mutation in ("element", "layer"):
            for mode in ("both", "precision"):
                alarms = (
                    entry["false_alarms"] if mode == "both" else entry["false_alarms_precision"]
                )
                summary = {
                    **entry["mutations"][mutation][mode],
                    "false_alarms": alarms,
                    "n_cases": entry["n_cases"],
                }
                row.append(caught(summary, record["epsilons"]))
        row += [fmt(theirs["n_cases"]), fmt(theirs["false_alarms"])]
        for mutation in ("element", "layer"):
            summary = {
                **theirs[mutation],
                "false_alarms": theirs["false_alarms"],
                "n_cases": theirs["n_cases"],
            }
            row.append(caught(summary, record["check_grads_epsilons"]))
        rows.append(row)
    columns = ["dtype", "cases", "false alarms (formula + precision / precision alone)"]
    columns += [
        f"{MUTATION_TITLES[m]}: smallest ε always caught, {MODE_TITLES[mode]}"
        for m in ("element", "layer")
        for mode in ("both", "precision")
    ]
    columns += [
        "check_grads cases",
        "check_grads false alarms",
        "check_grads one element: smallest ε always caught",
        "check_grads whole layer: smallest ε always caught",
    ]
    return Table(
        "Detection power: one element (the median-sized one) or one whole layer of the "
        "gradient scaled by 1 + ε",
        columns,
        rows,
        note="ε = 0 is the correct gradient: a failure there is a false alarm, and a checker "
        "with false alarms gets no sensitivity figure (it would 'catch' any ε). 'Formula + "
        "precision' is netcheck's verdict; 'precision alone' leaves out the float64 run of "
        "the gradient under test (for a candidate that cannot run in float64). check_grads "
        "runs on the first cases only (it is slow), at its default tolerances. Cases at a "
        "non-differentiable point are left out of the power figures.",
    )


def verifier_cost_tables(record: Record) -> list[Table]:
    """The verifier's cost goals, and per model its cost in units of one float64 gradient."""
    rows = []
    for row in record["results"]:
        ratios, cold = row["ratios"], row["cold_s"]
        rows.append(
            [
                row["label"],
                fmt(row["n_params"]),
                fmt(row["leaves"]),
                fmt_ms(row["methods"]["grad64"]["median_s"]),
                *(
                    f"{fmt(ratios[m]['median'])} ({fmt_interval(ratios[m]['interval'])})"
                    for m in ("check_gradient", "verify", "check_grads")
                ),
                f"{fmt(cold['check_gradient'])} / {fmt(cold['verify'])} / {fmt(cold['grad64'])}",
            ]
        )
    cost = Table(
        "Verifier cost in float64 gradients",
        [
            "model",
            "parameters",
            "leaves",
            "one float64 jax.grad",
            "check_gradient (95% interval)",
            "verify (95% interval)",
            "check_grads (95% interval)",
            "first call s: check_gradient / verify / jax.grad",
        ],
        rows,
        note="Each check's warm time as a multiple of one jitted float64 jax.grad of the same "
        "loss, the median of paired per-round ratios (interleaved in one process). The "
        "first call includes compilation; later models reuse what earlier ones compiled.",
    )
    return [goal_table(record["goals"]), cost] if record["goals"] else [cost]


def bench_tables(record: Record) -> list[Table]:
    """The goals, time per shape, throughput and memory per shape, the slow methods."""
    tables = [goal_table(record["goals"]), bench_time_table(record), bench_cost_table(record)]
    slow = slow_methods_table(record)
    return [*tables, slow] if slow.rows else tables


def goal_table(goals: Sequence[Record]) -> Table:
    """The performance goals: name, target, measured value, its interval, verdict, where."""
    return Table(
        "Performance goals",
        ["goal", "target", "measured", "95% interval", "verdict", "where", "how judged"],
        [
            [
                g["name"],
                g["target"],
                fmt(g["measured"]),
                fmt_interval(g.get("interval")),
                GOAL_VERDICTS[g["met"]],
                g["where"],
                g["detail"],
            ]
            for g in goals
        ],
        note="A timed goal is met unless the whole bootstrap interval of its paired "
        "per-round ratios lies above the target: two programs of equal speed meet "
        "'<= 1.00' however their medians happen to fall.",
    )


def bench_time_table(record: Record) -> Table:
    """One row per shape: median times of manual, jax.grad and the roofline, and ratios."""
    rows = []
    for row in record["results"]:
        m = row["methods"]
        manual, auto, roof = m.get("manual"), m.get("autodiff"), m["roofline"]
        rows.append(
            [
                row_label(row),
                fmt(row["flops"]),
                fmt_ms(manual and manual["median_s"]),
                fmt_ms(auto and auto["median_s"]),
                fmt_ms(roof["median_s"]),
                fmt(row.get("manual_over_autodiff")),
                fmt_interval(row.get("manual_over_autodiff_interval")),
                fmt(manual and manual["time_over_roofline"]),
                fmt_interval(manual and manual["time_over_roofline_interval"]),
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
            "manual / jax.grad",
            "95% interval",
            "manual / roofline",
            "95% interval",
        ],
        rows,
        note="FLOPs: the matrix products of one forward-plus-backward step. Roofline: those "
        "products alone, timed in the same run. Ratios are paired: the median over rounds of "
        "the two times measured back to back in each round, with a bootstrap interval over "
        "the rounds.",
    )


def bench_cost_table(record: Record) -> Table:
    """One row per shape: achieved FLOP/s, compiled temporary memory, XLA's FLOP counts."""
    rows = []
    for row in record["results"]:
        m = row["methods"]
        manual, auto, roof = m.get("manual"), m.get("autodiff"), m["roofline"]
        rows.append(
            [
                row_label(row),
                fmt(manual and manual["flops_per_s"] / 1e9),
                fmt(auto and auto["flops_per_s"] / 1e9),
                fmt(roof["flops_per_s"] / 1e9),
                fmt_bytes(manual and manual["temp_bytes"]),
                fmt_bytes(auto and auto["temp_bytes"]),
                fmt(_ratio(manual and manual["xla_flops"], auto and auto["xla_flops"])),
            ]
        )
    return Table(
        "Throughput and compiled memory per shape",
        [
            "shape",
            "manual GFLOP/s",
            "jax.grad GFLOP/s",
            "roofline GFLOP/s",
            "manual temp KiB",
            "jax.grad temp KiB",
            "XLA FLOPs manual / jax.grad",
        ],
        rows,
        note="GFLOP/s: the step's matrix-product FLOPs over its median time. Temp: compiled "
        "temporary memory. XLA FLOPs: XLA's own count of every operation in the compiled "
        "programs, a comparison free of timing noise.",
    )


SLOW_METHODS = {
    "literal": "literal",
    "numpy_loop": "numpy loop",
    "finite_differences": "finite differences",
}


def slow_methods_table(record: Record) -> Table:
    """The slow methods where they ran: median time and multiple of the roofline."""
    slow = [m for m in SLOW_METHODS if any(m in row["methods"] for row in record["results"])]
    rows = []
    for row in record["results"]:
        if not any(m in row["methods"] for m in slow):
            continue
        cells = [row_label(row)]
        for method in ("manual", *slow):
            stats = row["methods"].get(method)
            cells += [
                fmt_ms(stats and stats["median_s"]),
                fmt(stats and stats["time_over_roofline"]),
            ]
        rows.append(cells)
    columns = ["shape"]
    for method in ("manual", *slow):
        label = SLOW_METHODS.get(method, method)
        columns += [f"{label} ms", f"{label} / roofline"]
    return Table("The other methods (small shapes only)", columns, rows)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else numerator / denominator


GRADIENT_NAMES = {"manual": "manual", "autodiff": "jax.grad"}
"""How the training runs are named on the page (the record keys them by trainer name)."""


def training_tables(record: Record) -> list[Table]:
    """Final losses and accuracy of the manual and jax.grad runs, and their largest gap."""
    rows = [
        [
            GRADIENT_NAMES.get(grad, grad),
            fmt(final["train_loss"]),
            fmt(final["validation_loss"]),
            fmt(final["validation_accuracy"]),
            fmt(record["elapsed_s"][grad]),
        ]
        for grad, final in record["final"].items()
    ]
    s = record["settings"]
    return [
        Table(
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
            f"{s['activation']}/{s['output_activation']}, {s['loss']}, "
            f"sgd({s['learning_rate']}), {s['epochs']} epochs of batch {s['batch_size']}. "
            "Largest |manual - jax.grad| train loss over the epochs: "
            f"{fmt(record['max_abs_train_loss_difference'])}.",
        )
    ]


# ----- sections ------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """How a stage is shown: its heading and the tables drawn from its record."""

    title: str
    tables: Callable[[Record], list[Table]]


SECTIONS: dict[str, Section] = {
    "verification": Section("Verification suite", verification_tables),
    "kill_matrix": Section("Planted-bug kill matrix", kill_tables),
    "detection_power": Section("Detection power", lambda record: [power_table(record)]),
    "bench": Section("Benchmark", bench_tables),
    "verifier_cost": Section("Verifier cost", verifier_cost_tables),
    "training": Section("Training: manual vs jax.grad", training_tables),
}
"""Per stage, its section; the templates draw every section alike (tables, figures,
legends), so a new stage needs only its entry here and its stage function."""


# ----- the run, in words ---------------------------------------------------------------


def _runtime(env: Record) -> str:
    """The device runtime's version (``, cuda 12080``), where the record has one."""
    version = env.get("platform_version", "<unknown>")
    return "" if version in ("<unknown>", env["platform"]) else f", {version}"


def run_lines(record: Record) -> list[str]:
    """Where the report ran, what each stage took, and the bench grid."""
    env = record["environment"]
    lines = [
        f"Created {record['created']} by netcheck {record['netcheck_version']} on "
        f"{env['device']} ({env['platform']}{_runtime(env)}, {env['device_count']} device(s)), "
        f"JAX {env['jax_version']}, matmul precision {env['matmul_precision']}; "
        f"all stages took {fmt(record['elapsed_s'])} s.",
    ]
    if env.get("load_average") is not None:
        after = record.get("load_average_after")
        lines.append(
            f"Load average (1 minute) at the start: {fmt(env['load_average'])}"
            + ("" if after is None else f", at the end: {fmt(after)}")
            + f", on {env['cpu_count']} CPU(s); timings are only as quiet as the machine was."
        )
    for stage, section in SECTIONS.items():
        entry = record["stages"].get(stage)
        title = section.title
        if entry is None:
            lines.append(f"{title}: not run.")
            continue
        options = record["settings"].get(stage)
        shown = (
            f" (settings: {', '.join(f'{k}={v}' for k, v in options.items())})"
            if isinstance(options, dict) and options and stage != "training"  # stated below
            else ""
        )
        lines.append(f"{title}: {fmt(entry['elapsed_s'])} s{shown}.")
    if "bench" in record["stages"]:
        grid = record["stages"]["bench"]["record"]["grid"]
        lines.append(
            f"Benchmark grid {grid['name']!r}: widths {grid['widths']}, depths "
            f"{grid['depths']}, batches {grid['batches']}, dtypes {grid['dtypes']}"
            + (f", steps up to {fmt(grid['max_flops'])} FLOPs" if grid["max_flops"] else "")
            + f"; at least {grid['rounds']} interleaved rounds per shape."
        )
    return lines


def closing_lines(record: Record) -> list[str]:
    """The benchmark in a few sentences: ratio spread and XLA's noise-free FLOP counts."""
    bench_entry = record["stages"].get("bench")
    if bench_entry is None:
        return ["No benchmark in this report, so no performance goals were judged."]
    results = bench_entry["record"]["results"]
    lines = []
    ratios = [r["manual_over_autodiff"] for r in results if "manual_over_autodiff" in r]
    if ratios:
        lines.append(
            f"manual/jax.grad over {len(ratios)} shapes: median {fmt(statistics.median(ratios))}, "
            f"min {fmt(min(ratios))}, max {fmt(max(ratios))}. Timings on a shared machine are "
            "noisy; the methods of a shape were interleaved so that noise hits them alike."
        )
    work = [
        _ratio(r["methods"]["manual"]["xla_flops"], r["methods"]["autodiff"]["xla_flops"])
        for r in results
        if "manual" in r["methods"] and "autodiff" in r["methods"]
    ]
    work = [w for w in work if w is not None]
    if work:
        lines.append(
            "Noise-free comparison of the compiled programs: XLA's FLOP count of manual over "
            f"jax.grad's ranges from {fmt(min(work))} to {fmt(max(work))} over the shapes."
        )
    return lines
