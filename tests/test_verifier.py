"""``verify``: its numbers against NumPy and float64 autodiff, its two parts and two norms,
NaN/Inf, kinks, a suspect reference, and bad input.

The rule's constants are written here as the literal numbers the documentation states
(``K = 8``, ``T = 4``), never imported: a change of the constants must fail these tests.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcheck.bench import suite
from netcheck.nn import Network, backprop, literal
from netcheck.nn.activations import ACTIVATIONS
from netcheck.verifier import Verdict, measure_network_many, network_verdict, unit_roundoff, verify

K, T = 8.0, 4.0  # the documented constants, on purpose not imported
U32, U64, UBF16 = 2.0**-24, 2.0**-53, 2.0**-8

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


def _float64(tree):
    with jax.enable_x64(True):
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _truth64(net: Network, params, x, y):
    """float64 autodiff (netcheck.nn.autodiff) on the upcast point, as NumPy."""
    with jax.enable_x64(True):
        grads = net.autodiff_grad(*_float64((params, x, y)))
    return jax.tree_util.tree_map(np.asarray, grads)


def _magnitude_W(net: Network, params, x, y, layer: int) -> np.ndarray:
    """``(M^ℓ)ᵀ |A^{ℓ-1}| / n`` in float64 NumPy for a tanh network with an identity output
    under squared error: the summed terms of the δ recursion, ``m^L = |ŷ| + |y|`` and
    ``m^ℓ = |1 - (a^ℓ)²| ⊙ (m^{ℓ+1} |W_{ℓ+1}|)``, from a NumPy forward pass."""
    p64, x64, y64 = (
        [{k: np.asarray(v, np.float64) for k, v in p.items()} for p in params],
        np.asarray(x, np.float64),
        np.asarray(y, np.float64),
    )
    activations = [x64]
    for index, p in enumerate(p64):
        z = activations[-1] @ p["W"].T + p["b"]
        activations.append(z if index == len(p64) - 1 else np.tanh(z))
    m = [np.abs(activations[-1]) + np.abs(y64)]
    for index in range(len(p64) - 1, 0, -1):
        a = activations[index]
        m.append(np.abs(1 - a * a) * (m[-1] @ np.abs(p64[index]["W"])))
    m = m[::-1]
    return m[layer - 1].T @ np.abs(activations[layer - 1]) / x64.shape[0]


def test_the_correct_backprop_passes_with_one_row_per_quantity_and_both_parts():
    params, x, y = _point(NET, np.float32)
    verdict = verify(NET, params, x, y)
    assert verdict.ok and verdict.first_bad_layer is None and verdict.reason is None
    assert [row.name for row in verdict.rows] == ["δ^2", "W_2", "b_2", "δ^1", "W_1", "b_1"]
    assert [layer.layer for layer in verdict.layers] == [1, 2]
    assert verdict.witness is not None and verdict.witness.agrees and not verdict.witness.kink
    assert verdict.formula_note is None  # the manual gradient runs in float64
    for row in verdict.rows:
        assert row.status == "ok" and row.formula.ok and row.precision.ok
        assert row.formula.dtype == "float64" and row.precision.dtype == "float32"
        # The formula part rules out errors near float64's resolution whatever the dtype.
        assert row.detectable_spread < 1e-12 and row.detectable_element < 1e-11
        assert row.precision.detectable_spread > 1e-8  # the precision part: float32's
    record = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert record["ok"] is True and len(record["rows"]) == 6
    assert record["constants"] == {"noise_multiple": 8.0, "tie_multiple": 4.0}
    assert record["rows"][1]["formula"]["dtype"] == "float64"
    assert "verdict: OK" in str(verdict)


def test_tolerances_are_8_floors_plus_4_roundings_of_the_terms_in_both_norms():
    params, x, y = _point(NET, np.float32, seed=11)
    verdict = verify(NET, params, x, y)
    truth = _truth64(NET, params, x, y)[0]["W"]
    working = np.asarray(NET.autodiff_grad(params, x, y)[0]["W"], np.float64)
    magnitude = _magnitude_W(NET, params, x, y, layer=1)
    row = verdict.layers[0].W
    precision, formula = row.precision, row.formula
    # The floor is a sample of float32 autodiff's error; the verifier's own autodiff run
    # is compiled apart from net.autodiff_grad, so the two samples differ, at one size.
    floor2, floor_max = np.linalg.norm(working - truth), np.max(np.abs(working - truth))
    assert 1 / 8 < precision.floor / floor2 < 8 and 1 / 8 < precision.max_floor / floor_max < 8
    assert precision.tolerance == pytest.approx(
        K * precision.floor + T * U32 * np.linalg.norm(magnitude), rel=1e-9
    )
    assert precision.max_tolerance == pytest.approx(
        K * precision.max_floor + T * U32 * np.max(magnitude), rel=1e-9
    )
    # The formula part's floor: float32 autodiff's error (for a float32 point, the working
    # run itself) scaled by u64/u32 = 2^-29, with float64's unit roundoff on the terms.
    assert formula.floor == pytest.approx(precision.floor * 2.0**-29, rel=1e-12)
    assert formula.max_floor == pytest.approx(precision.max_floor * 2.0**-29, rel=1e-12)
    assert formula.tolerance == pytest.approx(
        K * formula.floor + T * U64 * np.linalg.norm(magnitude), rel=1e-9
    )
    assert formula.max_tolerance == pytest.approx(
        K * formula.max_floor + T * U64 * np.max(magnitude), rel=1e-9
    )
    # What each part would catch, from the documented bound (tol + distance) / size.
    rms = np.linalg.norm(truth) / np.sqrt(truth.size)
    assert formula.detectable_spread == pytest.approx(
        (formula.tolerance + formula.distance) / np.linalg.norm(truth), rel=1e-9
    )
    assert formula.detectable_element == pytest.approx(
        (formula.max_tolerance + formula.max_distance) / rms, rel=1e-9
    )


def test_the_numbers_of_a_known_disagreement_match_numpy():
    params, x, y = _point(NET, np.float32, seed=3)
    bump = np.arange(8, dtype=np.float64).reshape(2, 4) * 1e-3

    def bumped(net, p, xx, yy):  # dtype-generic: also runs in float64
        grads = backprop.manual_grad(net, p, xx, yy)
        return [grads[0], {**grads[1], "W": grads[1]["W"] + bump.astype(xx.dtype)}]

    verdict = verify(NET, params, x, y, grad_fn=bumped)
    truth = _truth64(NET, params, x, y)[1]["W"]
    candidate = np.asarray(bumped(NET, params, x, y)[1]["W"], np.float64)
    difference = candidate - truth
    row = verdict.layers[1].W
    assert row.status == "wrong_formula" and not verdict.ok
    assert row.relative_error == pytest.approx(
        np.linalg.norm(difference) / np.linalg.norm(truth), rel=1e-6
    )
    assert row.max_abs_error == pytest.approx(np.max(np.abs(difference)), rel=1e-6)
    cosine = np.sum(candidate * truth) / (np.linalg.norm(candidate) * np.linalg.norm(truth))
    assert row.cosine == pytest.approx(cosine, rel=1e-9)
    worst = np.unravel_index(np.argmax(np.abs(difference)), difference.shape)
    assert row.precision.worst_index == tuple(int(i) for i in worst) == (1, 3)
    assert row.precision.worst_candidate == pytest.approx(candidate[worst], rel=1e-12)
    assert row.precision.worst_truth == pytest.approx(truth[worst], rel=1e-12)
    # The formula part: the candidate run in float64 on the upcast point.
    with jax.enable_x64(True):
        candidate64 = np.asarray(bumped(NET, *_float64((params, x, y)))[1]["W"])
    assert row.formula.distance == pytest.approx(np.linalg.norm(candidate64 - truth), rel=1e-9)
    assert row.formula.worst_index == (1, 3)
    # Every δ agrees, so the first failing layer from the top is the bumped one.
    assert verdict.first_bad_layer == 2
    assert all(r.ok for r in verdict.rows if r.name != "W_2")
    assert verdict.reason.startswith("W_2: wrong formula")


def _median_element(grads, layer: int) -> tuple[int, int]:
    w = np.abs(np.asarray(grads[layer]["W"], np.float64))
    return np.unravel_index(np.argsort(w, axis=None)[w.size // 2], w.shape)


def test_one_wrong_element_in_a_large_layer_is_caught_by_the_max_norm_alone():
    # The case, scaled down for CI: the median element of ∂L/∂W_2 off by a few
    # max-norm tolerances, an error the 2-norm over 16,384 elements cannot see.
    net = Network((64, 128, 128, 10), "tanh", "softmax", "softmax_cross_entropy")
    params, x, y = _point(net, np.float32, seed=12, batch=32)
    grads = net.manual_grad(params, x, y)
    # Constant float32 arrays cannot run in float64: the precision part judges alone.
    correct = verify(net, params, x, y, grad_fn=lambda *_: grads).layers[1].W.precision
    where = _median_element(grads, 1)
    error = 3 * correct.max_tolerance
    assert error < correct.tolerance / 2  # below what the 2-norm can see
    bumped = grads[1]["W"].at[where].add(error * np.sign(float(grads[1]["W"][where])))
    wrong = [grads[0], {**grads[1], "W": bumped}, grads[2]]
    verdict = verify(net, params, x, y, grad_fn=lambda *_: wrong)
    row = verdict.layers[1].W
    assert row.formula is None and "float32" in verdict.formula_note
    assert row.status == "fail" and verdict.first_bad_layer == 2
    assert row.precision.distance <= row.precision.tolerance  # the 2-norm is blind to it
    assert row.precision.max_distance > row.precision.max_tolerance  # the max norm is not
    assert row.precision.worst_index == tuple(int(i) for i in where)
    assert "largest element error" in row.why
    relative = error / abs(float(grads[1]["W"][where]))
    assert relative < 1e-3  # the 1e-3 is well inside what is caught


def _off_by_1e_9(net, p, xx, yy):
    """The manual gradient with ``∂L/∂W_1`` scaled by ``1 + 1e-9`` (a two-layer network):
    a wrong formula that rounds away in bfloat16 (``1 + 1e-9`` is 1 there)."""
    grads = backprop.manual_grad(net, p, xx, yy)
    return [{**grads[0], "W": grads[0]["W"] * jnp.asarray(1 + 1e-9, xx.dtype)}, grads[1]]


def _float8_deltas(net, p, xx, yy):
    """A kernel that, for half-precision inputs, stores δ and the activations in float8
    (e5m2: 2 mantissa bits) before forming ∂L/∂W: the right formula (float64 runs it
    exactly), badly rounded."""
    cache = net.forward_cache(p, xx)
    top = backprop.output_delta(net, cache, yy) / xx.shape[0]
    deltas = backprop.backpropagate(net, p, cache, top)
    if xx.dtype in (jnp.bfloat16, jnp.float16):
        deltas = [d.astype(jnp.float8_e5m2).astype(xx.dtype) for d in deltas]
        cache = cache._replace(
            activations=[a.astype(jnp.float8_e5m2).astype(xx.dtype) for a in cache.activations]
        )
    return backprop.layer_gradients(net, cache, deltas)


def test_a_bfloat16_gradient_wrong_by_1e_9_is_a_wrong_formula():
    # 1 + 1e-9 rounds to 1 in bfloat16: only the float64 run of the formula can see it.
    net = Network((3, 6, 2), "gelu", "identity", "squared_error")
    params, x, y = _point(net, jnp.bfloat16, seed=13)
    verdict = verify(net, params, x, y, grad_fn=_off_by_1e_9)
    row = verdict.layers[0].W
    assert row.status == "wrong_formula" and row.precision.ok and not row.formula.ok
    assert verdict.first_bad_layer == 1
    assert row.formula.distance / np.linalg.norm(_truth64(net, params, x, y)[0]["W"]) == (
        pytest.approx(1e-9, rel=1e-3)
    )


def test_a_right_formula_that_rounds_badly_in_bfloat16_is_imprecise_not_wrong():
    # The float8 kernel's bfloat16 result is ten times less accurate than bfloat16 autodiff.
    net = Network((3, 6, 2), "tanh", "identity", "squared_error")
    params, x, y = _point(net, jnp.bfloat16, seed=14)
    verdict = verify(net, params, x, y, grad_fn=_float8_deltas)
    row = verdict.layers[1].W
    assert row.status == "imprecise" and row.formula.ok and not row.precision.ok
    assert row.why.startswith("right formula")
    assert "less accurate than autodiff in bfloat16" in row.why
    assert row.precision.times_autodiff > K
    assert all(r.formula.ok for r in verdict.rows)  # never a wrong formula
    assert verdict.first_bad_layer == 2


def test_the_vectorised_rule_of_the_sweeps_agrees_with_each_verdict():
    # The detection-power sweep and the kill matrix judge their variants with the
    # vectorised rule (suite.verdicts_pass, rule.rows_pass), never building verdicts: on a
    # correct, a wrong-formula and an imprecise bfloat16 candidate it must say what the
    # verdict says, and judging precision alone must miss exactly the 1e-9 formula slip.
    net = Network((3, 6, 2), "tanh", "identity", "squared_error")
    params, x, y = _point(net, jnp.bfloat16, seed=14)
    candidates = (backprop.manual_grad, _off_by_1e_9, _float8_deltas)
    with jax.enable_x64(True):
        point64 = _float64((params, x, y))
        computed = [
            (
                grad_fn(net, params, x, y),
                backprop.manual_deltas(net, params, x, y),
                grad_fn(net, *point64),
                backprop.manual_deltas(net, *point64),
            )
            for grad_fn in candidates
        ]
        measured = jax.tree_util.tree_map(
            np.asarray, measure_network_many(net, computed, params, x, y)
        )
    verdicts = [network_verdict(net, jnp.bfloat16, x.shape[0], m) for m in measured]
    assert [v.ok for v in verdicts] == [True, False, False]
    assert "wrong_formula" in {row.status for row in verdicts[1].rows}
    assert {row.status for row in verdicts[2].rows} == {"ok", "imprecise"}
    both_parts = [bool(suite.verdicts_pass(jnp.bfloat16, m, formula=True)) for m in measured]
    precision = [bool(suite.verdicts_pass(jnp.bfloat16, m, formula=False)) for m in measured]
    assert both_parts == [True, False, False]
    assert precision == [True, True, False]


def test_nan_in_the_gradient_under_test_fails_with_its_own_reason():
    params, x, y = _point(NET, np.float32, seed=6)
    manual = NET.manual_grad(params, x, y)
    poisoned = [{**manual[0], "W": manual[0]["W"].at[0, 1].set(jnp.nan)}, manual[1]]
    verdict = verify(NET, params, x, y, grad_fn=lambda net, p, xx, yy: poisoned)
    row = verdict.layers[0].W
    assert row.status == "nonfinite" and "NaN/Inf" in row.why
    assert row.precision.worst_index == (0, 1)  # the NaN is the worst element
    assert not verdict.ok and verdict.first_bad_layer == 1
    json.dumps(verdict.to_dict(), allow_nan=False)  # NaN becomes null, never NaN in JSON


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
    assert verdict.kink and verdict.layers[0].kinks >= 3
    assert verdict.layers[0].delta.status == "kink"
    assert verdict.ok and verdict.first_bad_layer is None


def test_finite_differences_straddling_a_known_kink_abstain_rather_than_fail():
    # The one bfloat16 false alarm of the 1000-case detection-power sweep: a leaky_relu
    # pre-activation is exactly 0 in bfloat16, and the witness's central differences along
    # this seed's direction average the two one-sided slopes, far from autodiff's
    # subgradient. The rows abstain at such a point; the witness must too.
    case = suite.power_cases("bfloat16", 1000)[559]
    params, x, y = suite.case_data(case)
    params, x, y = jax.tree_util.tree_map(
        lambda a: np.asarray(a).astype(jnp.bfloat16), (params, x, y)
    )
    verdict = verify(case.net, params, x, y, seed=case.seed)
    witness = verdict.witness
    assert verdict.kink and witness.kink
    assert abs(witness.value - witness.truth) > witness.tolerance  # they really disagree
    assert verdict.ok and not verdict.reference_suspect, str(verdict)


def test_float64_is_judged_against_a_floor_measured_one_precision_down(x64):
    net = Network(
        (3, 5, 2), activation="gelu", output_activation="softmax", loss="softmax_cross_entropy"
    )
    params, x, y = _point(net, np.float64, seed=8)
    verdict = verify(net, params, x, y)
    assert verdict.ok and verdict.dtype == "float64"
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), (params, x, y))
    for row in verdict.rows:
        # float32 autodiff's distance scaled by 2^-29: far below float32, above zero.
        assert 0 < row.noise_floor < 1e-12
        assert row.formula is None and "coincide" in row.precision.note
    working = np.asarray(net.autodiff_grad(*p32)[1]["W"], np.float64)
    truth32 = np.asarray(net.autodiff_grad(*_float64(p32))[1]["W"])
    assert verdict.layers[1].W.noise_floor == pytest.approx(
        np.linalg.norm(working - truth32) * 2.0**-29, rel=1e-9
    )
    manual = net.manual_grad(params, x, y)
    wrong = [manual[0], {**manual[1], "W": manual[1]["W"] * (1 + 1e-9)}]
    caught = verify(net, params, x, y, grad_fn=lambda *a: wrong)
    assert caught.first_bad_layer == 2 and caught.layers[1].W.status == "fail"


def test_the_constants_can_be_set_and_scale_the_tolerance():
    params, x, y = _point(NET, np.float32, seed=15)
    default = verify(NET, params, x, y).layers[0].W.precision
    strict = verify(NET, params, x, y, noise_multiple=2.0, tie_multiple=1.0)
    part = strict.layers[0].W.precision
    assert part.tolerance == pytest.approx(
        2.0 * default.floor + (default.tolerance - K * default.floor) / T, rel=1e-9
    )
    assert strict.noise_multiple == 2.0 and "K=2" in str(strict)
    with pytest.raises(ValueError, match="noise_multiple"):
        verify(NET, params, x, y, noise_multiple=0)
    with pytest.raises(TypeError, match="tie_multiple"):
        verify(NET, params, x, y, tie_multiple="4")


_HYPOTHESIS_NETS = {
    "float64": Network((4, 5, 3), "relu", "identity", "squared_error"),
    "float32": Network((3, 5, 4, 3), "gelu", "softmax", "softmax_cross_entropy"),
    "bfloat16": Network((2, 6, 1), "sigmoid", "sigmoid", "binary_cross_entropy"),
    "float16": Network((3, 4, 4, 2), "tanh", "softmax", "squared_error"),
}


def _per_example_then_averaged(net, params, x, y):
    """The mean of per-example gradients (vmap over single examples): another summation order."""
    one = jax.vmap(lambda xi, yi: backprop.manual_grad(net, params, xi[None], yi[None]))(x, y)
    return jax.tree_util.tree_map(lambda g: jnp.mean(g, axis=0).astype(g.dtype), one)


def _reversed_batch(net, params, x, y):
    """The manual gradient with the batch reversed: the same sums, reassociated."""
    return backprop.manual_grad(net, params, x[::-1], y[::-1])


EQUIVALENT_FORMULAS = {
    "manual": backprop.manual_grad,
    "per_example_mean": _per_example_then_averaged,
    "reversed_batch": _reversed_batch,
    "literal": literal.literal_grad,
}


@pytest.mark.parametrize("dtype", list(_HYPOTHESIS_NETS))
@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    w_scale=st.floats(0.3, 2.0),
    x_scale=st.floats(0.1, 3.0),
    formula=st.sampled_from(sorted(EQUIVALENT_FORMULAS)),
)
def test_no_false_alarm_on_correct_gradients_by_equivalent_formulas(
    dtype, seed, w_scale, x_scale, formula
):
    net = _HYPOTHESIS_NETS[dtype]
    if formula == "literal" and net.loss == "binary_cross_entropy":
        formula = "manual"  # the slides' chain rule divides by ŷ(1-ŷ): see netcheck.nn.literal
    with jax.enable_x64(dtype == "float64"):
        params, x, y = _point(net, jnp.dtype(dtype), seed, 8, w_scale, x_scale)
        verdict = verify(net, params, x, y, grad_fn=EQUIVALENT_FORMULAS[formula], seed=seed % 1000)
    assert verdict.ok, str(verdict)


def test_a_candidate_that_cannot_run_in_float64_is_judged_on_precision_and_says_why():
    params, x, y = _point(NET, np.float32, seed=16)

    def float32_only(net, p, xx, yy):
        if xx.dtype != jnp.float32:
            raise NotImplementedError("this kernel is float32 only")
        return backprop.manual_grad(net, p, xx, yy)

    verdict = verify(NET, params, x, y, grad_fn=float32_only)
    assert verdict.ok and "NotImplementedError: this kernel is float32 only" in verdict.formula_note
    assert all(row.formula is None for row in verdict.rows if row.kind != "delta")

    def hard_cast(net, p, xx, yy):
        grads = backprop.manual_grad(net, p, xx, yy)
        return jax.tree_util.tree_map(lambda g: g.astype(jnp.float32), grads)

    cast = verify(NET, params, x, y, grad_fn=hard_cast)
    assert cast.ok and "returns float32" in cast.formula_note and "hard cast" in cast.formula_note


def test_a_wrong_rule_inside_the_loss_makes_the_reference_suspect(monkeypatch):
    # tanh whose custom JVP is 1% off: jax.grad of the loss (the truth) is wrong, while the
    # hand-written derivative beside the activation is right. Only the witness can tell.
    @jax.custom_jvp
    def tanh(z):
        return jnp.tanh(z)

    @tanh.defjvp
    def tanh_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        a = jnp.tanh(z)
        return a, (1 - a * a) * dz * 1.01

    right = ACTIVATIONS["tanh"]
    monkeypatch.setitem(ACTIVATIONS, "tanh", dataclasses.replace(right, fn=tanh))
    net = Network((5, 7, 3), "tanh", "identity", "squared_error")  # shapes no other test uses
    params, x, y = _point(net, np.float32, seed=17)
    verdict = verify(net, params, x, y)
    assert verdict.reference_suspect and not verdict.ok
    assert verdict.reason.startswith("reference suspect: float64 finite differences")
    assert not verdict.witness.agrees and not verdict.witness.kink
    assert abs(verdict.witness.value - verdict.witness.truth) > verdict.witness.tolerance
    assert abs(verdict.witness.value - verdict.witness.candidate) < verdict.witness.tolerance


def test_verify_accepts_a_tuple_of_layers():
    params, x, y = _point(NET, np.float32, seed=18)
    assert verify(NET, tuple(params), x, y).ok


def test_verify_under_a_transformation_says_it_needs_concrete_values():
    params, x, y = _point(NET, np.float32, seed=19)
    with pytest.raises(TypeError, match="verify needs concrete values"):
        jax.jit(lambda p: verify(NET, p, x, y).ok)(params)


def test_raise_if_failed_carries_the_table_with_failures_first():
    params, x, y = _point(NET, np.float32, seed=20)
    verify(NET, params, x, y).raise_if_failed()  # a passing verdict raises nothing
    grads = NET.manual_grad(params, x, y)
    wrong = [{**grads[0], "b": grads[0]["b"] * 1.01}, grads[1]]
    verdict = verify(NET, params, x, y, grad_fn=lambda *_: wrong)
    with pytest.raises(AssertionError) as raised:
        verdict.raise_if_failed()
    message = str(raised.value)
    lines = message.splitlines()
    assert lines[0].startswith("verdict: FAILED") and lines[2].startswith("b_1")
    assert "catches" in lines[1] and "b_1: disagrees" in message


def test_verify_refuses_bad_input_before_running():
    params, x, y = _point(NET, np.float32)
    with pytest.raises(TypeError, match=r"net must be a netcheck\.Network"):
        verify("net", params, x, y)
    with pytest.raises(ValueError, match="x must have shape"):
        verify(NET, params, x[:, :2], y)
    with pytest.raises(ValueError, match="non-finite"):
        verify(NET, params, x.at[0, 0].set(jnp.inf), y)
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


def test_unit_roundoffs_are_the_textbook_ones():
    assert unit_roundoff(jnp.float32) == U32
    assert unit_roundoff(jnp.bfloat16) == UBF16
    assert unit_roundoff(jnp.float16) == 2.0**-11
    assert unit_roundoff(np.float64) == U64
    assert isinstance(verify.__doc__, str) and Verdict.__doc__
