"""The machinery of ``scripts/mutation_check.py``, not the check itself (that takes half an hour).

Every catalogue entry must still find its code, exactly once, in today's source: a refactor
that moves the code away fails here rather than silently turning a mutation into a no-op. A
mutation that does not apply is reported as such and never counted as killed, and the copy
the tests run against is the one that ``import netcheck`` resolves to.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "mutation_check", ROOT / "scripts" / "mutation_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


mutation_check = _load_script()
CATALOGUE = mutation_check.CATALOGUE
Mutation = mutation_check.Mutation


def test_catalogue_is_broad_and_names_are_unique():
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    assert len(CATALOGUE) >= 25
    areas = {name.partition(":")[0] for name in names}
    assert {"activations", "losses", "backprop", "verifier", "hvp", "trainer"} <= areas
    assert {"checkpoint", "bench", "figures", "report", "rules", "audit"} <= areas


@pytest.mark.parametrize("mutation", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_each_mutation_applies_once_to_todays_source(mutation):
    source = (ROOT / mutation.file).read_text(encoding="utf-8")
    mutated, matches = mutation_check.apply(source, mutation)
    assert matches == 1, f"{mutation.name}: the pattern matched {matches} times"
    assert mutated is not None and mutated != source
    compile(mutated, mutation.file, "exec")  # a mutant that is not Python kills nothing real
    for test in mutation.tests:
        assert (ROOT / test.partition("::")[0]).is_file(), test


def test_a_pattern_matching_twice_does_not_apply_when_once_is_required():
    twice = Mutation("t:twice", "m.py", r"x = 1", "x = 2", ("tests/test_x.py",))
    assert mutation_check.apply("x = 1\nx = 1\n", twice) == (None, 2)
    every = Mutation("t:every", "m.py", r"x = 1", "x = 2", ("tests/test_x.py",), once=False)
    assert mutation_check.apply("x = 1\nx = 1\n", every) == ("x = 2\nx = 2\n", 2)


def test_a_mutation_that_no_longer_applies_is_reported_and_not_killed(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text("y = 3\n", encoding="utf-8")
    gone = Mutation("t:gone", "m.py", r"x = 1", "x = 2", ("tests/test_x.py",))

    def no_pytest(*args, **kwargs):
        raise AssertionError("pytest must not run for a mutation that does not apply")

    monkeypatch.setattr(mutation_check, "run_tests", no_pytest)
    row = mutation_check.check_one(tmp_path, gone, timeout_s=1.0)
    assert row["outcome"] == mutation_check.NOT_APPLIED
    assert row["matches"] == 0
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == "y = 3\n"
    counts = mutation_check.summary([row])
    assert counts[mutation_check.KILLED] == 0 and counts[mutation_check.NOT_APPLIED] == 1


def test_the_file_is_restored_after_its_tests_ran(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    seen = []

    def fake_run(copy, mutation, timeout_s):
        seen.append((copy / "m.py").read_text(encoding="utf-8"))
        return mutation_check.SURVIVED, ""

    monkeypatch.setattr(mutation_check, "run_tests", fake_run)
    mutation = Mutation("t:one", "m.py", r"x = 1", "x = 2", ("tests/test_x.py",))
    row = mutation_check.check_one(tmp_path, mutation, timeout_s=1.0)
    assert seen == ["x = 2\n"]
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == "x = 1\n"
    assert row["outcome"] == mutation_check.SURVIVED
    assert row["explanation"].startswith("NOT EXPLAINED")


def test_the_copy_is_what_netcheck_is_imported_from(tmp_path):
    # A stand-in package: the venv's editable install points at the real tree, and the
    # copy's PYTHONPATH must win over it.
    (tmp_path / "netcheck").mkdir()
    (tmp_path / "netcheck" / "__init__.py").write_text("", encoding="utf-8")
    where = mutation_check.imported_from(tmp_path)
    assert where == (tmp_path / "netcheck" / "__init__.py").resolve()


def test_the_pytest_command_runs_one_process_and_stops_at_the_first_failure():
    mutation = Mutation("t:k", "m.py", "a", "b", ("tests/test_x.py",), keyword="not slow")
    command = mutation_check.pytest_command(mutation)
    assert command[1:3] == ["-m", "pytest"]
    assert "-x" in command and "no:cacheprovider" in command
    assert command[-3:] == ["tests/test_x.py", "-k", "not slow"]


def test_a_kill_whose_test_fails_without_the_mutation_is_no_kill(tmp_path, monkeypatch):
    output = (
        "F\n=== short test summary info ===\n"
        "FAILED tests/test_a.py::test_one[x-y] - AssertionError: off by 1\n"
        "1 failed in 0.1s\n"
    )
    rows = [
        {"outcome": mutation_check.KILLED, "detail": mutation_check._first_failure(output)},
        {"outcome": mutation_check.KILLED, "detail": "tests/test_b.py::test_two - assert 0"},
        {"outcome": mutation_check.SURVIVED, "detail": ""},
    ]
    assert mutation_check.killing_test(rows[0]) == "tests/test_a.py::test_one[x-y]"
    ran = []

    def fake_run(command, **kwargs):
        ran.append(command)
        # Unmutated, test_a's test still fails and test_b's passes.
        return subprocess.CompletedProcess(command, 1, stdout=output, stderr="")

    monkeypatch.setattr(mutation_check.subprocess, "run", fake_run)
    mutation_check.confirm_kills(tmp_path, rows, timeout_s=1.0)
    assert len(ran) == 1
    assert {"tests/test_a.py::test_one[x-y]", "tests/test_b.py::test_two"} <= set(ran[0])
    assert rows[0]["outcome"] == mutation_check.ERROR
    assert "fails without the mutation too" in rows[0]["detail"]
    assert [row["outcome"] for row in rows[1:]] == [mutation_check.KILLED, mutation_check.SURVIVED]
