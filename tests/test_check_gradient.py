"""``check_gradient`` on user code: custom VJPs, real pytrees, the gradients that are hard to
round (cancellation, mixed scales, float32 overflow), a suspect reference, and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.verifier import check_gradient, maps

K, T = 8.0, 4.0  # the documented constants, on purpose not imported


def _plain_loss(params, x):
    return jnp.sum(jnp.tanh(x @ params["w"]) ** 2) + jnp.sum(params["c"] ** 2)


def _custom_loss(scale: float):
    @jax.custom_vjp
    def f(params, x):
        return _plain_loss(params, x)

    def forward(params, x):
        return f(params, x), (params, x)

    def backward(saved, g):
        params, x = saved
        t = jnp.tanh(x @ params["w"])
        # d/dw Σ tanh(xw)² = xᵀ (2 t (1 - t²)); d/dc Σ c² = 2c.
        grad_w = x.T @ (2 * t * (1 - t * t)) * scale
        return ({"w": g * grad_w, "c": g * 2 * params["c"]}, g * jnp.zeros_like(x))

    f.defvjp(forward, backward)
    return f


def _user_point(dtype=jnp.float32):
    rng = np.random.default_rng(9)
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "c": jnp.asarray(rng.normal(size=(2,)), dtype),
    }
    return params, jnp.asarray(rng.normal(size=(5, 4)), dtype)


def test_a_correct_custom_vjp_passes_leaf_by_leaf_in_both_parts():
    params, x = _user_point()
    verdict = check_gradient(_plain_loss, jax.grad(_custom_loss(1.0)), params, x)
    assert verdict.ok, str(verdict)
    assert [row.name for row in verdict.rows] == ["['c']", "['w']"]
    assert verdict.layers == () and verdict.first_bad_layer is None
    assert all(row.formula is not None and row.formula.ok for row in verdict.rows)
    assert verdict.witness.agrees


def test_a_subtly_wrong_custom_vjp_is_a_wrong_formula_on_its_leaf():
    params, x = _user_point()
    verdict = check_gradient(_plain_loss, jax.grad(_custom_loss(1.0005)), params, x)
    assert not verdict.ok
    assert {row.name: row.status for row in verdict.rows} == {
        "['c']": "ok",
        "['w']": "wrong_formula",
    }
    assert verdict.reason.startswith("['w']: wrong formula")


def test_a_1e_9_error_in_a_bfloat16_leaf_is_caught_by_the_formula_part():
    params, x = _user_point(jnp.bfloat16)
    verdict = check_gradient(_plain_loss, jax.grad(_custom_loss(1 + 1e-9)), params, x)
    row = {r.name: r for r in verdict.rows}["['w']"]
    assert row.status == "wrong_formula" and row.precision.ok


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("w", [0.7, 1.9, 100.0])
def test_a_zero_gradient_computed_by_cancellation_is_no_false_alarm(dtype, w):
    # sin² + cos² = 1: autodiff cancels to exactly 0, the candidate 2 sin cos - sin 2w
    # lands an ulp of its terms away. The tolerance is the rounding of autodiff's own terms,
    # 2 sin cos x and -2 cos sin x: T·u·Σ 4|sin(wx) cos(wx) x|, computed here in NumPy.
    def loss(w, x):
        return jnp.sum(jnp.sin(w * x) ** 2 + jnp.cos(w * x) ** 2)

    def grad(w, x):
        return jnp.sum(2 * jnp.sin(w * x) * jnp.cos(w * x) * x - jnp.sin(2 * w * x) * x)

    with jax.enable_x64(dtype == "float64"):
        x = jnp.linspace(0.1, 3.0, 7).astype(dtype)
        w_point = jnp.asarray(w, dtype)
        verdict = check_gradient(loss, grad, w_point, x)
    assert verdict.ok, str(verdict)
    row = verdict.rows[0]
    assert row.precision.worst_truth == 0  # the truth really is exactly 0
    x64, w64 = np.asarray(x, np.float64), float(w_point)
    terms = np.sum(4 * np.abs(np.sin(w64 * x64) * np.cos(w64 * x64) * x64))
    for part in (row.formula, row.precision):
        if part is not None:
            u = float(jnp.finfo(part.dtype).eps) / 2
            assert part.max_tolerance >= T * u * terms * (1 - 1e-9)


def test_a_wrong_gradient_that_should_be_zero_still_fails():
    def loss(w, x):
        return jnp.sum(jnp.sin(w * x) ** 2 + jnp.cos(w * x) ** 2)

    def wrong(w, x):  # 1e-6 where the derivative is exactly 0
        return jnp.sum(2 * jnp.sin(w * x) * jnp.cos(w * x) * x - jnp.sin(2 * w * x) * x) + 1e-6

    verdict = check_gradient(loss, wrong, jnp.asarray(0.7, jnp.float32), jnp.linspace(0.1, 3, 7))
    assert not verdict.ok and verdict.rows[0].status == "wrong_formula"


def test_leaves_of_wildly_different_scales_are_judged_each_on_its_own_scale():
    def loss(p, x):
        return jnp.sum(jnp.tanh(x @ p["tiny"]) * 1e6) + jnp.sum((x @ p["huge"]) ** 2) * 1e-6

    def grad(p, x):
        t = jnp.tanh(x @ p["tiny"])
        return {"tiny": x.T @ ((1 - t) * (1 + t) * 1e6), "huge": x.T @ (2e-6 * (x @ p["huge"]))}

    rng = np.random.default_rng(3)
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            params = {
                "tiny": jnp.asarray(rng.normal(size=(3, 2)) * 1e-4, dtype),
                "huge": jnp.asarray(rng.normal(size=(3, 2)) * 1e4, dtype),
            }
            x = jnp.asarray(rng.normal(size=(6, 3)), dtype)
            verdict = check_gradient(loss, grad, params, x)
        assert verdict.ok, str(verdict)
        scales = {row.name: row.precision.worst_truth for row in verdict.rows}
        assert abs(scales["['tiny']"]) > 1e3 * abs(scales["['huge']"])


def test_a_float64_point_whose_float32_image_overflows_is_no_false_alarm(x64):
    # exp(w x) at w x = 100: finite in float64, Inf in float32 (the floor's stand-in).
    def loss(w, x):
        return jnp.sum(jnp.exp(w * x))

    def grad(w, x):
        return jnp.sum(x * jnp.exp(w * x))

    verdict = check_gradient(loss, grad, jnp.asarray(50.0), jnp.asarray([2.0, 1.0]))
    assert verdict.ok, str(verdict)
    assert "overflows" in verdict.rows[0].precision.note
    wrong = check_gradient(
        loss, lambda w, x: grad(w, x) * (1 + 1e-12), jnp.asarray(50.0), jnp.asarray([2.0, 1.0])
    )
    assert not wrong.ok and "NaN/Inf" not in wrong.reason


def test_data_with_inf_is_refused_as_bad_data_not_blamed_on_the_gradient():
    params, x = _user_point()
    with pytest.raises(ValueError, match=r"args\[0\] has 1 non-finite value\(s\).*bad data"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), params, x.at[0, 0].set(jnp.inf))


def test_keyword_arguments_reach_both_functions():
    def loss(w, x, *, power):
        return jnp.sum((x @ w) ** power)

    def grad(w, x, *, power):
        return x.T @ (power * (x @ w) ** (power - 1))

    w, x = jnp.ones((3,), jnp.float32), jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3) / 6
    assert check_gradient(loss, grad, w, x, power=3).ok
    assert not check_gradient(
        loss, lambda w, x, *, power: grad(w, x, power=power + 1), w, x, power=3
    ).ok


def test_has_aux_losses_and_gradients():
    def loss(p, x):
        value = jnp.sum(jnp.tanh(x @ p))
        return value, {"value": value}

    def grad(p, x):
        t = jnp.tanh(x @ p)
        return x.T @ ((1 - t) * (1 + t)), {"anything": 1}

    p, x = jnp.ones((3,), jnp.float32) / 3, jnp.ones((4, 3), jnp.float32)
    assert check_gradient(loss, grad, p, x, has_aux=True).ok
    with pytest.raises(ValueError, match=r"has_aux=True, grad_fn must return \(grads, aux\)"):
        check_gradient(loss, lambda p, x: grad(p, x)[0], p, x, has_aux=True)


def test_non_floating_leaves_are_skipped_and_listed_and_python_floats_are_judged():
    def loss(state, x):
        scale = 2.0 if state["train"] else 1.0
        return jnp.sum(jnp.tanh(x @ state["w"])) * scale * state["temperature"]

    def grad(state, x):
        t = jnp.tanh(x @ state["w"])
        scale = 2.0 if state["train"] else 1.0
        return {
            "w": x.T @ ((1 - t) * (1 + t)) * scale * state["temperature"],
            "temperature": jnp.sum(t) * scale,
            "step": None,  # anything at non-floating leaves
            "train": jnp.zeros((), jax.dtypes.float0),
            "name": None,
        }

    state = {
        "w": jnp.ones((3, 2), jnp.float32) / 4,
        "temperature": 1.5,  # a Python float: judged as a float32 scalar
        "step": jnp.asarray(7, jnp.int32),
        "train": True,
        "name": "layer",
    }
    x = jnp.ones((4, 3), jnp.float32)
    verdict = check_gradient(loss, grad, state, x)
    assert verdict.ok, str(verdict)
    assert [row.name for row in verdict.rows] == ["['temperature']", "['w']"]
    assert set(verdict.skipped) == {"['step']", "['train']", "['name']"}
    assert "not floating, not judged" in str(verdict)


def test_a_gradient_that_cannot_run_in_float64_is_judged_on_precision_and_says_why():
    params, x = _user_point()

    def float32_only(params, x):
        return jax.tree_util.tree_map(
            lambda g: g.astype(jnp.float32), jax.grad(_plain_loss)(params, x)
        )

    verdict = check_gradient(_plain_loss, float32_only, params, x)
    assert verdict.ok and all(row.formula is None for row in verdict.rows)
    assert (
        "returns float32" in verdict.formula_note
        and "precision judged alone" in verdict.formula_note
    )


def test_a_wrong_custom_jvp_inside_the_loss_makes_the_reference_suspect():
    @jax.custom_jvp
    def softplus(z):
        return jnp.logaddexp(z, 0.0)

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return softplus(z), jax.nn.sigmoid(z) * dz * 1.02  # 2% off: autodiff is now wrong

    def loss(w, x):
        return jnp.sum(softplus(x @ w))

    def right(w, x):  # the true gradient, by hand
        return x.T @ jax.nn.sigmoid(x @ w)

    w, x = jnp.ones((3,), jnp.float32) / 3, jnp.arange(12.0, dtype=jnp.float32).reshape(4, 3) / 12
    verdict = check_gradient(loss, right, w, x)
    assert verdict.reference_suspect and not verdict.ok
    assert verdict.reason.startswith("reference suspect")
    assert abs(verdict.witness.value - verdict.witness.candidate) < verdict.witness.tolerance
    assert abs(verdict.witness.value - verdict.witness.truth) > verdict.witness.tolerance


def test_a_loss_far_from_zero_does_not_make_the_reference_suspect():
    # A large constant in the loss (an unnormalised log-likelihood, an energy) costs float64
    # finite differences digits to rounding: the witness's tolerance grows with its own error
    # estimate instead of calling a correct jax.grad suspect.
    def loss(w, x):
        return 1e10 + jnp.sum((x @ w) ** 2)

    def right(w, x):  # the true gradient, by hand
        return 2 * x.T @ (x @ w)

    w, x = jnp.ones((3,), jnp.float32) / 3, jnp.arange(12.0, dtype=jnp.float32).reshape(4, 3) / 12
    verdict = check_gradient(loss, right, w, x)
    assert verdict.ok and not verdict.reference_suspect and verdict.witness.agrees
    # Rounding of 1e10 over a step of at most 1e-2 is far above float64's 1e-7 relative floor.
    assert verdict.witness.error > 1e-7 * abs(verdict.witness.truth)


def test_two_nans_never_agree():
    def loss(w):  # sqrt of a negative number: the candidate and the truth are both NaN
        return jnp.sum(jnp.sqrt(w))

    verdict = check_gradient(loss, jax.grad(loss), jnp.array([-1.0, 4.0], jnp.float32))
    assert not verdict.ok and verdict.rows[0].status == "nonfinite"


def test_a_second_call_with_new_values_does_not_recompile():
    params, x = _user_point()
    grad = jax.grad(_plain_loss)
    check_gradient(_plain_loss, grad, params, x)
    program = maps.measuring_program(True)
    before = program._cache_size()
    moved = jax.tree_util.tree_map(lambda a: a * 1.5, params)
    assert check_gradient(_plain_loss, grad, moved, x * 0.5, seed=3).ok
    assert program._cache_size() == before


def test_check_gradient_under_jit_says_it_needs_concrete_values():
    params, x = _user_point()
    with pytest.raises(TypeError, match="check_gradient needs concrete values"):
        jax.jit(lambda p: check_gradient(_plain_loss, jax.grad(_plain_loss), p, x).ok)(params)
    with pytest.raises(TypeError, match="check_gradient needs concrete values"):
        jax.vmap(lambda xx: check_gradient(_plain_loss, jax.grad(_plain_loss), params, xx).ok)(
            x[None]
        )


def test_float64_numpy_parameters_without_64_bit_mode_say_to_enable_it():
    params = {"w": np.ones((4, 3)), "c": np.ones(2)}
    x = np.ones((5, 4), np.float32)
    with pytest.raises(ValueError, match=r"params\['c'\] is float64 but JAX runs in 32-bit mode"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), params, x)


def test_check_gradient_refuses_bad_input():
    params, x = _user_point()
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        check_gradient(None, jax.grad(_plain_loss), params, x)
    with pytest.raises(ValueError, match=r"no floating leaves to check \(not floating: \['w'\]\)"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), {"w": jnp.ones((4, 3), jnp.int32)}, x)
    with pytest.raises(ValueError, match="no floating leaves"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), {}, x)
    with pytest.raises(ValueError, match=r"has no leaf at \['c'\]"):
        check_gradient(_plain_loss, lambda p, xx: {"w": p["w"]}, params, x)
    with pytest.raises(ValueError, match=r"\['w'\] must have shape \(4, 3\)"):
        check_gradient(_plain_loss, lambda p, xx: {**p, "w": p["w"][:2]}, params, x)
    with pytest.raises(ValueError, match=r"\['w'\] must have dtype float32, got float16"):
        check_gradient(_plain_loss, lambda p, xx: {**p, "w": p["w"].astype(jnp.float16)}, params, x)
    with pytest.raises(ValueError, match="loss_fn must return a real floating scalar"):
        check_gradient(lambda p, xx: xx @ p["w"], jax.grad(_plain_loss), params, x)
    with pytest.raises(TypeError, match="has_aux must be True or False"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), params, x, has_aux=1)


# ----- second order ----------------------------------------------------------------


def _tanh_square_loss(w, x):
    return jnp.sum(jnp.tanh(x @ w) ** 2)


def _tanh_square_grad(w, x):
    h = jnp.tanh(x @ w)
    return x.T @ (2 * h * (1 - h) * (1 + h))


def _hvp64_numpy(w, x, v):
    """H v of Σ tanh(xw)² by hand in float64 NumPy: the second derivative of 2 t (1 - t²)."""
    w, x, v = (np.asarray(a, np.float64) for a in (w, x, v))
    t = np.tanh(x @ w)
    dt = (1 - t * t) * (x @ v)  # d tanh(xw) along v
    return x.T @ ((2 - 6 * t * t) * dt)


def test_order_2_judges_hessian_vector_products_through_the_candidate():
    rng = np.random.default_rng(21)
    w = jnp.asarray(rng.normal(size=(3, 2)) / 2, jnp.float32)
    x = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    verdict = check_gradient(_tanh_square_loss, _tanh_square_grad, w, x, order=2)
    assert verdict.ok, str(verdict)
    names = [row.name for row in verdict.rows]
    assert names == ["params", "H·v1 params", "H·v2 params"]
    hvp = verdict.rows[1]
    assert hvp.kind == "hvp" and hvp.formula.ok and hvp.precision.ok
    # The truth it judged against is H v by hand: check the worst element's truth.
    # (The direction is internal; rebuild it as the verifier draws it.)
    from netcheck.verifier.second_order import hvp_direction

    v = hvp_direction(0, 1, [w])[0]
    expected = _hvp64_numpy(w, x, v)
    assert hvp.precision.worst_truth == pytest.approx(expected[hvp.precision.worst_index], rel=1e-9)


def test_order_2_catches_a_gradient_right_in_value_but_wrong_in_its_derivative():
    def stopped(w, x):  # the right value, but (1 - h)(1 + h) is treated as a constant
        h = jnp.tanh(x @ w)
        s = jax.lax.stop_gradient(h)
        return x.T @ (2 * h * (1 - s) * (1 + s))

    w, x = jnp.ones((3, 2), jnp.float32) / 3, jnp.ones((4, 3), jnp.float32) / 2
    assert check_gradient(_tanh_square_loss, stopped, w, x).ok  # order 1 cannot see it
    verdict = check_gradient(_tanh_square_loss, stopped, w, x, order=2)
    assert not verdict.ok
    assert [row.status for row in verdict.rows] == ["ok", "wrong_formula", "wrong_formula"]


def test_order_2_goes_reverse_over_reverse_through_a_custom_vjp_candidate():
    @jax.custom_vjp
    def identity(g):
        return g

    identity.defvjp(lambda g: (g, None), lambda _, ct: (ct,))
    w, x = jnp.ones((3, 2), jnp.float32) / 3, jnp.ones((4, 3), jnp.float32) / 2
    verdict = check_gradient(
        _tanh_square_loss, lambda w, x: identity(_tanh_square_grad(w, x)), w, x, order=2
    )
    assert verdict.ok, str(verdict)


def test_order_2_on_a_candidate_that_cannot_be_differentiated_is_a_row_not_a_traceback():
    def through_numpy(w, x):
        shape = jax.ShapeDtypeStruct(w.shape, w.dtype)
        return jax.pure_callback(np.asarray, shape, _tanh_square_grad(w, x))

    w, x = jnp.ones((3, 2), jnp.float32) / 3, jnp.ones((4, 3), jnp.float32) / 2
    verdict = check_gradient(_tanh_square_loss, through_numpy, w, x, order=2)
    assert not verdict.ok and verdict.rows[0].ok
    second = [row for row in verdict.rows if row.kind == "hvp"]
    assert second and all(row.status == "fail" for row in second)
    assert "cannot be differentiated" in second[0].why and "JVP" in second[0].why
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        check_gradient(_tanh_square_loss, through_numpy, w, x, order=3)
