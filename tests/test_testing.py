"""``netcheck.testing``: pytest assertions whose message is the whole table, failing rows
first; and the pytest example files the README and the docs show, run as tests."""

from __future__ import annotations

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from netcheck import testing
from netcheck.bench import rule_mutants
from netcheck.verifier import Verdict

ROOT = Path(__file__).resolve().parents[1]


def _loss(w, x):
    return jnp.sum(jnp.tanh(x @ w) ** 2)


def _grad(scale):
    def grad(w, x):
        h = jnp.tanh(x @ w)
        return x.T @ (2 * h * (1 - h * h)) * jnp.asarray(scale, w.dtype)

    return grad


def _point():
    rng = np.random.default_rng(2)
    return (
        jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
        jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
    )


def _message_rows(message: str) -> list[str]:
    """The table's rows (after its title and header), up to the notes."""
    lines = message.splitlines()
    assert lines[0].startswith("verdict: FAILED") and lines[1].startswith("quantity")
    return [line for line in lines[2:] if not line.startswith("  ")]


def test_assert_gradient_ok_returns_the_verdict_or_fails_with_the_table():
    w, x = _point()
    assert isinstance(testing.assert_gradient_ok(_loss, _grad(1.0), w, x), Verdict)
    with pytest.raises(AssertionError) as raised:
        testing.assert_gradient_ok(_loss, _grad(1.001), w, x)
    (row,) = _message_rows(str(raised.value))
    assert row.split()[:2] == ["params", "wrong_formula"]
    assert "wrong formula" in str(raised.value)


def test_assert_custom_rule_ok_puts_the_failing_rows_first_and_the_power_on_passing_ones():
    args = rule_mutants.rule_arguments("softmax_cross_entropy", jnp.float32, seed=3)
    passed = testing.assert_custom_rule_ok(rule_mutants.rule("softmax_cross_entropy"), *args)
    assert passed.ok
    bad = rule_mutants.rule("softmax_cross_entropy", "labels_sign")  # args[1] is wrong
    with pytest.raises(AssertionError) as raised:
        testing.assert_custom_rule_ok(bad, *args)
    failing, passing = _message_rows(str(raised.value))
    assert failing.split()[:2] == ["args[1]", "wrong_formula"]
    assert passing.split()[:2] == ["args[0]", "ok"]
    # A passing row states the smallest error it would have caught: spread | element.
    spread, element = (float(v) for v in re.findall(r"(\S+) \| (\S+)$", passing)[0])
    assert 0 < spread < 1e-12 and 0 < element < 1e-12


def test_assert_audit_ok_fails_with_the_report_and_the_failing_rules_verdict():
    def loss(w, x):
        return jnp.sum(rule_mutants.straight_through_round(x @ w) ** 2)

    w, x = _point()
    assert testing.assert_audit_ok(loss, w, x, skip="round_to_integer").ok
    with pytest.raises(AssertionError) as raised:
        testing.assert_audit_ok(loss, w, x)
    message = str(raised.value)
    assert message.startswith("audit: FAILED: 1 rule(s): 1 failed")
    assert "pass skip=('round_to_integer',)" in message
    assert "verdict: FAILED" in message  # the rule's own table follows the report


def _pytest_example(path: Path) -> str:
    """The Python block of ``path`` that imports ``netcheck.testing``: a pytest file."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    (block,) = [block for block in blocks if "from netcheck import testing" in block]
    return block


@pytest.mark.parametrize("page", ["README.md", "docs/own-backward-pass.md"])
def test_the_pytest_example_files_pass(page):
    namespace: dict = {}
    exec(compile(_pytest_example(ROOT / page), page, "exec"), namespace)
    tests = {name: value for name, value in namespace.items() if name.startswith("test_")}
    assert len(tests) >= 3
    for test in tests.values():
        test()  # each test of the example file passes
