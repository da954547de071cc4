"""``term_magnitudes``: the summed absolute terms of a linear map, against NumPy.

The independent facts: for ``L v = A v - B v`` the terms are ``A_ij v_j`` and ``-B_ij v_j``,
so ``|L|(|v|) = |A||v| + |B||v|`` (NumPy); a sum whose terms share one sign has magnitudes
equal to the absolute result; a softmax that saturates cancels terms of size 1 to a
result near 0, so its magnitudes are far above ``|L v|``. And the verifier uses them: the
causal-attention rules that failed by float64 round-off at saturated softmax (recorded by
the rule catalogue's false-alarm sweep) now pass, while the planted bugs still fail.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import netcheck as nc
from netcheck.bench import rule_mutants
from netcheck.verifier.term_magnitudes import term_magnitudes

RNG = np.random.default_rng(7)
A = RNG.normal(size=(4, 3))
B = RNG.normal(size=(4, 3))
V = RNG.normal(size=3)


def test_a_difference_of_products_sums_the_absolute_products():
    magnitudes = term_magnitudes(lambda v: jnp.asarray(A) @ v - jnp.asarray(B) @ v, V)
    expected = np.abs(A) @ np.abs(V) + np.abs(B) @ np.abs(V)
    np.testing.assert_allclose(np.asarray(magnitudes), expected, rtol=1e-6)


def test_terms_of_one_sign_give_the_absolute_result():
    positive = np.abs(A)

    def linear(v):
        return jnp.sum(jnp.exp(jnp.asarray(positive)) * v[None, :], axis=1) / 2.0

    v = np.abs(V)
    np.testing.assert_allclose(
        np.asarray(term_magnitudes(linear, v)), np.abs(np.asarray(linear(v))), rtol=1e-6
    )


def test_pytrees_in_and_out_keep_their_structure_and_jit_agrees():
    def linear(v):
        return {"sum": v["a"] + v["b"], "scaled": [-3.0 * v["a"]]}

    probe = {"a": jnp.asarray([1.0, -2.0]), "b": jnp.asarray([-1.0, 2.0])}
    magnitudes = term_magnitudes(linear, probe)
    np.testing.assert_allclose(magnitudes["sum"], [2.0, 4.0])
    np.testing.assert_allclose(magnitudes["scaled"][0], [3.0, 6.0])
    jitted = jax.jit(lambda p: term_magnitudes(linear, p))(probe)
    np.testing.assert_allclose(jitted["sum"], magnitudes["sum"])


def test_a_saturated_softmax_vjp_is_judged_by_the_terms_that_cancel():
    logits = jnp.asarray([30.0, 0.0, -5.0])
    _, pullback = jax.vjp(jax.nn.softmax, logits)
    cotangent = jnp.asarray([1.0, -0.5, 2.0])
    (result,) = pullback(cotangent)
    (magnitudes,) = term_magnitudes(pullback, cotangent)
    # softmax'ᵀ c = p ⊙ (c - ⟨p, c⟩): with p ≈ e₁ the first element is ~1e-13 made of terms ~1.
    assert abs(float(result[0])) < 1e-10
    assert float(magnitudes[0]) > 1.0
    assert np.all(np.asarray(magnitudes) >= np.abs(np.asarray(result)) * (1 - 1e-6))


def test_a_loop_sums_the_terms_of_every_iteration():
    w = np.asarray(A[:3])
    magnitudes = term_magnitudes(
        lambda v: jax.lax.fori_loop(0, 3, lambda i, a: jnp.asarray(w) @ a - a, v), V
    )
    step = np.abs(w) + np.eye(3)
    np.testing.assert_allclose(np.asarray(magnitudes), step @ step @ step @ np.abs(V), rtol=1e-6)


@pytest.mark.parametrize("positive", [True, False])
def test_a_branch_takes_the_terms_of_the_branch_taken(positive):
    def linear(v):
        return jax.lax.cond(
            positive, lambda a: jnp.asarray(A) @ a, lambda a: -jnp.asarray(B) @ a, v
        )

    expected = (np.abs(A) if positive else np.abs(B)) @ np.abs(V)
    np.testing.assert_allclose(np.asarray(term_magnitudes(linear, V)), expected, rtol=1e-6)


def test_a_while_loop_is_not_read_and_gives_none():
    def linear(v):
        return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, 2.0 * c[1]), (0, v))[1]

    assert term_magnitudes(linear, V) is None


# The correct causal-attention rules the committed false-alarm sweep once flagged
# (rows, width, scale, seed), where the softmax saturates and δS cancels to ~1e-11.
SATURATED = [
    (2, 5, 8.880313859074091, 3854),
    (2, 5, 5.492394849061137, 9688),
    (6, 8, 3.6693900321781547, 148554),
    (2, 5, 6.08639369598354, 520666478),
]


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize(("rows", "width", "scale", "seed"), SATURATED)
def test_correct_attention_at_a_saturated_softmax_passes(dtype, rows, width, scale, seed):
    with jax.enable_x64(dtype == "float64"):
        args = rule_mutants.rule_arguments(
            "causal_attention", jnp.dtype(dtype), seed, rows, width, scale
        )
        verdict = nc.check_custom_rule(rule_mutants.rule("causal_attention"), *args)
    assert verdict.ok, verdict


@pytest.mark.parametrize(
    "mutant",
    [m for m in rule_mutants.MUTANTS if m.family == "causal_attention"],
    ids=lambda m: m.bug,
)
def test_attention_bugs_still_fail_at_a_saturated_softmax(mutant):
    rows, width, scale, seed = SATURATED[2]
    args = rule_mutants.rule_arguments("causal_attention", jnp.float32, seed, rows, width, scale)
    verdict = nc.check_custom_rule(rule_mutants.rule("causal_attention", mutant.bug), *args)
    assert not verdict.ok, verdict
