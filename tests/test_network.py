"""Tests of netcheck.nn.network: the spec, its validation, init, and the forward pass."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import netcheck as nc
from netcheck.nn import autodiff, backprop, hvp


def test_forward_with_bias_matches_numpy(x64):
    """z = a Wᵀ + b on rows, against numpy; the bias add must not rely on rank promotion."""
    net = nc.Network((2, 3, 1), activation="tanh", output_activation="identity")
    params = net.init(jax.random.key(0), dtype=jnp.float64, scheme="nielsen")
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    w1, b1 = (np.asarray(params[0][k]) for k in ("W", "b"))
    w2, b2 = (np.asarray(params[1][k]) for k in ("W", "b"))
    expected = np.tanh(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(np.asarray(net.forward(params, x)), expected, rtol=1e-13)


# ----- the spec: frozen, hashable, validated -----------------------------------------------


def test_network_is_frozen_and_hashable():
    net = nc.Network([2, 3, 1], "tanh")
    twin = nc.Network((2, 3, 1), "tanh")
    assert net.sizes == (2, 3, 1) and isinstance(net.sizes, tuple)
    assert net == twin and hash(net) == hash(twin)
    assert net != nc.Network((2, 3, 1), "relu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.activation = "relu"
    assert net.depth == 2
    assert net.layer_activation(1).name == "tanh" and net.layer_activation(2).name == "sigmoid"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"sizes": ()}, ValueError, r"sizes must name the input width", id="empty-sizes"
        ),
        pytest.param({"sizes": (3,)}, ValueError, r"at least one layer.*got \(3,\)", id="one-size"),
        pytest.param(
            {"sizes": (2, 0, 1)},
            ValueError,
            r"sizes\[1\] must be at least 1, got 0",
            id="zero-size",
        ),
        pytest.param(
            {"sizes": (2, 2.5, 1)},
            TypeError,
            r"sizes\[1\] must be an int, got 2.5",
            id="float-size",
        ),
        pytest.param(
            {"sizes": (2, True)}, TypeError, r"sizes\[1\] must be an int, got True", id="bool-size"
        ),
        pytest.param(
            {"sizes": 3}, TypeError, r"sizes must be a sequence of layer widths", id="int-sizes"
        ),
        pytest.param(
            {"activation": "swish"},
            ValueError,
            r"unknown activation 'swish'",
            id="unknown-activation",
        ),
        pytest.param(
            {"output_activation": "sofmax"},
            ValueError,
            r"unknown activation 'sofmax'",
            id="unknown-output",
        ),
        pytest.param({"loss": "mse"}, ValueError, r"unknown loss 'mse'", id="unknown-loss"),
        pytest.param(
            {"activation": "softmax"},
            ValueError,
            r"'softmax' can only be an output activation",
            id="softmax-hidden",
        ),
        pytest.param(
            {"loss": "binary_cross_entropy", "output_activation": "tanh"},
            ValueError,
            r"loss 'binary_cross_entropy' needs output_activation='sigmoid', got 'tanh'",
            id="bce-tanh",
        ),
        pytest.param(
            {"loss": "softmax_cross_entropy", "output_activation": "sigmoid", "sizes": (2, 3)},
            ValueError,
            r"loss 'softmax_cross_entropy' needs output_activation='softmax', got 'sigmoid'",
            id="ce-sigmoid",
        ),
        pytest.param(
            {"output_activation": "softmax", "sizes": (2, 3, 1)},
            ValueError,
            r"'softmax' needs at least 2 outputs, got sizes\[-1\]=1",
            id="softmax-one-unit",
        ),
        pytest.param({"bias": 1}, TypeError, r"bias must be True or False, got 1", id="int-bias"),
    ],
)
def test_invalid_spec_is_refused(kwargs, error, match):
    spec = {"sizes": (2, 3, 1)} | kwargs
    with pytest.raises(error, match=match):
        nc.Network(**spec)


# ----- init ---------------------------------------------------------------------------------


SCHEMES = list(nc.INIT_SCHEMES)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_shapes_and_dtypes(scheme, bias):
    net = nc.Network((3, 5, 4, 2), "relu", bias=bias)
    params = net.init(jax.random.key(1), scheme=scheme)
    assert len(params) == 3
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(net.sizes)):
        assert set(params[layer]) == ({"W", "b"} if bias else {"W"})
        assert params[layer]["W"].shape == (n_out, n_in)
        assert params[layer]["W"].dtype == jnp.float32
        if bias:
            assert params[layer]["b"].shape == (n_out,)
            assert params[layer]["b"].dtype == jnp.float32


def test_init_is_deterministic_in_the_key():
    net = nc.Network((3, 5, 2))
    first, again = net.init(jax.random.key(4)), net.init(jax.random.key(4))
    other = net.init(jax.random.key(5))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(first[0]["W"]), np.asarray(other[0]["W"]))


# The variance each scheme promises for a (n_out, n_in) = (256, 512) layer, and its law.
WIDE_IN, WIDE_OUT = 512, 256
EXPECTED_VARIANCE = {
    "glorot_normal": 2 / (WIDE_IN + WIDE_OUT),
    "glorot_uniform": 2 / (WIDE_IN + WIDE_OUT),
    "he_normal": 2 / WIDE_IN,
    "lecun_normal": 1 / WIDE_IN,
    "nielsen": 1.0,
}


@pytest.mark.parametrize("scheme", list(EXPECTED_VARIANCE))
def test_init_weight_statistics(scheme):
    net = nc.Network((WIDE_IN, WIDE_OUT), "relu")
    w = np.asarray(net.init(jax.random.key(0), scheme=scheme)[0]["W"], np.float64)
    n = w.size
    variance = EXPECTED_VARIANCE[scheme]
    # The sample variance of n i.i.d. draws has standard error σ² sqrt((κ - 1)/n) with κ the
    # kurtosis (3 normal, 1.8 uniform, < 3 truncated normal); 5 standard errors at κ = 3 gives
    # a false-alarm rate below 1e-6 and is 1.2% of σ² here, far below the 2x between schemes.
    assert abs(w.var() - variance) <= 5 * variance * np.sqrt(2 / n)
    # The mean is 0 within 5 standard errors σ/sqrt(n).
    assert abs(w.mean()) <= 5 * np.sqrt(variance / n)
    if scheme == "glorot_uniform":
        assert np.abs(w).max() <= np.sqrt(3 * variance)
    elif scheme != "nielsen":
        # jax's truncated normal cuts at 2 standard deviations of the untruncated law.
        assert np.abs(w).max() <= 2 * np.sqrt(variance) / 0.87962566103423978


def test_init_biases():
    net = nc.Network((3, 400))
    assert not np.asarray(net.init(jax.random.key(0))[0]["b"]).any()
    b = np.asarray(net.init(jax.random.key(0), scheme="nielsen")[0]["b"], np.float64)
    assert abs(b.var() - 1) <= 5 * np.sqrt(2 / b.size)


@pytest.mark.parametrize(
    ("activation", "variance"),
    [("relu", 2 / 64), ("tanh", 2 / (64 + 128))],
    ids=["relu-he", "tanh-glorot"],
)
def test_auto_init_picks_he_for_relu_like_and_glorot_otherwise(activation, variance):
    net = nc.Network((64, 128), activation)
    w = np.asarray(net.init(jax.random.key(2))[0]["W"], np.float64)
    # he (2/64) and glorot (2/192) differ 3x; the sampling error at n = 8192 is ~3%.
    assert abs(w.var() - variance) <= 5 * variance * np.sqrt(2 / w.size)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_default_init_in_half_precision(dtype, activation):
    net = nc.Network((64, 128, 2), activation)
    params = net.init(jax.random.key(3), dtype=dtype)
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(leaf)))
    w = np.asarray(params[0]["W"].astype(jnp.float32), np.float64)
    variance = 2 / 64 if activation == "relu" else 2 / (64 + 128)
    # Half-precision rounding perturbs each draw by ≤ 2^-8 relative: negligible next to
    # the 5-standard-error sampling bound.
    assert abs(w.var() - variance) <= 5 * variance * np.sqrt(2 / w.size)


def test_init_takes_an_int_seed_as_jax_random_key_of_it():
    net = nc.Network((3, 5, 2))
    from_seed, from_key = net.init(7), net.init(jax.random.key(7))
    from_numpy_seed = net.init(np.int64(7))
    from_raw_key = net.init(jax.random.PRNGKey(7))  # the legacy uint32 key data
    trees = (from_seed, from_key, from_numpy_seed, from_raw_key)
    for leaves in zip(*map(jax.tree.leaves, trees), strict=True):
        for leaf in leaves[1:]:
            np.testing.assert_array_equal(np.asarray(leaf), np.asarray(leaves[0]))
    assert not np.array_equal(np.asarray(net.init(8)[0]["W"]), np.asarray(from_seed[0]["W"]))


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        pytest.param(
            0.5,
            TypeError,
            r"key must be a jax\.random key \(e\.g\. jax\.random\.key\(0\)\) "
            r"or an int seed, got float",
            id="float",
        ),
        pytest.param("0", TypeError, r"or an int seed, got str", id="str"),
        pytest.param(None, TypeError, r"or an int seed, got NoneType", id="none"),
        pytest.param(True, TypeError, r"or an int seed, got bool", id="bool"),
        pytest.param(
            np.zeros(2, np.float32),
            TypeError,
            r"or an int seed, got an array of float32 \(2,\)",
            id="float-array",
        ),
        pytest.param(
            np.zeros(3, np.uint32),
            TypeError,
            r"or an int seed, got an array of uint32 \(3,\)",
            id="wrong-raw-key-shape",
        ),
        pytest.param(
            -1, ValueError, r"key: an int seed must be in \[0, 2\*\*32\), got -1", id="negative"
        ),
        pytest.param(
            2**32,
            ValueError,
            r"an int seed must be in \[0, 2\*\*32\), got 4294967296",
            id="too-big",
        ),
    ],
)
def test_init_refuses_what_is_neither_a_key_nor_a_seed(key, error, match):
    with pytest.raises(error, match=match):
        nc.Network((2, 1)).init(key)


def test_init_refuses_an_array_of_keys():
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(
        ValueError, match=r"key must be one jax\.random key, got an array of keys \(3,\)"
    ):
        nc.Network((2, 1)).init(keys)


def test_init_float64_needs_x64():
    net = nc.Network((2, 1))
    with pytest.raises(ValueError, match=r"dtype is float64 but JAX runs in 32-bit mode"):
        net.init(jax.random.key(0), dtype=jnp.float64)


def test_init_float64_with_x64(x64):
    params = nc.Network((2, 1)).init(jax.random.key(0), dtype=jnp.float64)
    assert params[0]["W"].dtype == jnp.float64


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"scheme": "xavier"},
            ValueError,
            r"unknown init scheme 'xavier'; known: auto, glorot_normal",
            id="unknown-scheme",
        ),
        pytest.param(
            {"dtype": jnp.int32},
            TypeError,
            r"dtype must be floating point, got int32",
            id="int-dtype",
        ),
        pytest.param(
            {"dtype": "float17"}, TypeError, r"dtype: 'float17' is not a dtype", id="bogus-dtype"
        ),
    ],
)
def test_init_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nc.Network((2, 1)).init(jax.random.key(0), **kwargs)


# ----- mean loss against numpy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_cross_entropy"),
        ("softmax", "softmax_cross_entropy"),
        ("tanh", "squared_error"),
    ],
    ids=["sigmoid+bce", "softmax+ce", "tanh+se"],
)
def test_mean_loss_is_the_lectures_mean_over_the_batch(output, loss, make_problem, x64):
    net = nc.Network((3, 4, 2), "tanh", output, loss, bias=True)
    params, x, y = make_problem(net.sizes, loss, True, batch=7, seed=2)
    a1 = np.tanh(x @ params[0]["W"].T + params[0]["b"])
    z2 = a1 @ params[1]["W"].T + params[1]["b"]
    if output == "sigmoid":
        y_hat = 1 / (1 + np.exp(-z2))
        per_example = -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat)).sum(axis=1)
    elif output == "softmax":
        y_hat = np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)
        per_example = -(y * np.log(y_hat)).sum(axis=1)
    else:
        per_example = 0.5 * ((y - np.tanh(z2)) ** 2).sum(axis=1)
    # 1/n Σ_i L(y_i, ŷ(x_i)); float64 closed forms agree to a few eps.
    got = net.mean_loss(jax.tree.map(jnp.asarray, params), x, y)
    np.testing.assert_allclose(float(got), per_example.mean(), rtol=1e-13)


# ----- bad input at the public methods, refused before anything is traced -------------------


def _good_batch():
    """A (3, 4, 2) network with float32 parameters and a batch of 5 (numpy)."""
    net = nc.Network((3, 4, 2), "tanh", "identity")
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    return net, params, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))


def _with(params, layer, **leaves):
    """A copy of ``params`` with layer ``layer``'s dict updated (a value None drops the key)."""
    copy = [dict(weights) for weights in params]
    for name, value in leaves.items():
        if value is None:
            del copy[layer][name]
        else:
            copy[layer][name] = value
    return copy


def _nan_at(array, value):
    array = array.copy()
    array[1, 0] = value
    return array


BAD_BATCHES = {
    "x-y-batch-mismatch": (
        lambda p, x, y: (p, x, y[:4]),
        ValueError,
        r"y must have shape \(batch, n_L\) = \(5, 2\) to match x \(5, 3\), got \(4, 2\)",
    ),
    "wrong-feature-count": (
        lambda p, x, y: (p, x[:, :2], y),
        ValueError,
        r"x must have shape \(batch, 3\) for sizes=\(3, 4, 2\), got \(5, 2\)",
    ),
    "x-1d": (lambda p, x, y: (p, x[0], y), ValueError, r"x must have shape \(batch, 3\)"),
    "y-wrong-width": (
        lambda p, x, y: (p, x, y[:, :1]),
        ValueError,
        r"y must have shape \(batch, n_L\) = \(5, 2\).*got \(5, 1\)",
    ),
    "empty-batch": (lambda p, x, y: (p, x[:0], y[:0]), ValueError, r"x is empty"),
    "nan-in-x": (
        lambda p, x, y: (p, _nan_at(x, np.nan), y),
        ValueError,
        r"x has 1 non-finite value\(s\) \(NaN or Inf\)",
    ),
    "inf-in-x": (lambda p, x, y: (p, _nan_at(x, np.inf), y), ValueError, r"x has 1 non-finite"),
    "x-overflows-float32": (
        lambda p, x, y: (p, x * 1e40, y),
        ValueError,
        r"x has 15 value\(s\) beyond the range of float32 \(they overflow to Inf\)",
    ),
    "nan-in-y": (lambda p, x, y: (p, x, _nan_at(y, np.nan)), ValueError, r"y has 1 non-finite"),
    "inf-in-y": (lambda p, x, y: (p, x, _nan_at(y, -np.inf)), ValueError, r"y has 1 non-finite"),
    "string-x": (lambda p, x, y: (p, np.full((5, 3), "a"), y), TypeError, r"x must be numeric"),
    "complex-y": (
        lambda p, x, y: (p, x, y + 1j),
        TypeError,
        r"y must be real, got complex dtype complex128",
    ),
    "too-few-layers": (
        lambda p, x, y: (p[:1], x, y),
        ValueError,
        r"params has 1 layers but the network sizes=\(3, 4, 2\) have 2",
    ),
    "too-many-layers": (lambda p, x, y: ([*p, p[-1]], x, y), ValueError, r"params has 3 layers"),
    "params-not-a-list": (
        lambda p, x, y: ({"W": p[0]["W"]}, x, y),
        TypeError,
        r"params must be a list of per-layer dicts, got dict",
    ),
    "layer-not-a-dict": (
        lambda p, x, y: ([p[0], p[1]["W"]], x, y),
        TypeError,
        r"params\[1\] must be a dict",
    ),
    "wrong-W-shape": (
        lambda p, x, y: (_with(p, 1, W=p[1]["W"].T), x, y),
        ValueError,
        r'params\[1\]\["W"\] \(W_2\) has shape \(4, 2\), expected \(2, 4\)',
    ),
    "wrong-b-shape": (
        lambda p, x, y: (_with(p, 0, b=jnp.zeros((3,))), x, y),
        ValueError,
        r'params\[0\]\["b"\] \(b_1\) has shape \(3,\), expected \(4,\)',
    ),
    "missing-b": (
        lambda p, x, y: (_with(p, 0, b=None), x, y),
        ValueError,
        r"params\[0\] has keys \['W'\], expected \['W', 'b'\] \(bias=True\)",
    ),
    "extra-key": (
        lambda p, x, y: (_with(p, 1, gamma=jnp.ones((2,))), x, y),
        ValueError,
        r"params\[1\] has keys \['W', 'b', 'gamma'\], expected \['W', 'b'\]",
    ),
    "int-params": (
        lambda p, x, y: (_with(p, 0, W=jnp.ones((4, 3), jnp.int32)), x, y),
        TypeError,
        r'params\[0\]\["W"\] \(W_1\) must be floating point, got int32',
    ),
    "numpy-int-params": (
        lambda p, x, y: (_with(p, 1, b=np.zeros(2, np.int64)), x, y),
        TypeError,
        r'params\[1\]\["b"\] \(b_2\) must be floating point, got int64',
    ),
    "list-leaf": (
        lambda p, x, y: (_with(p, 0, b=[0.0] * 4), x, y),
        TypeError,
        r'params\[0\]\["b"\] \(b_1\) must be an array, got list',
    ),
    "mixed-dtypes": (
        lambda p, x, y: (_with(p, 1, b=p[1]["b"].astype(jnp.bfloat16)), x, y),
        ValueError,
        r"params mix dtypes \['bfloat16', 'float32'\]; use one",
    ),
    "float64-params-without-x64": (
        lambda p, x, y: (jax.tree.map(lambda a: np.asarray(a, np.float64), p), x, y),
        ValueError,
        r'params\[0\]\["W"\] \(W_1\) is float64 but JAX runs in 32-bit mode',
    ),
}

METHODS = (
    "manual_grad",
    "autodiff_grad",
    "manual_deltas",
    "autodiff_deltas",
    "mean_loss",
    "manual_hvp",
    "autodiff_hvp",
)
HVP_METHODS = ("manual_hvp", "autodiff_hvp")
COMPILED = (
    backprop.manual_grad_jit,
    autodiff.autodiff_grad_jit,
    backprop.manual_deltas_jit,
    autodiff.autodiff_deltas_jit,
    hvp.manual_hvp_jit,
    autodiff.autodiff_hvp_jit,
)


def _call(net, method, params, x, y):
    """``net.<method>(params, x, y)``; the HVPs take the direction ``v = params``."""
    extra = (params,) if method in HVP_METHODS else ()
    return getattr(net, method)(params, x, y, *extra)


def _compiled_programs() -> tuple[int, ...]:
    return tuple(function._cache_size() for function in COMPILED)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_is_refused_before_tracing(case, method):
    net, params, x, y = _good_batch()
    corrupt, error, match = BAD_BATCHES[case]
    compiled = _compiled_programs()
    with pytest.raises(error, match=match):
        _call(net, method, *corrupt(params, x, y))
    # Refused at the boundary: nothing new was traced or compiled.
    assert compiled == _compiled_programs()


def test_forward_refuses_bad_inputs():
    net, params, x, _ = _good_batch()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        net.forward(params, x[:, :1])
    with pytest.raises(ValueError, match=r"x has 1 non-finite"):
        net.forward(params, _nan_at(x, np.nan))
    float64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    with pytest.raises(ValueError, match=r"is float64 but JAX runs in 32-bit mode; enable it"):
        net.forward(float64, x)
    with pytest.raises(TypeError, match=r"must be floating point, got int32"):
        net.forward(_with(params, 0, b=jnp.zeros(4, jnp.int32)), x)


def test_good_batch_is_accepted():
    """The corruptions above are the only thing wrong: the clean batch goes through."""
    net, params, x, y = _good_batch()
    for method in METHODS:
        assert all(
            np.isfinite(np.asarray(leaf)).all()
            for leaf in jax.tree.leaves(_call(net, method, params, x, y))
        )


# ----- one rule on targets, at every public entry --------------------------------------------


def _classifier(loss):
    output = {"binary_cross_entropy": "sigmoid", "softmax_cross_entropy": "softmax"}[loss]
    net = nc.Network((3, 4, 3), "tanh", output, loss)
    rng = np.random.default_rng(1)
    return net, net.init(0), rng.normal(size=(4, 3))


BAD_TARGETS = {
    "bce-above-1": (
        "binary_cross_entropy",
        np.full((4, 3), 0.5) + np.eye(4, 3),
        r"y: binary_cross_entropy needs targets in \[0, 1\], got values in \[0\.5, 1\.5\]",
    ),
    "bce-negative": (
        "binary_cross_entropy",
        -np.eye(4, 3),
        r"binary_cross_entropy needs targets in \[0, 1\], got values in \[-1, 0\]",
    ),
    "ce-rows-sum-to-3": (
        "softmax_cross_entropy",
        np.ones((4, 3)),
        r"y: softmax_cross_entropy needs target rows summing to 1 \(one-hot or probabilities\); "
        r"4 row\(s\) do not, e\.g\. row 0 sums to 3",
    ),
}


@pytest.mark.parametrize("method", [*METHODS, "verify"])
@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_targets_outside_the_losss_domain_are_refused_everywhere(case, method):
    loss, y, match = BAD_TARGETS[case]
    net, params, x = _classifier(loss)
    compiled = _compiled_programs()
    with pytest.raises(ValueError, match=match):
        if method == "verify":
            nc.verify(net, params, x, y)
        else:
            _call(net, method, params, x, y)
    assert compiled == _compiled_programs()


def test_valid_targets_of_the_cross_entropies_are_accepted():
    for loss, y in (
        ("binary_cross_entropy", np.array([[0.0, 1.0, 0.25]] * 4)),
        ("softmax_cross_entropy", np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]] * 2)),
    ):
        net, params, x = _classifier(loss)
        assert np.isfinite(float(net.mean_loss(params, x, y)))


def test_targets_under_jit_are_checked_for_shape_only():
    net, params, x = _classifier("softmax_cross_entropy")
    mean_loss = jax.jit(lambda y: net.mean_loss(params, x, y))
    # Rows summing to 3 cannot be seen in a tracer: the value is computed, not refused.
    assert np.isfinite(float(mean_loss(jnp.ones((4, 3)))))
    # Even a target closed over as a constant is traced under jit.
    constant = np.ones((4, 3))
    assert np.isfinite(float(jax.jit(lambda: net.mean_loss(params, x, constant))()))
    with pytest.raises(ValueError, match=r"y must have shape \(batch, n_L\) = \(4, 3\)"):
        mean_loss(jnp.ones((4, 2)))


def test_x64_does_not_leak_between_tests():
    """The x64 fixture is a context: outside it JAX is in 32-bit mode (whatever ran before)."""
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(1.0).dtype == jnp.float32
