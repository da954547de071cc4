"""Tests of `netcheck bench`: the record it saves, its exit codes and its one-line errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from netcheck.bench import step
from netcheck.cli import main

TINY = [
    "bench",
    "--quick",
    "--widths",
    "4",
    "--depths",
    "2",
    "--batches",
    "2",
    "--methods",
    "manual,autodiff",
    "--rounds",
    "2",
    "--no-progress",
]


def test_bench_writes_a_json_record_with_the_environment(tmp_path, capsys):
    path = tmp_path / "step.json"
    assert main([*TINY, "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["grid"]["name"] == "quick+custom"
    (row,) = record["results"]
    assert (row["width"], row["depth"], row["batch"]) == (4, 2, 2)
    assert set(row["methods"]) == {"manual", "autodiff", "roofline"}
    for field in ("device", "platform", "jax_version", "matmul_precision"):
        assert row[field] == record["environment"][field]
    out = capsys.readouterr().out
    assert "w4 L2 n2 float32" in out and f"{row['manual_over_autodiff']:.4g}" in out


@pytest.fixture(scope="module")
def measured():
    # One real tiny run; the tests below change its per-round times to know the verdicts.
    grid = step.Grid(
        "test", (4,), (2,), (2,), rounds=5, min_measure_s=0.0, methods=("manual", "autodiff")
    )
    return step.run_bench(grid)


def _with_times(record, manual_over_autodiff, manual_over_roofline):
    # Manual's per-round times set to a fixed multiple of the others' in every round.
    record = copy.deepcopy(record)
    for row in record["results"]:
        methods = row["methods"]
        auto = np.array(methods["autodiff"]["times_s"])
        methods["manual"]["times_s"] = list(auto * manual_over_autodiff)
        methods["roofline"]["times_s"] = list(auto * manual_over_autodiff / manual_over_roofline)
    record["goals"] = step.performance_goals(record)
    return record


@pytest.mark.parametrize("strict", [False, True], ids=["plain", "strict"])
def test_a_missed_target_is_reported_and_exits_1_only_with_strict(
    strict, measured, monkeypatch, capsys
):
    slow = _with_times(measured, 1.5, 1.5)
    assert [g["met"] for g in slow["goals"][:3]] == [False, False, False]
    monkeypatch.setattr(step, "run_bench", lambda *args, **kwargs: slow)
    code = main([*TINY, *(["--strict"] if strict else [])])
    out = capsys.readouterr().out
    assert code == (1 if strict else 0)
    assert out.count("[target missed]") == 3 and "FAIL" not in out
    assert "manual / jax.grad step time, median over shapes: 1.5, 95% interval 1.5 to 1.5" in out


def test_targets_met_exit_0_with_strict(measured, monkeypatch, capsys):
    even = _with_times(measured, 1.0, 1.0)
    monkeypatch.setattr(step, "run_bench", lambda *args, **kwargs: even)
    assert main([*TINY, "--strict"]) == 0
    out = capsys.readouterr().out
    assert "[target missed]" not in out and out.count("[target met]") >= 3


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    # Without --no-progress: stderr is captured (not a terminal), so no bar is drawn.
    args = [a for a in TINY if a != "--no-progress"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""


def test_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "1 a target missed, with --strict only" in out
    assert "'target met' or 'target missed'" in out


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--large" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--widths", "0"], "grid widths must be >= 1, got 0"),
        (["--dtypes", "float8"], "unknown dtype 'float8'"),
        (["--methods", "magic"], "unknown method 'magic'"),
        (["--json", "/nonexistent-folder/x.json"], "--json: folder '/nonexistent-folder'"),
    ],
    ids=["width", "dtype", "method", "json-folder"],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(["bench", "--quick", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--quick", "--large"])
    assert exit_info.value.code == 2
