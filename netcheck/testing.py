"""Assertions for pytest: a failed check fails the test with its whole table.

``assert verdict.ok`` shows pytest a truncated dataclass; these raise ``AssertionError``
whose message is the table, failing rows first, and on passing rows the smallest error
each would have caught (spread over the array and in one element)::

    from netcheck import testing

    def test_my_layer_norm_rule():
        testing.assert_custom_rule_ok(my_layer_norm, h, gain, bias)

    def test_every_rule_in_my_model():
        testing.assert_audit_ok(model_loss, params, x, y, skip=("straight_through",))

Each takes exactly the arguments of the check it runs (``netcheck.check_gradient``,
``netcheck.check_custom_rule``, ``netcheck.audit``) and returns its result when it
passes, so a test can assert more about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from netcheck.verifier import Verdict, check_gradient
from netcheck.verifier.audit import AuditReport, audit
from netcheck.verifier.custom_rule import check_custom_rule

__all__ = ["assert_audit_ok", "assert_custom_rule_ok", "assert_gradient_ok"]


def assert_gradient_ok(
    loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any, *args: Any, **kwargs: Any
) -> Verdict:
    """``netcheck.check_gradient`` (same arguments); fail with its table if it fails.

    Returns:
        The verdict, when it passes.

    Raises:
        AssertionError: the verdict's table, failing rows first.
    """
    __tracebackhide__ = True  # pytest shows the caller's line
    verdict = check_gradient(loss_fn, grad_fn, params, *args, **kwargs)
    verdict.raise_if_failed()
    return verdict


def assert_custom_rule_ok(f: Any, *args: Any, **kwargs: Any) -> Verdict:
    """``netcheck.check_custom_rule`` (same arguments); fail with its table if it fails.

    Returns:
        The verdict, when it passes.

    Raises:
        AssertionError: the verdict's table, failing rows first.
    """
    __tracebackhide__ = True
    verdict = check_custom_rule(f, *args, **kwargs)
    verdict.raise_if_failed()
    return verdict


def assert_audit_ok(
    fn: Callable[..., Any], *args: Any, skip: str | Iterable[str] = (), **kwargs: Any
) -> AuditReport:
    """``netcheck.audit`` (same arguments); fail with its report if a rule fails.

    Returns:
        The report, when every rule passes.

    Raises:
        AssertionError: the report's table, then each failing rule's verdict table.
    """
    __tracebackhide__ = True
    report = audit(fn, *args, skip=skip, **kwargs)
    report.raise_if_failed()
    return report
