"""``netcheck bench --verifier``: the verifier's cost as multiples of one float64 jax.grad."""

from __future__ import annotations

import json
import statistics

import pytest

from netcheck.bench import verifier_cost
from netcheck.cli import main


@pytest.fixture(scope="module")
def record():
    model = verifier_cost.Model((6, 12, 12, 3), 8, goal=True)
    return verifier_cost.run_verifier_bench([model], rounds=3)


def test_every_method_is_timed_interleaved_with_its_ratio_to_the_unit(record):
    json.dumps(record, allow_nan=False)
    (row,) = record["results"]
    assert row["n_params"] == 6 * 12 + 12 + 12 * 12 + 12 + 12 * 3 + 3 and row["leaves"] == 6
    assert set(row["methods"]) == set(verifier_cost.METHODS) and all(row["ok"].values())
    unit = row["methods"]["grad64"]["times_s"]
    for method in verifier_cost.METHODS[1:]:
        times = row["methods"][method]["times_s"]
        assert len(times) == len(unit) >= 3
        expected = statistics.median(t / u for t, u in zip(times, unit, strict=True))
        assert row["ratios"][method]["median"] == pytest.approx(expected)
        low, high = row["ratios"][method]["interval"]
        assert low <= row["ratios"][method]["median"] <= high
    assert all(seconds > 0 for seconds in row["cold_s"].values())


def test_the_goals_are_recomputed_from_the_measurements(record):
    (row,) = record["results"]
    goals = {goal["name"]: goal for goal in record["goals"]}
    warm = goals["check_gradient / one float64 jax.grad, warm"]
    low = row["ratios"]["check_gradient"]["interval"][0]
    assert warm["met"] == (low <= 10.0) and warm["target_value"] == 10.0
    verify_warm = goals["verify / one float64 jax.grad, warm"]
    assert verify_warm["met"] == (row["ratios"]["verify"]["interval"][0] <= 15.0)
    cold = goals["check_gradient, first call (compilation included)"]
    limit = max(5.0, 10 * row["cold_s"]["grad64"])
    assert cold["met"] == (row["cold_s"]["check_gradient"] <= limit)
    assert cold["target_value"] == pytest.approx(limit)
    # Judged on goal models only: a grid without one has no goals.
    crafted = {**record, "results": [{**row, "goal": False}]}
    assert verifier_cost.verifier_goals(crafted) == []
    assert "check_gradient" in verifier_cost.format_table(record)


def test_the_grids_span_the_issue_models_and_stay_bounded():
    default = verifier_cost.GRIDS["default"]
    assert {m.sizes for m in verifier_cost.GOAL_MODELS} <= {m.sizes for m in default}
    assert {m.depth for m in default} >= {2, 8, 32, 64}
    assert max(m.n_params for m in default) <= 8_000_000
    assert {max(m.sizes[1:-1]) for m in default} >= {64, 2048}
    with pytest.raises(ValueError, match="unknown verifier grid"):
        verifier_cost.run_verifier_bench("huge")


def test_cli_bench_verifier_quick_prints_the_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "v.json"
    code = main(["bench", "--verifier", "--quick", "--rounds", "2", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and "check_gradient" in out and "verify" in out
    assert json.loads(path.read_text())["schema"] == verifier_cost.SCHEMA
    assert main(["bench", "--verifier", "--large"]) == 2
