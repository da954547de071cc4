"""The default suite's cases, its records, and the detection-power measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from netcheck.bench import suite
from netcheck.nn.activations import HIDDEN_ACTIVATIONS
from netcheck.nn.losses import LOSSES
from netcheck.verifier.tolerance import Constants


def test_the_default_suite_covers_every_axis_with_at_least_200_cases():
    cases = suite.default_cases()
    assert len(cases) >= 200
    assert {c.activation for c in cases} == set(HIDDEN_ACTIVATIONS)
    assert {c.loss for c in cases} == set(LOSSES)
    assert {c.dtype for c in cases} == set(suite.DTYPES)
    assert {c.output_activation for c in cases} >= {"identity", "sigmoid", "softmax"}
    assert len({len(c.sizes) - 1 for c in cases}) >= 3  # depths
    assert len({w for c in cases for w in c.sizes[1:-1]}) >= 5  # widths
    assert len({c.batch for c in cases}) >= 4 and {True, False} == {c.bias for c in cases}
    assert len({c.id for c in cases}) == len(cases) == len({c.seed for c in cases})
    assert cases == suite.default_cases()  # reproducible
    # One compiled program per group: far fewer groups than cases.
    assert len({c.group for c in cases}) == suite.SUITE_SPECS


def test_quick_still_covers_every_activation_loss_and_dtype():
    cases = suite.default_cases(quick=True)
    assert {c.activation for c in cases} == set(HIDDEN_ACTIVATIONS)
    assert {c.loss for c in cases} == set(LOSSES)
    assert {c.dtype for c in cases} == set(suite.DTYPES)
    assert set(cases) <= set(suite.default_cases()) | set(cases)


def test_filters_keep_only_matching_cases_and_refuse_unknown_names():
    cases = suite.default_cases(activation="relu", loss="squared_error")
    assert cases and all(c.activation == "relu" and c.loss == "squared_error" for c in cases)
    assert all(c.dtype == "float16" for c in suite.default_cases(dtype="float16"))
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        suite.default_cases(dtype="float8")
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        suite.default_cases(activation="softmax")
    with pytest.raises(TypeError, match="loss must be a name"):
        suite.default_cases(loss=3)


def test_case_data_is_seeded_and_shaped_for_its_loss():
    case = suite.Case("tanh", "softmax", "softmax_cross_entropy", (3, 5, 4), 7, True, "float32", 1)
    params, x, y = suite.case_data(case)
    again = suite.case_data(case)
    np.testing.assert_array_equal(params[0]["W"], again[0][0]["W"])
    assert params[0]["W"].shape == (5, 3) and params[1]["b"].shape == (4,)
    assert x.shape == (7, 3) and y.shape == (7, 4)
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(7))  # one-hot rows
    bce = suite.Case("relu", "sigmoid", "binary_cross_entropy", (2, 1), 9, False, "float16", 2)
    params, _, y = suite.case_data(bce)
    assert set(np.unique(y)) <= {0.0, 1.0} and "b" not in params[0]


def test_run_suite_returns_json_able_records_of_every_case():
    cases = suite.default_cases(quick=True, activation="identity")
    record = suite.run_suite(cases, progress=False)
    assert record["kind"] == "suite" and record["n_cases"] == len(cases) == 4
    assert record["ok"] and record["n_failed"] == 0 and record["groups"] == 1
    json.dumps(record, allow_nan=False)
    first = record["cases"][0]
    assert first["id"] == cases[0].id and first["spec"]["sizes"] == list(cases[0].sizes)
    assert set(first) >= {"ok", "dtype", "first_bad_layer", "reasons", "worst_ratio", "layers"}
    layer = first["layers"][0]
    assert set(layer["rows"]) == {"delta", "W", "b"} and layer["worst_ratio"] < 1


def test_detection_power_finds_large_errors_without_false_alarms():
    record = suite.detection_power(("float32",), n_cases=1, check_grads_cases=1, progress=False)
    json.dumps(record, allow_nan=False)
    (ours,) = record["dtypes"]
    assert ours["false_alarms"] == 0 and ours["n_cases"] == 1
    assert len(ours["detected_fraction"]) == len(record["epsilons"])
    # ε = 1 doubles a layer's gradient: everyone must see that; 1e-15 is beyond float32.
    assert ours["detected_fraction"][0] == 1.0 and ours["detected_fraction"][-1] == 0.0
    assert ours["check_grads"]["detected_fraction"][0] == 1.0
    with pytest.raises(ValueError, match="n_cases must be a positive int"):
        suite.detection_power(("float32",), n_cases=0)


def test_detection_power_names_the_cases_that_raise_a_false_alarm():
    # K and T a millionth of their values: no correct float32 gradient lands that close.
    strict = Constants(noise_multiple=8e-6, tie_multiple=4e-6)
    record = suite.detection_power(
        ("float32",), n_cases=2, check_grads_cases=0, progress=False, constants=strict
    )
    (ours,) = record["dtypes"]
    expected = [case.id for case in suite.power_cases("float32", 2)]
    assert sorted(ours["false_alarm_ids"]) == sorted(expected) and ours["false_alarms"] == 2
    assert len(ours["false_alarm_ids_precision"]) == ours["false_alarms_precision"]
