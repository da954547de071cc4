"""What ``check_custom_rule`` and ``audit`` catch, miss and cost, on the rule catalogue.

    python -m netcheck.bench.rule_mutants --json reports/artifacts/custom_rules.json

Three measurements over ``netcheck.bench.rule_mutants``, each judged by netcheck's own
``check_custom_rule`` and ``audit`` (nothing here judges a
rule a second way):

* **kill matrix**: every planted rule bug, in float32 and bfloat16, checked on its own
  (killed when the verdict fails; the failing arguments are recorded), and slipped into the
  catalogue's model, whose ``audit`` must name exactly that rule as failing,
  the other three ok and the straight-through surrogate skipped;
* **false alarms**: correct rules of the four families at points Hypothesis draws (shape,
  spread of the inputs, seed of the values), seeded, each checked in every dtype; a case is
  a false alarm when its verdict is not ok;
* **cost**: warm wall time of ``check_custom_rule`` and ``audit`` as multiples of one
  jitted ``jax.grad`` of the same program (per family: the sum of the rule's output; the
  model: its loss), float32, timed interleaved round by round
  (``netcheck.bench.step.time_interleaved``), the median of the paired ratios with its 95%
  bootstrap interval.

Hypothesis is a development dependency, imported here only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from netcheck.bench import rule_mutants
from netcheck.bench.rule_mutants import FAMILIES, MUTANTS, RuleMutant
from netcheck.bench.step import environment, median_interval, paired_ratios, time_interleaved
from netcheck.report.tables import Table
from netcheck.verifier import Verdict
from netcheck.verifier.audit import audit
from netcheck.verifier.custom_rule import check_custom_rule

SCHEMA = "netcheck.custom_rules/1"

KILL_DTYPES = ("float32", "bfloat16")
"""The dtypes of the kill matrix."""

FALSE_ALARM_DTYPES = ("float32", "bfloat16", "float64")
"""The dtypes every generated correct rule is checked in."""

SHAPES = ((2, 5), (6, 8))
"""``(rows, width)`` of the generated points (see ``rule_arguments``);
few, so that the checks of a family reuse their compiled programs."""

SURROGATE = "round_to_integer"
"""The straight-through rule of the audited model, skipped by name."""


# ----- kill matrix -----------------------------------------------------------------------------


def kill_row(mutant: RuleMutant, dtype: str, seed: int = 0) -> dict[str, Any]:
    """``check_custom_rule`` of one planted bug at the catalogue's point.

    Returns:
        ``{"mutant", "dtype", "killed", "failing": [argument names], "worst_ratio"}``.
    """
    arguments = rule_mutants.rule_arguments(mutant.family, jnp.dtype(dtype), seed=seed)
    verdict = check_custom_rule(rule_mutants.rule(mutant.family, mutant.bug), *arguments)
    return {
        "mutant": mutant.name,
        "dtype": dtype,
        "killed": not verdict.ok,
        "failing": [row.name for row in verdict.rows if not row.ok],
        "worst_ratio": verdict.worst_ratio,
    }


def audited_model(rules: dict[str, Any] | None = None) -> Callable[..., jax.Array]:
    """The catalogue's model with its straight-through rounding, jitted."""
    return jax.jit(rule_mutants.model(rules, straight_through=True))


def audit_row(mutant: RuleMutant, dtype: str, seed: int = 0) -> dict[str, Any]:
    """``audit`` of the model with one planted bug slipped in, the surrogate skipped.

    Returns:
        ``{"mutant", "dtype", "named": [failing rule names], "statuses": {rule: status},
        "right"}``; ``right`` when exactly the mutant's family fails, the surrogate is
        skipped and every other rule is ok.
    """
    program = audited_model({mutant.family: rule_mutants.rule(mutant.family, mutant.bug)})
    report = audit(
        program, *rule_mutants.model_arguments(jnp.dtype(dtype), seed=seed), skip=(SURROGATE,)
    )
    statuses = {rule.name: rule.status for rule in report.rules}
    expected = {family: "ok" for family in FAMILIES} | {
        mutant.family: "failed",
        SURROGATE: "skipped",
    }
    return {
        "mutant": mutant.name,
        "dtype": dtype,
        "named": [rule.name for rule in report.failed],
        "statuses": statuses,
        "right": statuses == expected and len(report.rules) == len(expected),
    }


def kill_matrix(
    mutants: Sequence[RuleMutant] = MUTANTS, dtypes: Sequence[str] = KILL_DTYPES
) -> dict[str, list[dict[str, Any]]]:
    """``kill_row`` and ``audit_row`` of every mutant in every dtype."""
    return {
        "check_custom_rule": [kill_row(mutant, dtype) for mutant in mutants for dtype in dtypes],
        "audit": [audit_row(mutant, dtype) for mutant in mutants for dtype in dtypes],
    }


# ----- false alarms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A correct rule at a generated point: ``rule_arguments(family, dtype, seed, rows,
    width, scale)``."""

    family: str
    rows: int
    width: int
    scale: float
    seed: int


def cases(families: Sequence[str] = FAMILIES) -> st.SearchStrategy[Case]:
    """Hypothesis's strategy for a ``Case``: one of ``families``, one of ``SHAPES``,
    inputs spread from 0.1 to 10 times the catalogue's, any seed."""
    return st.builds(
        lambda family, shape, scale, seed: Case(family, *shape, scale, seed),
        st.sampled_from(tuple(families)),
        st.sampled_from(SHAPES),
        st.floats(min_value=0.1, max_value=10.0),
        st.integers(min_value=0, max_value=2**31 - 1),
    )


def generated_cases(count: int, seed: int = 0, families: Sequence[str] = FAMILIES) -> list[Case]:
    """``count`` distinct cases drawn by Hypothesis, reproducibly (``hypothesis.seed``)."""
    drawn: list[Case] = []

    @settings(
        max_examples=10 * count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(cases(families))
    def draw(case: Case) -> None:
        if case not in drawn and len(drawn) < count:
            drawn.append(case)

    draw()
    if len(drawn) < count:
        raise RuntimeError(f"Hypothesis drew {len(drawn)} distinct cases, {count} asked for")
    return drawn


def case_verdict(case: Case, dtype: str) -> Verdict:
    """``check_custom_rule`` of the family's correct rule at the case's point (float64 with
    JAX's 64-bit mode on for the call)."""
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        arguments = rule_mutants.rule_arguments(
            case.family, jnp.dtype(dtype), case.seed, case.rows, case.width, case.scale
        )
        if arguments[0].dtype != jnp.dtype(dtype):
            raise RuntimeError(f"asked for {dtype}, JAX made {arguments[0].dtype}")
        return check_custom_rule(rule_mutants.rule(case.family), *arguments)


def false_alarms(
    drawn: Sequence[Case], dtypes: Sequence[str] = FALSE_ALARM_DTYPES
) -> dict[str, dict[str, Any]]:
    """Per dtype: how many cases were checked, and each case whose verdict was not ok with
    its failing arguments and worst distance/tolerance."""
    result = {}
    for dtype in dtypes:
        alarms = []
        for case in drawn:
            verdict = case_verdict(case, dtype)
            if not verdict.ok:
                failing = [f"{row.name}: {row.status}" for row in verdict.rows if not row.ok]
                alarms.append(
                    asdict(case) | {"failing": failing, "worst_ratio": verdict.worst_ratio}
                )
        result[dtype] = {"cases": len(drawn), "false_alarms": len(alarms), "alarms": alarms}
    return result


# ----- cost ------------------------------------------------------------------------------------


def family_program(family: str) -> tuple[Callable[..., jax.Array], tuple]:
    """``(program, arrays)``: the sum of the correct rule's output as a function of its array
    arguments (the rest held fixed), at the catalogue's float32 point."""
    arguments = rule_mutants.rule_arguments(family, jnp.float32)
    arrays = tuple(argument for argument in arguments if isinstance(argument, jax.Array))
    fixed = arguments[len(arrays) :]
    rule = rule_mutants.rule(family)

    def program(*arrays: jax.Array) -> jax.Array:
        return jnp.sum(rule(*arrays, *fixed))

    return program, arrays


def cost_calls(target: str) -> dict[str, Callable[[], Any]]:
    """The calls timed for one family (``grad``, ``check_custom_rule``, ``audit``) or for
    ``"model"`` (``grad``, ``audit``); ``grad`` is one jitted ``jax.grad`` of the program."""
    if target == "model":
        program, arguments = audited_model(), rule_mutants.model_arguments(jnp.float32)
        gradient = jax.jit(jax.grad(program))
        return {
            "grad": lambda: gradient(*arguments),
            "audit": lambda: audit(program, *arguments, skip=(SURROGATE,)),
        }
    program, arrays = family_program(target)
    gradient = jax.jit(jax.grad(program, argnums=tuple(range(len(arrays)))))
    rule_arguments = rule_mutants.rule_arguments(target, jnp.float32)
    return {
        "grad": lambda: gradient(*arrays),
        "check_custom_rule": lambda: check_custom_rule(rule_mutants.rule(target), *rule_arguments),
        "audit": lambda: audit(program, *arrays),
    }


def cost_row(target: str, rounds: int = 7, min_measure_s: float = 0.05) -> dict[str, Any]:
    """Warm times of one target's calls, interleaved, and their ratios to ``grad``.

    Returns:
        ``{"target", "grad_s", "seconds": {call: median}, "ratios": {call: {"median",
        "interval"}}, "rounds"}``.
    """
    calls = cost_calls(target)
    for call in calls.values():
        jax.block_until_ready(call())  # compile
    timings = time_interleaved(calls, rounds, min_measure_s)
    unit = timings["grad"]["times_s"]
    ratios = {}
    for name in calls:
        if name != "grad":
            paired = paired_ratios(timings[name]["times_s"], unit)
            ratios[name] = {
                "median": statistics.median(paired),
                "interval": list(median_interval([paired])),
            }
    return {
        "target": target,
        "seconds": {name: statistics.median(t["times_s"]) for name, t in timings.items()},
        "ratios": ratios,
        "rounds": rounds,
    }


# ----- the record ------------------------------------------------------------------------------


def measure(
    mutants: Sequence[RuleMutant] = MUTANTS,
    count: int = 200,
    targets: Sequence[str] = ("model", *FAMILIES),
    rounds: int = 7,
    command: str = "",
    kill_dtypes: Sequence[str] = KILL_DTYPES,
    alarm_dtypes: Sequence[str] = FALSE_ALARM_DTYPES,
    families: Sequence[str] = FAMILIES,
    min_measure_s: float = 0.05,
) -> dict[str, Any]:
    """The whole record: environment, kill matrix, false alarms, cost, and a summary.

    Args:
        mutants: the planted bugs of the kill matrix, each in every one of ``kill_dtypes``.
        count: correct rules Hypothesis draws (of ``families``), each checked in every one
            of ``alarm_dtypes``.
        targets: what the cost is measured on: ``"model"`` and families.
        rounds: interleaved timing rounds per target; ``min_measure_s``: the shortest
            measurement (``netcheck.bench.step.time_interleaved``).
        command: the command line, recorded.
    """
    env = environment()
    start = time.perf_counter()
    kills = kill_matrix(mutants, kill_dtypes)
    alarms = false_alarms(generated_cases(count, families=families), alarm_dtypes)
    cost = [cost_row(target, rounds, min_measure_s) for target in targets]
    record = {
        "schema": SCHEMA,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "kill_matrix": kills,
        "false_alarms": alarms,
        "cost": cost,
        "runtime_s": time.perf_counter() - start,
    }
    return record | {"summary": summary(record)}


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The figures to quote: mutants killed and rightly named per dtype, false alarms and
    cases per dtype, and the cost ratios' medians."""
    kills, audits = record["kill_matrix"]["check_custom_rule"], record["kill_matrix"]["audit"]
    dtypes = sorted({row["dtype"] for row in kills})
    return {
        "mutants": len({row["mutant"] for row in kills}),
        "killed": {d: sum(r["killed"] for r in kills if r["dtype"] == d) for d in dtypes},
        "audit_right": {d: sum(r["right"] for r in audits if r["dtype"] == d) for d in dtypes},
        "false_alarms": {d: v["false_alarms"] for d, v in record["false_alarms"].items()},
        "cases": {d: v["cases"] for d, v in record["false_alarms"].items()},
        "cost": {
            row["target"]: {name: ratio["median"] for name, ratio in row["ratios"].items()}
            for row in record["cost"]
        },
    }


def tables_of(record: dict[str, Any]) -> list[Table]:
    """The record's figures as two tables: what is caught (per dtype) and what it costs."""
    total = record["summary"]
    dtypes = list(total["false_alarms"])
    mutants = total["mutants"]

    def per_dtype(counts: dict[str, int], of: dict[str, int] | int) -> list[str]:
        return [
            f"{counts[d]}/{of if isinstance(of, int) else of[d]}" if d in counts else "–"
            for d in dtypes
        ]

    caught = Table(
        "Custom rules: planted bugs caught, correct rules passed",
        ["", *dtypes],
        [
            [
                "planted rule bugs killed by `check_custom_rule`",
                *per_dtype(total["killed"], mutants),
            ],
            ["`audit` names exactly the slipped rule", *per_dtype(total["audit_right"], mutants)],
            [
                "false alarms over correct rules drawn by Hypothesis",
                *per_dtype(total["false_alarms"], total["cases"]),
            ],
        ],
        f"{mutants} planted bugs over layer norm, softmax cross-entropy, causal attention and a "
        "soft-round quantiser (`netcheck/bench/rule_mutants.py`); `audit` runs on a model with one "
        "rule of each family and a straight-through rounding, skipped by name."
        + _alarm_note(record),
    )
    cost = Table(
        "Custom rules: cost, in one jitted `jax.grad` of the same program",
        ["program", "`jax.grad`", "`check_custom_rule`", "`audit`"],
        [
            [
                row["target"],
                f"{row['seconds']['grad'] * 1e6:.0f} µs",
                *(_ratio_cell(row["ratios"].get(name)) for name in ("check_custom_rule", "audit")),
            ]
            for row in record["cost"]
        ],
        "Warm, float32; median of paired interleaved rounds, [95% bootstrap interval]. "
        "The programs are tiny, so these multiples are mostly the checks' fixed cost "
        "(several compiled calls and a float64 pass) over one gradient of microseconds.",
    )
    return [caught, cost]


def _alarm_note(record: dict[str, Any]) -> str:
    """Which families the false alarms are in, and from what input spread up."""
    alarms = [alarm for v in record["false_alarms"].values() for alarm in v.get("alarms", [])]
    if not alarms:
        return ""
    families = ", ".join(sorted({alarm["family"] for alarm in alarms}))
    spread = min(alarm["scale"] for alarm in alarms)
    return f" The false alarms: {families} rules, at input spreads from {spread:.1f}."


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return "–"
    low, high = ratio["interval"]
    return f"{ratio['median']:.0f}x [{low:.0f}, {high:.0f}]"


def format_table(record: dict[str, Any]) -> str:
    """The record's tables (``tables_of``) as plain text."""
    blocks = []
    for table in tables_of(record):
        rows = [table.columns, *table.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(table.columns))]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows
        ]
        blocks.append("\n".join([table.title, *(line.rstrip() for line in lines)]))
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    """``python -m netcheck.bench.rule_mutants [--json PATH] [--cases N] [--rounds R]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the record here")
    parser.add_argument("--cases", type=int, default=200, help="generated correct rules")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    command = " ".join(["python -m netcheck.bench.rule_mutants", *(argv or sys.argv[1:])])
    record = measure(count=args.cases, rounds=args.rounds, command=command)
    print(format_table(record))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
