"""The rule finder: every custom rule a program reaches, where, how often, at which values.

Expected values are worked out by hand from the program's own inputs (example 0 of a vmap,
the first iteration of a loop), or read from a side channel: a ``jax.debug.callback`` in the
primal, logging what the rule got in an ordinary compiled run of the same program.
"""

from __future__ import annotations

import inspect
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck import _jaxpr
from netcheck._jaxpr import ReachedRule, UnsupportedJaxVersion, check_jax_version, find_rules

# --- rules under test ----------------------------------------------------------------------


@jax.custom_vjp
def scaled_sin(x, y):
    return jnp.sin(x) * y


def _scaled_sin_bwd(res, g):
    x, y = res
    leading = tuple(range(jnp.ndim(x) - jnp.ndim(y)))  # y broadcast over them
    return jnp.cos(x) * y * g, jnp.sum(jnp.sin(x) * g, axis=leading)


scaled_sin.defvjp(lambda x, y: (scaled_sin(x, y), (x, y)), _scaled_sin_bwd)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def power(x, n):
    return x**n


@power.defjvp
def _power_jvp(n, primals, tangents):
    (x,), (t,) = primals, tangents
    return power(x, n), n * x ** (n - 1) * t


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def clipped_identity(threshold, x):
    return x


clipped_identity.defvjp(
    lambda threshold, x: (x, None),
    lambda threshold, _, g: (jnp.clip(g, -threshold, threshold),),
)


@jax.custom_vjp
def affine(params, x, eps=0.5):
    return params["w"] * x + params["b"] + eps


affine.defvjp(
    lambda params, x, eps=0.5: (affine(params, x, eps), (params, x)),
    lambda res, g: ({"w": g * res[1], "b": g}, g * res[0]["w"], None),
)


@jax.custom_jvp
def double_sin(x):  # a rule whose primal calls another rule
    return scaled_sin(x, 2.0)


double_sin.defjvp(lambda p, t: (double_sin(p[0]), 2.0 * jnp.cos(p[0]) * t[0]))


def _line_of(marker: str) -> str:
    """``file:line`` of the line of this file holding ``marker``."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    (number,) = [i for i, line in enumerate(lines, 1) if marker in line and "_line_of" not in line]
    return f"{__file__}:{number}"


X = jnp.asarray(np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3))
Y = jnp.asarray(np.float32(1.5))


def _only(records: list[ReachedRule]) -> ReachedRule:
    assert len(records) == 1, records
    return records[0]


def _same(got, expected) -> None:
    """The same pytree with the same values (exactly: they are the program's own inputs)."""
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- where rules are found ------------------------------------------------------------------


def test_a_program_without_rules_gives_no_records():
    assert find_rules(lambda x: jnp.tanh(x) * 2.0, X) == []


def test_a_direct_call_is_found_with_its_name_place_and_values():
    record = _only(find_rules(lambda x, y: scaled_sin(x, y), X, Y))  # call: direct
    assert record.rule is scaled_sin and record.kind == "custom_vjp"
    assert record.name == "scaled_sin"
    source_line = inspect.getsourcelines(scaled_sin.fun)[1]
    assert record.location == f"{inspect.getsourcefile(scaled_sin.fun)}:{source_line}"
    assert record.call_site == _line_of("# call: direct")
    assert record.nondiff_argnums == ()
    assert (record.path, record.count, record.values_recovered) == ("", 1, True)
    assert record.why_not_recovered is None
    _same(record.args, (X, Y))


def test_inside_jit_the_path_names_the_jitted_function():
    @jax.jit
    def model(x, y):
        return scaled_sin(x, y).sum()

    model(X, Y)  # compiled and cached before: the finder must still see the call
    record = _only(find_rules(model, X, Y))
    assert (record.path, record.count) == ("jit(model)", 1)
    _same(record.args, (X, Y))


def test_under_vmap_the_values_are_example_zero_and_count_is_the_batch():
    record = _only(find_rules(jax.vmap(scaled_sin, in_axes=(1, None)), X, Y))
    assert (record.path, record.count, record.values_recovered) == ("vmap", 3, True)
    _same(record.args, (X[:, 0], Y))


def test_under_nested_vmap_every_batch_axis_is_sliced():
    record = _only(find_rules(jax.vmap(jax.vmap(scaled_sin, in_axes=(0, None)), (1, None)), X, Y))
    assert (record.path, record.count) == ("vmap > vmap", 12)
    _same(record.args, (X[0, 0], Y))


def test_in_a_scan_the_count_is_the_iterations_and_the_values_the_first():
    def model(xs):
        def body(carry, x):
            return carry + scaled_sin(x, carry).sum(), None

        return jax.lax.scan(body, Y, xs)[0]

    record = _only(find_rules(model, X))
    assert (record.path, record.count) == ("scan", 4)
    _same(record.args, (X[0], Y))


def test_in_a_reverse_scan_the_first_iteration_is_the_last_slice():
    def model(xs):
        return jax.lax.scan(lambda c, x: (c, scaled_sin(x, Y)), 0.0, xs, reverse=True)

    record = _only(find_rules(model, X))
    assert record.count == 4
    _same(record.args, (X[-1], Y))


def test_in_a_cond_the_branch_taken_is_reached_and_the_other_is_listed_unreached():
    def model(x, flag):
        return jax.lax.cond(flag, lambda v: power(v, 3), lambda v: scaled_sin(v, Y), x)

    taken, untaken = find_rules(model, X, jnp.asarray(True))
    assert (taken.rule, taken.path, taken.count, taken.values_recovered) == (power, "cond", 1, True)
    _same(taken.args, (X, 3))
    assert (untaken.rule, untaken.count, untaken.values_recovered) == (scaled_sin, 0, False)
    assert "never run" in untaken.why_not_recovered
    assert untaken.args[0] == jax.ShapeDtypeStruct(X.shape, X.dtype)
    assert untaken.args[1] is Y  # a constant of the program: its value is known


def test_in_a_switch_only_the_selected_branch_is_reached():
    branches = [lambda v: power(v, 2), lambda v: power(v, 3), lambda v: scaled_sin(v, Y)]
    records = find_rules(lambda i, x: jax.lax.switch(i, branches, x), jnp.asarray(1), X)
    assert [(r.path, r.count) for r in records] == [("switch", 0), ("switch", 1), ("switch", 0)]
    _same(records[1].args, (X, 3))


def test_in_a_while_loop_the_count_is_the_iterations_and_the_values_the_first():
    def model(x):
        def step(state):
            return state[0] + 1, scaled_sin(state[1], Y)

        return jax.lax.while_loop(lambda state: state[0] < 5, step, (0, x))[1]

    record = _only(find_rules(model, X))
    assert (record.path, record.count) == ("while_loop", 5)
    _same(record.args, (X, Y))


def test_under_remat_the_values_are_recovered():
    record = _only(find_rules(jax.checkpoint(lambda x: scaled_sin(x, Y)), X))
    assert (record.path, record.count, record.values_recovered) == ("remat", 1, True)
    _same(record.args, (X, Y))


def test_under_vmap_of_remat_only_the_shapes_are_given_and_the_reason_says_why():
    record = _only(find_rules(jax.vmap(jax.checkpoint(lambda x: scaled_sin(x, Y))), X))
    assert (record.path, record.count, record.values_recovered) == ("vmap > remat", 4, False)
    assert "vmap" in record.why_not_recovered
    assert record.args[0] == jax.ShapeDtypeStruct((3,), X.dtype)


def test_a_remat_body_cached_at_another_batch_size_counts_todays_batch():
    model = jax.vmap(jax.checkpoint(lambda x: power(x, 2)))
    counts = [_only(find_rules(model, jnp.ones((n, 3)))).count for n in (4, 8)]
    assert counts == [4, 8]


def test_jit_of_vmap_of_scan_nests_the_path_and_multiplies_the_count():
    @jax.jit
    def model(xs):  # xs: (batch, time)
        def sequence(x):
            def body(c, xt):
                return c + scaled_sin(xt, c), None

            return jax.lax.scan(body, Y, x)[0]

        return jax.vmap(sequence)(xs)

    record = _only(find_rules(model, X))
    assert (record.path, record.count) == ("jit(model) > vmap > scan", 12)
    _same(record.args, (X[0, 0], Y))


def test_values_match_what_the_rule_gets_in_a_compiled_run():
    seen = []

    @jax.custom_jvp
    def logged(x, step, example):
        jax.debug.callback(lambda *a: seen.append(tuple(map(np.asarray, a))), x, step, example)
        return jnp.tanh(x)

    logged.defjvp(lambda p, t: (logged(*p), (1 - jnp.tanh(p[0]) ** 2) * t[0]))

    @jax.jit
    def model(xs, examples):
        def sequence(x, example):
            def body(carry, xt):  # carry: (step, value)
                step, value = carry
                return (step + 1, logged(value * xt, step, example)), None

            return jax.lax.scan(body, (0, jnp.float32(0.5)), x)[0][1]

        return jax.vmap(sequence)(xs, examples)

    examples = jnp.arange(4)
    jax.block_until_ready(model(X, examples))
    jax.effects_barrier()
    x0, step0, example0 = next(s for s in seen if s[1] == 0 and s[2] == 0)
    record = _only(find_rules(model, X, examples))
    assert record.count == 12
    np.testing.assert_allclose(np.asarray(record.args[0]), x0, rtol=1e-6)
    assert (record.args[1], record.args[2]) == (step0, example0)


def test_a_rule_inside_a_rules_primal_is_found_with_the_enclosing_path():
    outer, inner = find_rules(jax.vmap(jax.jit(double_sin)), X)
    assert (outer.rule, outer.path, outer.count) == (double_sin, "vmap > jit(double_sin)", 4)
    assert (inner.rule, inner.count) == (scaled_sin, 4)
    assert inner.path == "vmap > jit(double_sin) > double_sin"
    _same(inner.args, (X[0], 2.0))


def test_a_remat_inside_a_rules_primal_under_vmap_counts_the_batch():
    @jax.custom_jvp
    def outer(x):
        return jax.checkpoint(lambda v: power(v, 2))(x)

    outer.defjvp(lambda p, t: (outer(p[0]), 2.0 * p[0] * t[0]))
    _, inner = find_rules(jax.vmap(jax.jit(outer)), X)
    assert (inner.rule, inner.count, inner.values_recovered) == (power, 4, False)
    assert inner.path == "vmap > jit(outer) > outer > remat"


def test_under_grad_inside_the_program_the_values_are_the_primals():
    record = _only(find_rules(jax.grad(lambda x: scaled_sin(x, Y).sum()), X))
    assert (record.path, record.count) == ("linearize", 1)
    _same(record.args, (X, Y))


# --- what a record holds ---------------------------------------------------------------------


def test_custom_jvp_nondiff_arguments_are_kept_in_place():
    record = _only(find_rules(lambda x: power(x, 3), X))
    assert (record.kind, record.nondiff_argnums) == ("custom_jvp", (1,))
    _same(record.args, (X, 3))


def test_custom_vjp_nondiff_arguments_are_kept_in_place():
    record = _only(find_rules(lambda x: clipped_identity(0.25, x), X))
    assert (record.kind, record.nondiff_argnums) == ("custom_vjp", (0,))
    _same(record.args, (0.25, X))


def test_pytree_arguments_and_keywords_come_back_positional_with_defaults():
    params = {"w": X[0], "b": X[1]}
    with_keyword = _only(find_rules(lambda p, x: affine(params=p, x=x), params, X[2]))
    _same(with_keyword.args, (params, X[2], 0.5))
    with_eps = _only(find_rules(lambda p, x: affine(p, x, eps=0.25), params, X[2]))
    _same(with_eps.args, (params, X[2], 0.25))


def test_key_and_bfloat16_arguments_keep_their_dtypes():
    @jax.custom_vjp
    def noisy(key, x):
        return x + jax.random.normal(key, x.shape, x.dtype)

    noisy.defvjp(lambda key, x: (noisy(key, x), None), lambda _, g: (None, g))
    key, x = jax.random.key(0), X.astype(jnp.bfloat16)
    record = _only(find_rules(jax.jit(noisy), key, x))
    assert jax.dtypes.issubdtype(record.args[0].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(record.args[0]), jax.random.key_data(key))
    _same(record.args[1], x)


def test_program_keywords_and_static_leaves_pass_through():
    def model(x, *, scale, mode):
        assert mode == "train"  # a string leaf stays a string, not a traced value
        return scaled_sin(x, scale)

    record = _only(find_rules(model, X, scale=Y, mode="train"))
    _same(record.args, (X, Y))


def test_distinct_call_sites_and_shapes_are_separate_records_repeats_one():
    def model(x):
        a = power(x, 2)  # site: first
        b = power(x[0], 2)  # site: second
        for _ in range(3):
            a = power(a, 2)  # site: loop
        return a.sum() + b.sum()

    records = find_rules(model, X)
    got = [(r.call_site, r.args[0].shape, r.count) for r in records]
    assert got == [
        (_line_of("# site: first"), (4, 3), 1),
        (_line_of("# site: second"), (3,), 1),
        (_line_of("# site: loop"), (4, 3), 3),
    ]
    _same(records[2].args, (X**2, 2))


def test_records_are_frozen():
    record = _only(find_rules(lambda x: power(x, 2), X))
    with pytest.raises(AttributeError):
        record.count = 0


def test_finding_twice_gives_the_same_records():
    model = jax.jit(lambda x: jax.checkpoint(lambda v: power(v, 2))(x) + scaled_sin(x, Y))
    first, second = find_rules(model, X), find_rules(model, X)
    assert [(r.rule, r.path, r.count, r.values_recovered) for r in first] == [
        (r.rule, r.path, r.count, r.values_recovered) for r in second
    ]


def test_a_body_cached_by_an_earlier_op_by_op_run_is_still_seen():
    layer = jax.checkpoint(lambda v: power(v, 2))
    with jax.disable_jit():  # the user debugging: JAX caches the staged remat body
        layer(X)
    record = _only(find_rules(layer, X))
    assert (record.count, record.values_recovered) == (1, True)


def test_when_the_op_by_op_run_fails_the_rules_are_listed_with_the_reason():
    def model(xs):
        return jax.lax.scan(lambda c, x: (c, power(x, 2)), 0.0, xs[:0])  # zero length

    record = _only(find_rules(model, X))
    assert (record.count, record.values_recovered) == (0, False)
    assert "zero-length scan" in record.why_not_recovered
    assert record.args == (jax.ShapeDtypeStruct((3,), X.dtype), 2)


# --- JAX versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.10.0", "0.10.2", "0.10.17.dev20260101+abc"])
def test_tested_versions_are_accepted(version):
    check_jax_version(version)


@pytest.mark.parametrize("version", ["0.9.2", "0.11.0", "1.0.0", "nightly"])
def test_an_unknown_jax_version_fails_with_one_clear_error(version, monkeypatch):
    monkeypatch.delenv(_jaxpr.ALLOW_UNTESTED_JAX, raising=False)
    monkeypatch.setattr(jax, "__version__", version)
    with pytest.raises(UnsupportedJaxVersion, match=f"installed JAX is {version}") as error:
        find_rules(lambda x: power(x, 2), X)
    assert "JAX >= 0.10.0, < 0.11.0" in str(error.value)


def test_the_escape_hatch_runs_an_untested_version_with_a_warning(monkeypatch):
    monkeypatch.setenv(_jaxpr.ALLOW_UNTESTED_JAX, "1")
    monkeypatch.setattr(jax, "__version__", "0.11.0")
    with pytest.warns(UserWarning, match="untested JAX 0.11.0"):
        record = _only(find_rules(lambda x: power(x, 2), X))
    assert record.count == 1


def test_a_custom_call_the_finder_did_not_see_is_an_error_not_a_silent_miss():
    unwrapped = jax.custom_jvp.__call__  # as JAX has it, before find_rules wraps it

    with pytest.raises(UnsupportedJaxVersion, match="did not see"):
        find_rules(lambda x: unwrapped(power, x, 2), X)


def test_the_rule_classes_are_restored_afterwards():
    calls = (jax.custom_vjp.__call__, jax.custom_jvp.__call__)
    find_rules(lambda x: power(x, 2), X)
    assert (jax.custom_vjp.__call__, jax.custom_jvp.__call__) == calls
