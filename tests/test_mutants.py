"""Planted bugs: every gradient bug is killed by the verifier and localised to its layer;
every Hessian-vector-product bug differs from the truth where it claims to apply."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import OUTPUT_LOSS_PAIRS, leaf_errors
from conftest import draw_problem

from netcheck.bench import suite
from netcheck.bench.mutants import HVP_MUTANTS, MUTANTS, SCALE_BUG
from netcheck.nn import Network, autodiff, backprop

ISSUE_BUGS = {
    "slide_sign",  # (y - ŷ) as on the slide
    "g_prime_dropped",  # G(ℓ) dropped
    "g_for_g_prime",  # g(z) in place of g'(z)
    "own_weights",  # W_ℓ in place of W_{ℓ+1}
    "not_transposed",  # W not transposed (square layers)
    "next_activation",  # a^ℓ in place of a^{ℓ-1}
    "sum_not_mean",  # sum in place of mean over the batch
    "bias_wrong_axis",  # bias gradient reduced over the wrong axis
    "wrong_layer_z",  # δ of a hidden layer from the wrong layer's z
    "scaled_layer",  # one layer's gradient x (1 + 1e-3)
    "softmax_elementwise",  # softmax treated as elementwise
    "relu_prime_sign",  # relu' wrong away from 0
}


def test_the_registry_holds_every_bug_of_the_issue_with_a_description():
    assert set(MUTANTS) >= ISSUE_BUGS and len(MUTANTS) >= 12
    for name, mutant in MUTANTS.items():
        assert mutant.name == name and mutant.description and mutant.corrupts
    assert SCALE_BUG == 1e-3


@pytest.fixture(scope="module")
def float32_matrix():
    return suite.kill_matrix(dtypes=("float32",), progress=False)


def test_every_mutant_is_killed_and_localised_and_the_correct_code_passes(float32_matrix):
    assert float32_matrix["control_ok"]
    for record in float32_matrix["mutants"]:
        assert record["cases"], f"{record['name']} applies to no kill case"
        for case in record["cases"]:
            assert case["killed"], f"{record['name']} survived on {case['id']}"
            assert case["named_layer"] == case["expected_layer"], (record["name"], case)
    assert float32_matrix["all_killed"] and float32_matrix["all_localised"]


def test_the_slide_sign_is_exactly_the_negative_of_the_real_delta():
    net = Network((3, 4, 2), activation="tanh", output_activation="identity")
    rng = np.random.default_rng(0)
    params = [
        {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": np.zeros(4, np.float32)},
        {"W": rng.normal(size=(2, 4)).astype(np.float32), "b": np.zeros(2, np.float32)},
    ]
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = rng.normal(size=(5, 2)).astype(np.float32)
    mutant = MUTANTS["slide_sign"]
    wrong = mutant.deltas(net, params, x, y)
    right = backprop.manual_deltas(net, params, x, y)
    for w, r in zip(wrong, right, strict=True):
        np.testing.assert_array_equal(np.asarray(w), -np.asarray(r))
    assert mutant.expected_layer(net) == 2


def test_applies_refuses_shape_invalid_or_equivalent_bugs():
    linear = Network((3, 4, 2), activation="identity", output_activation="identity")
    assert not MUTANTS["g_prime_dropped"].applies(linear, 4)  # G = I: no bug at all
    assert not MUTANTS["not_transposed"].applies(linear, 4)  # 2 x 4 is not square
    assert not MUTANTS["sum_not_mean"].applies(linear, 1)  # sum = mean for one example
    square = Network((5, 5, 5, 5), activation="tanh")
    assert MUTANTS["own_weights"].applies(square, 5)
    assert MUTANTS["bias_wrong_axis"].applies(square, 5)
    assert not MUTANTS["bias_wrong_axis"].applies(square, 4)


# ----- planted bugs in the Hessian-vector product ------------------------------------------
#
# verify(..., order=2) judges these; here each is checked to be a real bug where `applies`
# says so (far beyond round-off from float64 autodiff's H v) and equivalent where it says not.

HVP_NETWORKS = {
    f"{activation}-{pair_id}-L{len(hidden) + 1}": Network(
        (3, *hidden, 3), activation, output, loss, bias=True
    )
    for activation in ("tanh", "relu")
    for pair_id, (output, loss) in OUTPUT_LOSS_PAIRS.items()
    for hidden in ((), (4, 5))
}
"""Both kinds of hidden curvature (tanh'' ≠ 0, relu'' = 0), every output/loss pair, L = 1 and 3."""

# A bug moves some leaf by O(1) relative; round-off stays below 1000 eps64 = 2.2e-13
# (the sweep bound of tests/test_hvp.py).
BUG_FLOOR = 1e-6
ROUNDOFF = 1000 * float(np.finfo(np.float64).eps)


@pytest.fixture(scope="module")
def hvp_problems():
    """``{network id: (float64 params, x, y, v, autodiff H v)}``, drawn once."""
    with jax.enable_x64(True):
        problems = {}
        for seed, (case, net) in enumerate(HVP_NETWORKS.items()):
            params, x, y = draw_problem(net.sizes, net.loss, True, batch=4, seed=seed)
            v = draw_problem(net.sizes, net.loss, True, batch=4, seed=seed + 100)[0]
            problem = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, x, y, v))
            with jax.disable_jit():
                problems[case] = (*problem, autodiff.autodiff_hvp(net, *problem))
        return problems


def test_the_hvp_catalogue_holds_the_issues_bugs_with_descriptions():
    assert {
        "second_derivative_dropped",  # g'' dropped
        "weight_tangent_dropped",  # one R-term forgotten: R{W}ᵀδ in R{δ^ℓ}
        "output_second_order_dropped",  # the output's second-order term dropped
    } <= set(HVP_MUTANTS)
    for name, mutant in HVP_MUTANTS.items():
        assert mutant.name == name and mutant.description and mutant.corrupts


@pytest.mark.parametrize("name", list(HVP_MUTANTS))
def test_hvp_mutant_differs_from_the_truth_exactly_where_it_applies(name, hvp_problems):
    mutant = HVP_MUTANTS[name]
    applied = 0
    with jax.enable_x64(True), jax.disable_jit():
        for case, net in HVP_NETWORKS.items():
            params, x, y, v, truth = hvp_problems[case]
            errors = leaf_errors(mutant.hvp(net, params, x, y, v), truth)
            error = max(error for _, error in errors)
            if not mutant.applies(net, x.shape[0]):
                assert error <= ROUNDOFF, f"{name} does not apply to {case}, yet {error:.1e}"
                continue
            applied += 1
            assert error > BUG_FLOOR, f"{name} is no bug on {case} ({error:.1e})"
            # Leaves come as [0]['W'], [0]['b'], [1]['W'], ...: two per layer (bias=True).
            bad_layers = [index // 2 + 1 for index, (_, e) in enumerate(errors) if e > BUG_FLOOR]
            assert max(bad_layers) == mutant.expected_layer(net), (case, bad_layers)
    assert applied >= 4, f"{name} applies to only {applied} of the networks"
