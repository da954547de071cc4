"""``audit``: every custom rule a program reaches, checked where it reaches it, named by its
Python name and location; surrogates skipped by name; JAX's own rules left out by default.

The program is the rule catalogue's small model (a layer norm, causal attention, a
soft-round quantiser and a softmax cross-entropy, each a custom rule) under ``jit`` and
``vmap``; a planted bug in one rule is the independent fact the report must name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.bench import rule_mutants
from netcheck.verifier.audit import AuditReport, audit

EXAMPLES = 2


def batched(loss):
    """The model's loss averaged over a vmapped batch of ``EXAMPLES`` sequences, jitted."""

    @jax.jit
    def batch_loss(params, xs, labels):
        return jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(params, xs, labels))

    return batch_loss


@pytest.fixture(scope="module")
def point():
    params, x, labels = rule_mutants.model_arguments(jnp.float32, seed=1)
    return params, jnp.stack([x, -x]), jnp.stack([labels, labels[::-1]])


@pytest.fixture(scope="module")
def clean_report(point) -> AuditReport:
    return audit(batched(rule_mutants.model()), *point)


def test_every_rule_of_a_correct_model_is_found_where_it_is_reached_and_passes(clean_report):
    report = clean_report
    assert report.ok, str(report)
    assert sorted(rule.name for rule in report.rules) == sorted(
        ("layer_norm", "causal_attention", "soft_round", "softmax_cross_entropy")
    )
    for rule in report.rules:
        assert rule.status == "ok" and rule.values_recovered
        assert rule.path == "jit(batch_loss) > vmap" and rule.count == EXAMPLES
        assert rule.location.startswith(rule_mutants.__file__)
        assert rule.rule is rule_mutants.rule(rule.name)
    ratios = [rule.worst_ratio for rule in report.rules]
    assert ratios == sorted(ratios, reverse=True)  # worst first
    text = str(report)
    assert text.startswith("audit: OK: 4 rule(s): 4 ok")
    assert "rule_mutants.py" in text and "recovered" in text


@pytest.mark.parametrize(
    ("bug", "hint"),
    [
        ("layer_norm/eps_forgotten", "most likely a slip"),  # relative ~1e-5
        ("causal_attention/mask_off_by_one", "pass skip=('causal_attention',)"),  # gross
    ],
)
def test_a_planted_bug_is_named_and_only_its_rule_fails(point, bug, hint):
    family, name = bug.split("/")
    mutant = rule_mutants.rule(family, name)
    report = audit(batched(rule_mutants.model({family: mutant})), *point)
    assert not report.ok
    (failed,) = report.failed
    assert failed is report.rules[0] and failed.name == family
    assert failed.rule is mutant and failed.status == "failed"
    assert "wrong formula" in str(report)
    assert hint in failed.note
    with pytest.raises(AssertionError) as raised:
        report.raise_if_failed()
    assert f"{family} (rule_mutants.py:" in str(raised.value)  # the verdict table follows
    assert "quantity  status" in str(raised.value)


def _quantised_loss(w, x):
    return jnp.sum(rule_mutants.straight_through_round(x @ w) ** 2)


def test_a_surrogate_fails_with_a_hint_unless_skipped():
    w, x = jnp.ones((3, 2)) / 3, jnp.linspace(-2, 2, 12).reshape(4, 3)
    report = audit(_quantised_loss, w, x)
    (rule,) = report.rules
    assert rule.status == "failed" and rule.name == "round_to_integer"
    assert "pass skip=('round_to_integer',)" in rule.note
    skipped = audit(_quantised_loss, w, x, skip="round_to_integer")
    assert skipped.ok and skipped.rules[0].status == "skipped" and skipped.rules[0].verdict is None
    with pytest.raises(ValueError, match=r"match no rule the program reaches.*round_to_integer"):
        audit(_quantised_loss, w, x, skip=("round_to_integr",))
    with pytest.raises(TypeError, match="skip must be rule names"):
        audit(_quantised_loss, w, x, skip=3)


def test_a_program_without_rules_gives_an_empty_ok_report_and_jax_rules_are_opt_in():
    def plain(w):
        return jnp.sum(jnp.tanh(w) ** 2)

    empty = audit(plain, jnp.ones(3))
    assert empty.ok and empty.rules == () and empty.jax_rules == ()
    assert str(empty) == "audit: OK: the program reaches no custom_vjp/custom_jvp rule of its own"

    def with_relu(w):
        return jnp.sum(jax.nn.relu(w - 0.5) ** 2)

    w = jnp.linspace(-1.0, 1.0, 6)
    default = audit(with_relu, w)
    assert default.rules == () and default.jax_rules == ("relu",)
    assert "JAX's own rules reached, not audited: relu" in str(default)
    included = audit(with_relu, w, include_jax_rules=True)
    assert [(rule.name, rule.status) for rule in included.rules] == [("relu", "ok")]


@jax.custom_vjp
def _clipped_square(x):
    return x * x


_clipped_square.defvjp(
    lambda x: (x * x, x),
    # A slip that only shows on large inputs: the gradient is clipped at |x| > 10.
    lambda x, g: (jnp.where(jnp.abs(x) > 10, 0.0, 2 * x * g),),
)


def test_rules_are_checked_at_the_values_the_program_gives_them():
    def program(x, take_branch):
        big = _clipped_square(x + 20.0)  # reached with values near 20: the slip shows
        return jnp.sum(big) + jax.lax.cond(
            take_branch,
            lambda: jnp.sum(rule_mutants.rule("layer_norm")(x[None], x, x)),
            lambda: 0.0,
        )

    report = audit(program, jnp.linspace(-1.0, 1.0, 4), False)
    rules = {rule.name: rule for rule in report.rules}
    assert rules["_clipped_square"].status == "failed" and rules["_clipped_square"].values_recovered
    # The branch not taken: found by the trace, checked at random values, and said so.
    untaken = rules["layer_norm"]
    assert untaken.count == 0 and not untaken.values_recovered and untaken.status == "ok"
    assert "random values" in untaken.note and "not taken" in untaken.note


def test_a_rule_that_does_not_fit_or_has_no_reference_is_reported_not_raised():
    @jax.custom_vjp
    def misfit(x):
        return jnp.sin(x)

    misfit.defvjp(lambda x: ((jnp.sin(x), x), x), lambda x, g: (g,))

    def callback_cos(x):
        shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return jax.pure_callback(lambda a: np.cos(a).astype(a.dtype), shape, x)

    opaque = jax.custom_jvp(callback_cos)
    opaque.defjvp(lambda p, t: (callback_cos(p[0]), -jnp.sin(p[0]) * t[0]))

    report = audit(lambda x: jnp.sum(misfit(x)) + jnp.sum(opaque(x)), jnp.ones(3))
    error = report["misfit"]  # found by the last part of its qualified name
    assert error.name.endswith("_reported_not_raised.<locals>.misfit")
    assert error.status == "error" and "returns an output of structure" in error.note
    assert report["callback_cos"].status == "no_reference" and report["callback_cos"].ok
    assert not report.ok and report.rules[0] is error


def test_a_program_that_cannot_be_traced_gets_one_netcheck_error():
    def broken(w):
        return jnp.sum(w @ jnp.ones((5, 2)))

    with pytest.raises(ValueError, match=r"audit: fn cannot be traced at these arguments \("):
        audit(broken, jnp.ones(3))
    with pytest.raises(TypeError, match="fn must be callable"):
        audit(3, jnp.ones(3))


@jax.custom_vjp
def _scaled(x, s):
    return x * s


_scaled.defvjp(lambda x, s: (x * s, s), lambda s, g: (g * s, None))  # None for s


def test_a_rule_giving_zero_for_an_argument_is_told_so():
    report = audit(lambda x: jnp.sum(_scaled(x, jnp.float32(2.0))), jnp.linspace(1.0, 2.0, 3))
    (rule,) = report.rules
    assert rule.status == "failed"
    assert [row.name for row in rule.verdict.rows if not row.ok] == ["args[1]"]
    assert "exactly zero for args[1] (a None cotangent?)" in rule.note
    assert "skip=" not in rule.note  # a zero cotangent alone is no surrogate
