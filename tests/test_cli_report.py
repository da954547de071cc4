"""Tests of `netcheck report`: it writes the report, --from re-renders it, bad input is one
line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_figures import kill_record, power_record

from netcheck import report
from netcheck.bench import step
from netcheck.cli import main

TINY_GRID = step.Grid(
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


@pytest.fixture
def from_record(tmp_path, monkeypatch):
    """Run `netcheck report --from` on a hand-made record; the page is not drawn (writing
    is tested above and in test_report.py)."""
    written = []
    monkeypatch.setattr(report, "write_report", lambda record, directory: written.append(record))

    def run(stages, *flags):
        record = {
            "schema_version": report.SCHEMA_VERSION,
            "kind": report.KIND,
            "name": "x",
            "stages": {name: {"elapsed_s": 1.0, "record": r} for name, r in stages.items()},
        }
        path = tmp_path / "results.json"
        path.write_text(json.dumps(record))
        code = main(["report", "--out-dir", str(tmp_path), "--from", str(path), *flags])
        assert len(written) == 1
        written.clear()
        return code

    return run


def _bench_record(manual_over_autodiff):
    # The goals of rows whose manual time is a fixed multiple of jax.grad's in every round.
    rng = np.random.default_rng(0)
    rows = []
    for flops in (10, 20):
        auto = rng.uniform(1.0, 2.0, 7)
        rows.append(
            {
                "width": flops,
                "depth": 2,
                "batch": 1,
                "dtype": "float32",
                "flops": flops,
                "manual_over_autodiff": manual_over_autodiff,
                "manual_temp_bytes_minus_autodiff": 0,
                "methods": {
                    "manual": {"times_s": list(auto * manual_over_autodiff)},
                    "autodiff": {"times_s": list(auto)},
                    "roofline": {"times_s": list(auto)},
                },
            }
        )
    return {"results": rows, "goals": step.performance_goals({"results": rows})}


def test_a_correctness_failure_exits_1_always(from_record, capsys):
    assert from_record({"kill_matrix": kill_record()}) == 1
    out = capsys.readouterr().out
    assert "[FAIL] kill matrix: every planted bug caught: 1 of 2 caught on every case" in out
    assert from_record({"detection_power": power_record()}) == 0
    assert "[PASS] detection power: no false alarm on correct gradients" in capsys.readouterr().out


def test_a_missed_target_exits_0_and_1_only_with_strict(from_record, capsys):
    slow = {"bench": _bench_record(1.5)}
    assert [g["met"] for g in slow["bench"]["goals"]] == [False, False, False, True]
    assert from_record(slow) == 0
    out = capsys.readouterr().out
    assert out.count("[target missed]") == 3 and "FAIL" not in out
    assert from_record(slow, "--strict") == 1
    capsys.readouterr()
    assert from_record({"bench": _bench_record(1.0)}, "--strict") == 0
    assert "[target missed]" not in capsys.readouterr().out


def test_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "1 a correctness check failed, or a performance target was missed with --strict" in out
    assert "'target met' or 'target missed'" in out


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
            "has schema_version 99; this netcheck reads schema_version 3",
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
