"""Tests of `netcheck report`: it writes the report, --from re-renders it, bad input is one
line with exit code 2."""

from __future__ import annotations

import json

import pytest

from netcheck import bench, report
from netcheck.cli import main

TINY_GRID = bench.Grid(
    "test",
    widths=(4,),
    depths=(2,),
    batches=(2,),
    rounds=2,
    min_measure_s=0.0,
    budget_s=0.0,
    methods=("manual", "autodiff"),
)


@pytest.fixture
def tiny_defaults(monkeypatch):
    # The CLI's stages, shrunk: only the benchmark, on a one-shape grid.
    monkeypatch.setattr(
        report,
        "default_stages",
        lambda bench_grid="report": {"bench": report.bench_stage(TINY_GRID)},
    )


def test_report_writes_and_from_rerenders(tmp_path, tiny_defaults, capsys):
    out = tmp_path / "reports"
    code = main(
        [
            "report",
            "--out-dir",
            str(out),
            "--name",
            "first",
            "--no-progress",
            "--json",
            str(tmp_path / "copy.json"),
        ]
    )
    assert code == 0
    first = out / "first"
    assert {"index.html", "report.md", "results.json", "bench_time.png"} <= {
        p.name for p in first.iterdir()
    }
    assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(
        (first / "results.json").read_text()
    )
    assert f"wrote {first / 'index.html'}" in capsys.readouterr().out

    code = main(
        ["report", "--out-dir", str(out), "--name", "first", "--from", str(first / "results.json")]
    )
    assert code == 0
    again = json.loads((first / "results.json").read_text())
    assert again == json.loads((tmp_path / "copy.json").read_text())


def test_strict_fails_on_a_missed_goal(tmp_path, tiny_defaults):
    path = tmp_path / "r.json"
    code = main(
        ["report", "--out-dir", str(tmp_path), "--no-progress", "--strict", "--json", str(path)]
    )
    goals = json.loads(path.read_text())["stages"]["bench"]["record"]["goals"]
    assert code == (1 if any(g["passed"] is False for g in goals) else 0)


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    assert "--from" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{oops", "is not valid JSON"),
        (
            '{"kind": "netcheck.report", "schema_version": 99, "stages": {}}',
            "has schema_version 99; this netcheck reads schema_version 1",
        ),
    ],
    ids=["missing", "malformed", "wrong-version"],
)
def test_bad_from_files_are_one_line_and_exit_2(tmp_path, content, message, capsys):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", "--out-dir", str(tmp_path / "out"), "--from", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()


def test_unknown_stage_and_stages_with_from_are_refused(tmp_path, capsys):
    assert main(["report", "--out-dir", str(tmp_path), "--stages", "bench,nonsense"]) == 2
    assert "unknown stage(s) nonsense" in capsys.readouterr().err
    assert (
        main(["report", "--out-dir", str(tmp_path), "--stages", "bench", "--from", "x.json"]) == 2
    )
    assert "cannot be combined with --from" in capsys.readouterr().err
    assert main(["report", "--out-dir", str(tmp_path), "--name", "../up", "--from", "x"]) == 2
    assert "plain folder name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
