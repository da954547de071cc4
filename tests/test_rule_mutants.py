"""``python -m netcheck.bench.rule_mutants``: the measurement of ``check_custom_rule`` and ``audit``
on the rule catalogue, run here on a tiny subset (two planted bugs, three generated correct
rules, one family's cost), and the committed record's figures.

The independent facts: each mutant is a known bug (it must be killed, and ``audit`` must name
its family and only it); each generated rule is a correct one (its verdict must be ok).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netcheck.bench import custom_rules, rule_mutants

ARTIFACT = Path(__file__).resolve().parents[1] / "reports" / "artifacts" / "custom_rules.json"

SOFT_ROUND_MUTANTS = tuple(m for m in rule_mutants.MUTANTS if m.family == "soft_round")


@pytest.fixture(scope="module")
def record():
    return custom_rules.measure(
        mutants=SOFT_ROUND_MUTANTS,
        count=3,
        targets=("soft_round",),
        rounds=2,
        command="test",
        kill_dtypes=("float32",),
        alarm_dtypes=("float32",),
        families=("soft_round",),
        min_measure_s=0.0,
    )


def test_the_measurement_on_a_subset_kills_names_and_raises_no_false_alarm(record):
    assert record["schema"] == custom_rules.SCHEMA and record["command"] == "test"
    assert {"load_average", "jax_version", "device"} <= set(record["environment"])
    kills = record["kill_matrix"]["check_custom_rule"]
    assert [(row["mutant"], row["dtype"]) for row in kills] == [
        (mutant.name, "float32") for mutant in SOFT_ROUND_MUTANTS
    ]
    # soft_round has one differentiable argument, x: the failing row must be it.
    assert all(row["killed"] and row["failing"] == ["args[0]"] for row in kills)
    for row in record["kill_matrix"]["audit"]:
        assert row["named"] == ["soft_round"] and row["right"], row
        assert row["statuses"]["round_to_integer"] == "skipped"
    alarms = record["false_alarms"]["float32"]
    assert alarms == {"cases": 3, "false_alarms": 0, "alarms": []}
    (cost,) = record["cost"]
    assert cost["target"] == "soft_round" and set(cost["ratios"]) == {"check_custom_rule", "audit"}
    for ratio in cost["ratios"].values():
        low, high = ratio["interval"]
        assert 0 < low <= ratio["median"] <= high
    assert record["summary"]["killed"] == {"float32": 2}
    assert record["summary"]["audit_right"] == {"float32": 2}
    lines = custom_rules.format_table(record).splitlines()
    (killed,) = [line for line in lines if line.startswith("planted rule bugs killed")]
    assert killed.split()[-1] == "2/2"


def test_generated_cases_are_distinct_and_reproducible():
    first = custom_rules.generated_cases(12, seed=3)
    assert first == custom_rules.generated_cases(12, seed=3)
    assert len(set(first)) == 12
    assert all(case.family in rule_mutants.FAMILIES for case in first)
    assert all((case.rows, case.width) in custom_rules.SHAPES for case in first)
    assert all(0.1 <= case.scale <= 10 for case in first)


def test_the_committed_record_kills_every_mutant_and_names_its_rule():
    committed = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    assert committed["command"] == (
        "python -m netcheck.bench.rule_mutants --json reports/artifacts/custom_rules.json"
    )
    names = {mutant.name for mutant in rule_mutants.MUTANTS}
    for table in ("check_custom_rule", "audit"):
        rows = committed["kill_matrix"][table]
        assert {(row["mutant"], row["dtype"]) for row in rows} == {
            (name, dtype) for name in names for dtype in ("float32", "bfloat16")
        }, table
    assert all(row["killed"] for row in committed["kill_matrix"]["check_custom_rule"])
    for row in committed["kill_matrix"]["audit"]:
        assert row["right"] and row["named"] == [row["mutant"].split("/")[0]], row
    for dtype in ("float32", "bfloat16"):
        assert committed["false_alarms"][dtype]["cases"] >= 200, dtype
    targets = {row["target"] for row in committed["cost"]}
    assert targets == {"model", *rule_mutants.FAMILIES}


def test_the_committed_record_has_no_false_alarm():
    committed = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    for dtype, alarms in committed["false_alarms"].items():
        assert alarms["false_alarms"] == 0, (dtype, alarms["alarms"])
