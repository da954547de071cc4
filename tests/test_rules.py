"""``check_custom_rule``: custom_vjp and custom_jvp rules judged against autodiff of their own
primal, argument by argument; planted errors of known size; real call signatures
(pytrees, keywords, nondiff_argnums, integer arguments and outputs); primals autodiff cannot
differentiate; bad input.

Planted errors carry their own size (a backward pass scaled by ``1 + ε``), which is the
independent number the verdict's relative error must reproduce.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.bench import rule_mutants
from netcheck.verifier.custom_rule import PROBES, check_custom_rule

# --- rules under test ----------------------------------------------------------------------


def _tanh_layer(x, w):
    return jnp.tanh(x @ w)


def scaled_tanh_layer(scale: float):
    """``tanh(x w)`` whose backward pass is the derivative times ``scale`` for ``w`` only."""
    rule = jax.custom_vjp(_tanh_layer)

    def forward(x, w):
        y = jnp.tanh(x @ w)
        return y, (x, w, y)

    def backward(saved, g):
        x, w, y = saved
        dz = g * (1 - y * y)
        return dz @ w.T, (x.T @ dz) * jnp.asarray(scale, w.dtype)

    rule.defvjp(forward, backward)
    return rule


def _polar(x, y):
    return jnp.hypot(x, y), jnp.arctan2(y, x)


def polar(angle_bug: float = 0.0):
    """``(r, θ)`` of points ``(x, y)`` as a custom_jvp; ``angle_bug`` spoils ``∂θ/∂x`` only."""
    rule = jax.custom_jvp(_polar)

    @rule.defjvp
    def _(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        r, theta = _polar(x, y)
        dr = (x * tx + y * ty) / r
        dtheta = (-y * tx * (1 + angle_bug) + x * ty) / (r * r)
        return (r, theta), (dr, dtheta)

    return rule


def _gated(params, x, mask, power, eps=0.5):
    y = (x @ params["w"] + params["b"]) ** power * mask.astype(x.dtype) + eps
    return {"count": jnp.sum(mask), "y": y}


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def gated(params, x, mask, power, eps=0.5):
    return _gated(params, x, mask, power, eps)


def _gated_forward(params, x, mask, power, eps=0.5):
    return _gated(params, x, mask, power, eps), (params, x, mask)


def _gated_backward(power, saved, g):
    params, x, mask = saved
    z = x @ params["w"] + params["b"]
    dz = g["y"] * mask.astype(x.dtype) * power * z ** (power - 1)
    return {"b": jnp.sum(dz), "w": x.T @ dz}, jnp.outer(dz, params["w"]), None, jnp.sum(g["y"])


gated.defvjp(_gated_forward, _gated_backward)


def _gated_point():
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.normal(size=3), jnp.float32), "b": jnp.float32(0.3)}
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    return params, x, jnp.asarray([1, 0, 1, 1], jnp.int32)


def _tanh_point(dtype=jnp.float32):
    rng = np.random.default_rng(5)
    return (
        jnp.asarray(rng.normal(size=(5, 4)), dtype),
        jnp.asarray(rng.normal(size=(4, 3)) / 2, dtype),
    )


# --- judging a rule ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layer_norm_verdict():
    args = rule_mutants.rule_arguments("layer_norm", jnp.float32, seed=2)
    return check_custom_rule(rule_mutants.rule("layer_norm"), *args), args


def test_a_correct_custom_vjp_passes_argument_by_argument(layer_norm_verdict):
    verdict, (h, gain, bias) = layer_norm_verdict
    assert verdict.ok, str(verdict)
    assert [row.name for row in verdict.rows] == ["args[0]", "args[1]", "args[2]"]
    assert {row.kind for row in verdict.rows} == {"vjp"}
    # Every probe is judged at once: a row's array is its argument's cotangents, stacked.
    assert [row.shape for row in verdict.rows] == [
        (PROBES, *h.shape),
        (PROBES, *gain.shape),
        (PROBES, *bias.shape),
    ]
    assert all(row.formula is not None and row.formula.ok for row in verdict.rows)
    assert verdict.witness.agrees and verdict.skipped == ()
    assert all(row.detectable_spread < 1e-12 for row in verdict.rows)


@pytest.mark.parametrize(
    ("dtype", "epsilon"), [("float32", 1e-3), ("bfloat16", 1e-9)], ids=["float32", "bfloat16"]
)
def test_a_scaled_backward_pass_fails_its_argument_with_the_planted_size(dtype, epsilon):
    verdict = check_custom_rule(scaled_tanh_layer(1 + epsilon), *_tanh_point(dtype))
    rows = {row.name: row for row in verdict.rows}
    assert not verdict.ok
    assert rows["args[0]"].ok and rows["args[1]"].status == "wrong_formula"
    assert verdict.reason.startswith("args[1]: wrong formula")
    if dtype == "float32":  # the working run shows the planted size: ‖(1+ε)t - t‖ / ‖t‖ = ε
        assert rows["args[1]"].relative_error == pytest.approx(epsilon, rel=1e-3)
        assert rows["args[1]"].cosine == pytest.approx(1.0, abs=1e-6)
    else:  # 1e-9 is far below bfloat16's rounding: only the float64 formula part sees it
        assert rows["args[1]"].precision.ok


def test_a_custom_jvp_is_judged_per_argument_and_output():
    rng = np.random.default_rng(1)
    x, y = (jnp.asarray(rng.normal(size=6) + 2, jnp.float32) for _ in range(2))
    right = check_custom_rule(polar(), x, y)
    assert right.ok, str(right)
    names = ["args[0] → out[0]", "args[0] → out[1]", "args[1] → out[0]", "args[1] → out[1]"]
    assert [row.name for row in right.rows] == names
    assert {row.kind for row in right.rows} == {"jvp"}
    wrong = check_custom_rule(polar(angle_bug=1e-4), x, y)
    assert [row.name for row in wrong.rows if not row.ok] == ["args[0] → out[1]"]
    assert wrong.rows[1].status == "wrong_formula"


def test_pytrees_keywords_nondiff_and_integer_arguments_and_outputs():
    params, x, mask = _gated_point()
    verdict = check_custom_rule(gated, params, x, mask, 2, eps=0.25)
    assert verdict.ok, str(verdict)
    # Floating leaves are judged, by position and path; the Python float eps too.
    assert [row.name for row in verdict.rows] == [
        "args[0]['b']",
        "args[0]['w']",
        "args[1]",
        "args[4]",
    ]
    assert verdict.skipped == ("args[2]", "args[3] (nondiff)", "output['count'] (int32)")
    # Keyword and position give the same verdict.
    by_position = check_custom_rule(gated, params, x, mask, 2, 0.25)
    assert [row.distance for row in by_position.rows] == [row.distance for row in verdict.rows]


def test_a_surrogate_rule_is_reported_as_not_the_derivative():
    verdict = check_custom_rule(rule_mutants.straight_through_round, jnp.linspace(-2.2, 2.2, 9))
    (row,) = verdict.rows
    assert row.status == "wrong_formula"
    assert row.formula.worst_truth == 0  # round's derivative, where it exists


def test_a_rule_that_cannot_run_in_float64_is_judged_on_precision_alone():
    rule = jax.custom_vjp(_tanh_layer)

    def backward(saved, g):
        x, w = saved
        dz = (g * (1 - jnp.tanh(x @ w) ** 2)).astype(jnp.float32)  # a hard cast
        return dz @ w.T.astype(jnp.float32), x.T.astype(jnp.float32) @ dz

    rule.defvjp(lambda x, w: (_tanh_layer(x, w), (x, w)), backward)
    verdict = check_custom_rule(rule, *_tanh_point())
    assert verdict.ok, str(verdict)
    assert all(row.formula is None for row in verdict.rows)
    assert "precision judged alone" in verdict.formula_note


def test_a_jitted_rule_is_the_rule():
    rule = rule_mutants.rule("soft_round", "normaliser_dropped")
    args = rule_mutants.rule_arguments("soft_round", jnp.float32, seed=4, rows=2, width=3)
    jitted = check_custom_rule(jax.jit(rule, static_argnums=1), *args)
    plain = check_custom_rule(rule, *args)
    assert [row.status for row in jitted.rows] == [row.status for row in plain.rows]
    assert plain.rows[0].status == "wrong_formula"
    assert plain.skipped == ("args[1] (nondiff)",)


# --- no reference --------------------------------------------------------------------------


def _callback_sin(x):
    shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(lambda a: np.sin(a).astype(a.dtype), shape, x)


def _doubling_loop(x):
    return jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] * 2, c[1] + 1), (x, 0))[0]


def test_a_primal_autodiff_cannot_differentiate_has_no_reference_not_a_failure():
    callback = jax.custom_jvp(_callback_sin)
    callback.defjvp(lambda p, t: (_callback_sin(p[0]), jnp.cos(p[0]) * t[0]))
    loop = jax.custom_vjp(_doubling_loop)
    loop.defvjp(lambda x: (_doubling_loop(x), None), lambda _, g: (8 * g,))
    for rule, message in ((callback, "Pure callbacks"), (loop, "while_loop")):
        verdict = check_custom_rule(rule, jnp.linspace(0.1, 1.0, 4))
        (row,) = verdict.rows
        assert row.status == "no_reference" and row.ok, str(verdict)
        assert verdict.ok and verdict.reasons == ()
        assert message in row.why and message in verdict.formula_note


# --- bad input -----------------------------------------------------------------------------


def test_a_plain_function_is_refused_naming_what_is_expected():
    with pytest.raises(TypeError, match=r"jax\.custom_vjp or jax\.custom_jvp.*'_tanh_layer'"):
        check_custom_rule(_tanh_layer, *_tanh_point())
    with pytest.raises(TypeError, match=r"without a rule: define it with .defvjp"):
        check_custom_rule(jax.custom_vjp(_tanh_layer), *_tanh_point())


def test_a_rule_whose_output_disagrees_with_its_primal_is_refused_naming_the_rule():
    rule = jax.custom_vjp(_tanh_layer)
    rule.defvjp(lambda x, w: ((_tanh_layer(x, w), x), (x, w)), lambda saved, g: saved)
    with pytest.raises(ValueError, match=r"custom_vjp rule of _tanh_layer .*returns an output"):
        check_custom_rule(rule, *_tanh_point())
    shape = jax.custom_vjp(_tanh_layer)
    shape.defvjp(lambda x, w: (_tanh_layer(x, w), (x, w)), lambda s, g: (s[0], s[1].sum()))
    with pytest.raises(ValueError, match=r"custom_vjp rule of _tanh_layer .*does not fit"):
        check_custom_rule(shape, *_tanh_point())
    tangent = jax.custom_jvp(_tanh_layer)
    tangent.defjvp(lambda p, t: (_tanh_layer(*p), jnp.sum(t[0])))
    with pytest.raises(ValueError, match="custom_jvp rule of _tanh_layer"):
        check_custom_rule(tangent, *_tanh_point())


def test_arguments_that_do_not_fit_are_refused():
    x, w = _tanh_point()
    rule = scaled_tanh_layer(1.0)
    with pytest.raises(TypeError, match="do not fit _tanh_layer"):
        check_custom_rule(rule, x, w, bogus=1)
    with pytest.raises(ValueError, match=r"primal f.fun.* fails at these arguments"):
        check_custom_rule(rule, x, w.T)
    with pytest.raises(ValueError, match="no floating argument"):
        check_custom_rule(gated, {"w": jnp.arange(3), "b": 1}, jnp.ones((4, 3), int), 1, 1, 0)
    with pytest.raises(ValueError, match="probes must be a positive int"):
        check_custom_rule(rule, x, w, probes=0)
    with pytest.raises(TypeError, match="needs concrete values"):
        jax.jit(lambda x: check_custom_rule(rule, x, w))(x)
