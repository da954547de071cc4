"""``netcheck verify``: exit codes 0/1/2, the summary, the JSON record."""

from __future__ import annotations

import json

import pytest

from netcheck.cli import main


def test_a_passing_selection_exits_0_and_writes_every_case(tmp_path, capsys):
    path = tmp_path / "verify.json"
    code = main(
        ["verify", "--quick", "--activation", "identity", "--json", str(path), "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "verify: OK" in out and "float64" in out
    record = json.loads(path.read_text())
    assert record["kind"] == "verify" and record["ok"] is True
    suite = record["suite"]
    assert suite["n_cases"] == len(suite["cases"]) == 4 and suite["n_failed"] == 0
    case = suite["cases"][0]
    assert case["spec"]["activation"] == "identity" and case["ok"] is True
    assert {"layer", "worst_relative_error", "worst_ratio", "rows"} <= set(case["layers"][0])
    assert "kill_matrix" not in record and "detection_power" not in record


def test_every_planted_bug_dies_in_bfloat16_thanks_to_the_formula_part(tmp_path, capsys):
    # A 1e-3 scaling of one layer is below bfloat16's resolution: the precision part alone
    # cannot see it, but the float64 run of the formula does, so every planted bug dies.
    path = tmp_path / "mutants.json"
    argv = ["verify", "--quick", "--activation", "sigmoid", "--dtype", "bfloat16"]
    code = main([*argv, "--mutants", "--json", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "verify: OK" in out and "kill matrix (bfloat16" in out
    matrix = json.loads(path.read_text())["kill_matrix"]
    assert matrix["control_ok"] and matrix["all_killed"] and matrix["all_localised"]
    scaled = next(m for m in matrix["mutants"] if m["name"] == "scaled_layer")
    assert all("wrong formula" in case["reason"] for case in scaled["cases"])
    # --activation sigmoid selects the sigmoid/BCE kill spec, where e.g. W is not square.
    assert "not_transposed" in matrix["not_run"]


def test_a_failing_check_exits_1(tmp_path, capsys):
    # Tolerances a thousand times too tight: correct code fails, and the run says so.
    argv = ["verify", "--quick", "--activation", "tanh", "--no-progress"]
    code = main([*argv, "--noise-multiple", "0.008", "--tie-multiple", "0.004"])
    out = capsys.readouterr().out
    assert code == 1 and "verify: FAILED" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--json", "/no/such/folder/x.json"], "does not exist"),
        (["--power", "0"], "--power must be a positive"),
        (["--quick", "--activation", "relu", "--dtype", "float32"], "no case matches"),
        (["--quick", "--activation", "elu", "--mutants"], "no kill-matrix spec"),
        (["--quick", "--noise-multiple", "-1"], "noise_multiple (K) must be a finite positive"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    assert main(["verify", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("netcheck verify: error:")


def test_argparse_refuses_unknown_choices_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--dtype", "float8"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--mutants", "--quick", "--activation", "--loss", "--dtype", "--json"):
        assert option in out
