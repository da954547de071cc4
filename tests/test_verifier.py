"""The verifier: its numbers against hand-built disagreements, NaN/Inf, kinks, bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcheck import backprop
from netcheck.network import Network
from netcheck.verifier import (
    NOISE_MULTIPLE,
    TIE_MULTIPLE,
    Verdict,
    check_gradient,
    unit_roundoff,
    verify,
)

NET = Network((3, 4, 2), activation="tanh", output_activation="identity", loss="squared_error")


def _point(net: Network, dtype, seed: int = 0, batch: int = 6, w_scale=1.0, x_scale=1.0):
    """Parameters and data drawn with NumPy and cast to ``dtype``."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:], strict=True):
        layer = {"W": w_scale * rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))}
        if net.bias:
            layer["b"] = rng.normal(0, 0.1, n_out)
        params.append(layer)
    x = x_scale * rng.standard_normal((batch, net.sizes[0]))
    if net.loss == "binary_cross_entropy":
        y = (rng.random((batch, net.sizes[-1])) < 0.5).astype(float)
    elif net.loss == "softmax_cross_entropy":
        y = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], batch)]
    else:
        y = rng.standard_normal((batch, net.sizes[-1]))
    cast = lambda a: jnp.asarray(a.astype(dtype))  # noqa: E731
    return jax.tree_util.tree_map(cast, params), cast(x), cast(y)


def _truth64(net: Network, params, x, y):
    """float64 autodiff (netcheck.autodiff) on the upcast point, as NumPy."""
    with jax.enable_x64(True):
        up = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), (params, x, y))
        grads = net.autodiff_grad(*up)
    return jax.tree_util.tree_map(np.asarray, grads)


def test_the_correct_backprop_passes_with_one_row_per_quantity():
    params, x, y = _point(NET, np.float32)
    verdict = verify(NET, params, x, y)
    assert verdict.ok and verdict.first_bad_layer is None and verdict.reason is None
    assert [row.name for row in verdict.rows] == ["δ^2", "W_2", "b_2", "δ^1", "W_1", "b_1"]
    assert [layer.layer for layer in verdict.layers] == [1, 2]
    for row in verdict.rows:
        assert row.status == "ok" and row.distance <= row.tolerance
        assert row.witness is not None and row.witness.agrees and not row.witness.kink
        # The tolerance is the documented rule, recomputed from the row's own parts.
        assert row.tolerance == pytest.approx(NOISE_MULTIPLE * row.noise_floor + row.dtype_floor)
    record = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert record["ok"] is True and len(record["rows"]) == 6
    assert record["constants"] == {"noise_multiple": NOISE_MULTIPLE, "tie_multiple": TIE_MULTIPLE}
    assert "verdict: OK" in str(verdict)


def test_the_numbers_of_a_known_disagreement_match_numpy():
    params, x, y = _point(NET, np.float32, seed=3)
    manual = NET.manual_grad(params, x, y)
    bump = np.arange(8, dtype=np.float32).reshape(2, 4) * np.float32(1e-3)
    wrong = [manual[0], {**manual[1], "W": manual[1]["W"] + bump}]
    verdict = verify(NET, params, x, y, grad_fn=lambda net, p, xx, yy: wrong)

    truth = _truth64(NET, params, x, y)[1]["W"]
    candidate = np.asarray(wrong[1]["W"], np.float64)
    difference = candidate - truth
    row = verdict.layers[1].W
    assert row.status == "fail" and not verdict.ok
    assert row.relative_error == pytest.approx(
        np.linalg.norm(difference) / np.linalg.norm(truth), rel=1e-6
    )
    assert row.max_abs_error == pytest.approx(np.max(np.abs(difference)), rel=1e-6)
    cosine = np.sum(candidate * truth) / (np.linalg.norm(candidate) * np.linalg.norm(truth))
    assert row.cosine == pytest.approx(cosine, rel=1e-9)
    # Every δ agrees, so the first failing layer from the top is the bumped one.
    assert verdict.first_bad_layer == 2
    assert all(r.ok for r in verdict.rows if r.name != "W_2")
    assert verdict.reason.startswith("W_2:")


def test_a_one_per_mille_scaling_of_one_bias_is_caught_and_measured():
    params, x, y = _point(NET, np.float32, seed=4)
    manual = NET.manual_grad(params, x, y)
    wrong = [{**manual[0], "b": manual[0]["b"] * np.float32(1.001)}, manual[1]]
    verdict = verify(NET, params, x, y, grad_fn=lambda net, p, xx, yy: wrong)
    row = verdict.layers[0].b
    assert row.status == "fail" and verdict.first_bad_layer == 1
    # (1.001 c - t) / t ≈ 1e-3 up to float32 rounding of c (≈ 1e-7).
    assert row.relative_error == pytest.approx(1e-3, rel=1e-2)


def test_a_wrong_delta_names_the_layer_where_it_first_goes_wrong():
    net = Network((2, 5, 5, 3), activation="sigmoid", output_activation="sigmoid")
    params, x, y = _point(net, np.float32, seed=5)
    deltas = net.manual_deltas(params, x, y)
    wrong = [deltas[0], deltas[1] * np.float32(1.01), deltas[2]]
    verdict = verify(net, params, x, y, deltas_fn=lambda n, p, xx, yy: wrong)
    assert verdict.first_bad_layer == 2
    assert verdict.layers[1].delta.status == "fail"
    assert verdict.layers[2].ok and verdict.layers[0].ok


def test_nan_in_the_gradient_under_test_fails_with_its_own_reason():
    params, x, y = _point(NET, np.float32, seed=6)
    manual = NET.manual_grad(params, x, y)
    poisoned = [{**manual[0], "W": manual[0]["W"].at[0, 0].set(jnp.nan)}, manual[1]]
    verdict = verify(NET, params, x, y, grad_fn=lambda net, p, xx, yy: poisoned)
    row = verdict.layers[0].W
    assert row.status == "nonfinite" and "NaN/Inf" in row.why
    assert not verdict.ok and verdict.first_bad_layer == 1
    json.dumps(verdict.to_dict(), allow_nan=False)  # NaN becomes null, never NaN in JSON


def test_two_nans_never_agree():
    # sqrt of a negative number: the gradient under test and the truth are both NaN.
    def loss(w):
        return jnp.sum(jnp.sqrt(w))

    verdict = check_gradient(loss, jax.grad(loss), jnp.array([-1.0, 4.0], jnp.float32))
    assert not verdict.ok
    assert verdict.rows[0].status == "nonfinite"


def test_a_subgradient_choice_at_a_relu_kink_is_not_a_failure():
    net = Network((2, 3, 1), activation="relu", output_activation="identity", bias=False)
    params, x, y = _point(net, np.float32, seed=7)
    x = x.at[0].set(0.0)  # z^1 = 0 exactly for the first example: relu's kink

    def relu_prime_one_at_zero(net, params, x, y):
        # δ^1 of example 0 with relu'(0) = 1 (jax.grad and netcheck take 0 there).
        deltas = backprop.manual_deltas(net, params, x, y)
        return [deltas[0].at[0].set(deltas[1][0] @ params[1]["W"]), deltas[1]]

    chosen = relu_prime_one_at_zero(net, params, x, y)[0][0]
    assert float(jnp.max(jnp.abs(chosen))) > 0  # a real disagreement with autodiff's 0
    verdict = verify(net, params, x, y, deltas_fn=relu_prime_one_at_zero)
    assert verdict.kink and verdict.layers[0].kinks == 3
    assert verdict.layers[0].delta.status == "kink"
    assert verdict.ok and verdict.first_bad_layer is None


def test_float64_is_judged_against_a_floor_measured_one_precision_down(x64):
    net = Network(
        (3, 5, 2), activation="gelu", output_activation="softmax", loss="softmax_cross_entropy"
    )
    params, x, y = _point(net, np.float64, seed=8)
    verdict = verify(net, params, x, y)
    assert verdict.ok and verdict.dtype == "float64"
    for row in verdict.rows:
        # float32 autodiff's distance scaled by 2^-29: far below float32, above zero.
        assert 0 < row.noise_floor < 1e-12
    manual = net.manual_grad(params, x, y)
    wrong = [manual[0], {**manual[1], "W": manual[1]["W"] * (1 + 1e-9)}]
    assert verify(net, params, x, y, grad_fn=lambda *a: wrong).first_bad_layer == 2


_HYPOTHESIS_NETS = {
    "float64": Network((4, 5, 3), "relu", "identity", "squared_error"),
    "float32": Network((3, 5, 4, 3), "gelu", "softmax", "softmax_cross_entropy"),
    "bfloat16": Network((2, 6, 1), "sigmoid", "sigmoid", "binary_cross_entropy"),
    "float16": Network((3, 4, 4, 2), "tanh", "softmax", "squared_error"),
}


@pytest.mark.parametrize("dtype", list(_HYPOTHESIS_NETS))
@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    w_scale=st.floats(0.3, 2.0),
    x_scale=st.floats(0.1, 3.0),
)
def test_no_false_alarm_on_correct_cases(dtype, seed, w_scale, x_scale):
    net = _HYPOTHESIS_NETS[dtype]
    with jax.enable_x64(dtype == "float64"):
        params, x, y = _point(net, jnp.dtype(dtype), seed, 8, w_scale, x_scale)
        verdict = verify(net, params, x, y, seed=seed % 1000)
    assert verdict.ok, str(verdict)


# ----- check_gradient on user code -------------------------------------------------


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


def _user_point():
    rng = np.random.default_rng(9)
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
        "c": jnp.asarray(rng.normal(size=(2,)), jnp.float32),
    }
    return params, jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)


def test_check_gradient_passes_a_correct_custom_vjp_and_names_leaves():
    params, x = _user_point()
    verdict = check_gradient(_plain_loss, jax.grad(_custom_loss(1.0)), params, x)
    assert verdict.ok, str(verdict)
    assert [row.name for row in verdict.rows] == ["['c']", "['w']"]
    assert verdict.layers == () and verdict.first_bad_layer is None


def test_check_gradient_fails_a_subtly_wrong_custom_vjp_on_its_leaf():
    params, x = _user_point()
    verdict = check_gradient(_plain_loss, jax.grad(_custom_loss(1.0005)), params, x)
    assert not verdict.ok
    bad = {row.name: row.status for row in verdict.rows}
    assert bad == {"['c']": "ok", "['w']": "fail"}
    assert verdict.reason.startswith("['w']:")


# ----- bad input ------------------------------------------------------------------


def test_verify_refuses_bad_input_before_running():
    params, x, y = _point(NET, np.float32)
    with pytest.raises(TypeError, match=r"net must be a netcheck\.Network"):
        verify("net", params, x, y)
    with pytest.raises(ValueError, match="x must have shape"):
        verify(NET, params, x[:, :2], y)
    with pytest.raises(TypeError, match="grad_fn must be callable"):
        verify(NET, params, x, y, grad_fn=3)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        verify(NET, params, x, y, seed=-1)
    wrong_shape = lambda net, p, xx, yy: [p[0], {**p[1], "W": p[1]["W"][:, :2]}]  # noqa: E731
    with pytest.raises(ValueError, match=r"\[1\]\['W'\] must have shape \(2, 4\)"):
        verify(NET, params, x, y, grad_fn=wrong_shape)
    with pytest.raises(ValueError, match="must return 2 arrays"):
        verify(NET, params, x, y, deltas_fn=lambda net, p, xx, yy: [xx])

    def half(net, p, xx, yy):
        return [jax.tree_util.tree_map(lambda a: a.astype(jnp.float16), layer) for layer in p]

    with pytest.raises(ValueError, match="must have dtype float32"):
        verify(NET, params, x, y, grad_fn=half)


def test_check_gradient_refuses_bad_input():
    params, x = _user_point()
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        check_gradient(None, jax.grad(_plain_loss), params, x)
    with pytest.raises(TypeError, match=r"params\['w'\] must be a floating array"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), {"w": jnp.ones((4, 3), jnp.int32)}, x)
    with pytest.raises(ValueError, match="no leaves"):
        check_gradient(_plain_loss, jax.grad(_plain_loss), {}, x)
    with pytest.raises(ValueError, match="structure of params"):
        check_gradient(_plain_loss, lambda p, xx: [p["w"]], params, x)


def test_unit_roundoffs_are_the_textbook_ones():
    assert unit_roundoff(jnp.float32) == 2.0**-24
    assert unit_roundoff(jnp.bfloat16) == 2.0**-8
    assert unit_roundoff(jnp.float16) == 2.0**-11
    assert unit_roundoff(np.float64) == 2.0**-53
    assert isinstance(verify.__doc__, str) and Verdict.__doc__
