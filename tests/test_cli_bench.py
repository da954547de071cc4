"""Tests of `netcheck bench`: the record it saves, its exit codes and its one-line errors."""

from __future__ import annotations

import json

import pytest

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
    path = tmp_path / "bench.json"
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


def test_strict_exits_1_exactly_when_a_goal_is_missed(tmp_path):
    path = tmp_path / "bench.json"
    code = main([*TINY, "--strict", "--json", str(path)])
    goals = json.loads(path.read_text())["goals"]
    assert code == (1 if any(g["passed"] is False for g in goals) else 0)


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
