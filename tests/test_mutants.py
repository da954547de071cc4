"""Planted bugs: every one is killed by the verifier and localised to its layer."""

from __future__ import annotations

import numpy as np
import pytest

from netcheck import backprop, suite
from netcheck.mutants import MUTANTS, SCALE_BUG
from netcheck.network import Network

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
