"""Tests of netcheck.nn.hvp: the Hessian-vector product by hand (R-operator) against independent
references.

References: float64 forward-over-reverse autodiff ``jax.jvp(jax.grad(mean loss))`` (every
activation x output/loss pair x bias x depth 0..3), the full Hessian of a 2-2-1 network
built entry by entry in numpy from the chain rule (no R-operator), central differences of
the manual gradient along ``v``, and the Hessian's own algebra (symmetry, linearity).

Tolerances are relative to the largest |entry| of each leaf of the float64 truth, as in
tests/test_backprop.py: ``|manual - truth| ≤ ROUNDOFF_ULPS · eps(dtype) · max|truth leaf|``.
Observed worst cases on the sweep: 7e-15 (~30 eps) in float64 and ~17 eps in float32;
ROUNDOFF_ULPS = 1000 leaves a margin of ~30 over that, while a dropped term of the product
rule is O(1) off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import (
    OUTPUT_LOSS_PAIRS,
    ROUNDOFF_ULPS,
    assert_close,
    leaf_errors,
    sweep_cases,
    sweep_sizes,
    tiny_problem,
)

import netcheck as nc
from netcheck.bench import mutants
from netcheck.nn import autodiff, backprop, hvp

EPS64 = float(np.finfo(np.float64).eps)


def _as(tree, dtype):
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), tree)


def _problem(make_problem, net, batch=5, seed=0):
    """float64 numpy ``(params, x, y, v)``; ``v`` is drawn like the parameters."""
    params, x, y = make_problem(net.sizes, net.loss, net.bias, batch=batch, seed=seed)
    v = make_problem(net.sizes, net.loss, net.bias, batch=batch, seed=seed + 1000)[0]
    return params, x, y, v


def _dot(a, b) -> float:
    return sum(
        float(np.vdot(np.asarray(p), np.asarray(q)))
        for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _abs_dot(a, b) -> float:
    """``Σ |a_i| |b_i|``: the scale of the round-off in ``⟨a, b⟩``."""
    return sum(
        float(np.vdot(np.abs(np.asarray(p)), np.abs(np.asarray(q))))
        for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# ----- every activation x output/loss x bias x depth, against float64 autodiff -------------
#
# Eager, as the gradient sweep in test_backprop: 432 networks would each compile two XLA
# programs. The compiled entry points are the same traced functions (compile-once test).


@pytest.mark.parametrize(
    ("activation", "output", "loss", "bias", "depth", "equal_widths"), sweep_cases(range(4))
)
def test_manual_hvp_matches_autodiff(
    activation, output, loss, bias, depth, equal_widths, make_problem, x64
):
    """float64 manual vs float64 jax.jvp(jax.grad); float32 manual vs the same truth."""
    net = nc.Network(sweep_sizes(depth, equal_widths), activation, output, loss, bias)
    problem = _problem(make_problem, net, seed=depth)
    with jax.disable_jit():
        truth = autodiff.autodiff_hvp(net, *_as(problem, jnp.float64))
        manual64 = hvp.manual_hvp(net, *_as(problem, jnp.float64))
        manual32 = hvp.manual_hvp(net, *_as(problem, jnp.float32))
    assert jax.tree.structure(manual64) == jax.tree.structure(truth)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(manual32))
    assert_close(manual64, truth, jnp.float64)
    assert_close(manual32, truth, jnp.float32)


# ----- a 2-2-1 network, its full Hessian by hand ---------------------------------------------


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# A direction in parameter space, θ = (W_1 row-major, b_1, W_2, b_2).
TINY_DIRECTION = np.array([0.3, -1.1, 0.7, 0.2, -0.5, 0.9, 1.3, -0.4, 0.6])


def _hessian_by_hand(w1, b1, w2, b2, x, y, loss):
    """The 9 x 9 Hessian of the mean loss, θ = (W_1 row-major, b_1, W_2, b_2).

    Per example, with ``z^2 = Σ_j w2_j σ(z^1_j) + b2`` and ``z^1 = W_1 x + b_1``, the loss
    ``ℓ(z^2)`` has ``∂²ℓ/∂θ∂θ' = ℓ''(z^2) J Jᵀ + ℓ'(z^2) K`` with ``J = ∂z^2/∂θ`` and
    ``K = ∂²z^2/∂θ∂θ'``. ``K`` has two kinds of non-zero entries: two first-layer parameters
    of the same unit j give ``w2_j σ''(z^1_j) (∂z^1_j/∂θ)(∂z^1_j/∂θ')``; ``w2_j`` with a
    first-layer parameter of unit j gives ``σ'(z^1_j) ∂z^1_j/∂θ'``.
    """
    hessian = np.zeros((9, 9))
    for x_i, y_i in zip(x, y, strict=True):
        z1 = w1 @ x_i + b1
        a1 = _sigmoid(z1)
        slope1 = a1 * (1 - a1)  # σ'(z^1)
        curve1 = slope1 * (1 - 2 * a1)  # σ''(z^1)
        z2 = float(w2[0] @ a1 + b2[0])
        y_hat, target = _sigmoid(z2), float(y_i[0])
        slope2, curve2 = y_hat * (1 - y_hat), y_hat * (1 - y_hat) * (1 - 2 * y_hat)
        if loss == "squared_error":  # ℓ = ½(σ(z2) - y)²
            first = (y_hat - target) * slope2
            second = slope2**2 + (y_hat - target) * curve2
        else:  # binary cross-entropy from the logit: ℓ = softplus(z2) - y z2
            first, second = y_hat - target, slope2
        # ∂z^1_j/∂θ for j = 0, 1: x in unit j's row of W_1, 1 at b_1[j].
        dz1 = np.zeros((2, 9))
        for j in range(2):
            dz1[j, 2 * j : 2 * j + 2] = x_i
            dz1[j, 4 + j] = 1.0
        jacobian = w2[0, 0] * slope1[0] * dz1[0] + w2[0, 1] * slope1[1] * dz1[1]
        jacobian[6:8] = a1
        jacobian[8] = 1.0
        curvature = np.zeros((9, 9))
        for j in range(2):
            curvature += w2[0, j] * curve1[j] * np.outer(dz1[j], dz1[j])
            cross = np.zeros((9, 9))
            cross[6 + j] = slope1[j] * dz1[j]
            curvature += cross + cross.T
        hessian += second * np.outer(jacobian, jacobian) + first * curvature
    return hessian / len(x)


@pytest.mark.parametrize(
    ("output", "loss"),
    [("sigmoid", "squared_error"), ("sigmoid", "binary_cross_entropy")],
    ids=["sigmoid+se", "sigmoid+bce"],
)
def test_tiny_network_hvp_by_hand(output, loss, x64):
    w1, b1, w2, b2, x, y = tiny_problem()
    v = TINY_DIRECTION
    hessian = _hessian_by_hand(w1, b1, w2, b2, x, y, loss)
    assert np.abs(hessian - hessian.T).max() <= 1e-15  # the hand-built Hessian is symmetric
    expected = hessian @ v
    net = nc.Network((2, 2, 1), "sigmoid", output, loss, bias=True)
    params = [{"W": w1, "b": b1}, {"W": w2, "b": b2}]
    direction = [{"W": v[:4].reshape(2, 2), "b": v[4:6]}, {"W": v[6:8].reshape(1, 2), "b": v[8:]}]
    got = net.manual_hvp(_as(params, jnp.float64), x, y, _as(direction, jnp.float64))
    flat = np.concatenate([np.asarray(leaf).ravel() for layer in got for leaf in layer.values()])
    # Both sides do ~50 float64 roundings of O(1) numbers: 1e-14 relative is ~50 eps.
    np.testing.assert_allclose(flat, expected, rtol=0, atol=1e-14 * np.abs(expected).max())


# ----- central differences of the manual gradient --------------------------------------------

# float64, h = 1e-5 along v: truncation h²/6 |d³∇E/dt³| ~ 1e-10 for these O(1) networks,
# round-off ε |∇E| / h ~ 2e-11; 1e-7 relative to the largest |entry| of each leaf is ~500x
# above that, and still 1e7 below a missing term.
FD_STEP = 1e-5
FD_RTOL = 1e-7


def _fd_cases():
    cases = [
        pytest.param(activation, "softmax+se", id=f"{activation}-softmax+se")
        for activation in nc.HIDDEN_ACTIVATIONS
    ]
    cases += [
        pytest.param("gelu", pair_id, id=f"gelu-{pair_id}")
        for pair_id in OUTPUT_LOSS_PAIRS
        if pair_id != "softmax+se"
    ]
    return cases


@pytest.mark.parametrize(("activation", "pair_id"), _fd_cases())
def test_manual_hvp_matches_differences_of_the_manual_gradient(
    activation, pair_id, make_problem, x64
):
    output, loss = OUTPUT_LOSS_PAIRS[pair_id]
    net = nc.Network((3, 4, 4, 3), activation, output, loss, bias=True)
    params, x, y, v = _as(_problem(make_problem, net, seed=31), jnp.float64)

    def moved(sign):
        return jax.tree.map(lambda p, d: p + sign * FD_STEP * d, params, v)

    with jax.disable_jit():
        up = backprop.manual_grad(net, moved(1), x, y)
        down = backprop.manual_grad(net, moved(-1), x, y)
        manual = hvp.manual_hvp(net, params, x, y, v)
    central = jax.tree.map(lambda a, b: (a - b) / (2 * FD_STEP), up, down)
    bad = [(path, e) for path, e in leaf_errors(manual, central) if not e <= FD_RTOL]
    assert not bad, bad


# ----- the Hessian's algebra: symmetric, linear in v -----------------------------------------


ALGEBRA_NETWORKS = {
    "tanh-softmax+se": nc.Network((3, 4, 4, 3), "tanh", "softmax", "squared_error"),
    "silu-sigmoid+bce": nc.Network((3, 5, 2), "silu", "sigmoid", "binary_cross_entropy"),
    "elu-softmax+ce-nobias": nc.Network(
        (3, 4, 5, 3), "elu", "softmax", "softmax_cross_entropy", bias=False
    ),
}


@pytest.mark.parametrize("name", list(ALGEBRA_NETWORKS))
def test_hvp_is_symmetric(name, make_problem, x64):
    """⟨u, H v⟩ = ⟨v, H u⟩: the Hessian is symmetric, though the R-pass never forms it."""
    net = ALGEBRA_NETWORKS[name]
    params, x, y, u = _as(_problem(make_problem, net, seed=5), jnp.float64)
    v = _as(_problem(make_problem, net, seed=6)[3], jnp.float64)
    h_u, h_v = net.manual_hvp(params, x, y, u), net.manual_hvp(params, x, y, v)
    left, right = _dot(u, h_v), _dot(v, h_u)
    scale = max(_abs_dot(u, h_v), _abs_dot(v, h_u))
    assert abs(left - right) <= ROUNDOFF_ULPS * EPS64 * scale, (left, right)
    assert abs(left) >= 1e-3 * scale  # not a cancelled sum that any answer would match


@pytest.mark.parametrize("name", list(ALGEBRA_NETWORKS))
def test_hvp_is_linear_in_the_direction(name, make_problem, x64):
    net = ALGEBRA_NETWORKS[name]
    params, x, y, u = _as(_problem(make_problem, net, seed=7), jnp.float64)
    w = _as(_problem(make_problem, net, seed=8)[3], jnp.float64)
    alpha, beta = 0.75, -2.5
    combined = jax.tree.map(lambda p, q: alpha * p + beta * q, u, w)
    got = net.manual_hvp(params, x, y, combined)
    h_u, h_w = net.manual_hvp(params, x, y, u), net.manual_hvp(params, x, y, w)
    expected = jax.tree.map(lambda p, q: alpha * p + beta * q, h_u, h_w)
    assert_close(got, expected, jnp.float64)
    # Scaling v scales H v, and the zero direction gives exactly zero.
    zero = net.manual_hvp(params, x, y, jax.tree.map(jnp.zeros_like, u))
    assert not any(np.asarray(leaf).any() for leaf in jax.tree.leaves(zero))


# ----- the manual path uses no autodiff --------------------------------------------------------


AUTODIFF_ENTRY_POINTS = ("grad", "value_and_grad", "jvp", "vjp", "linearize", "hessian", "jacfwd")


def test_manual_hvp_calls_no_autodiff(monkeypatch, make_problem, x64):
    """Every JAX differentiation entry point raises; the manual HVP still runs (traced anew)."""
    net = nc.Network((3, 4, 4, 3), "gelu", "softmax", "squared_error")
    problem = _as(_problem(make_problem, net, seed=9), jnp.float64)
    expected = autodiff.autodiff_hvp(net, *problem)

    def forbidden(*args, **kwargs):
        raise AssertionError("autodiff called on the manual path")

    for name in AUTODIFF_ENTRY_POINTS:
        monkeypatch.setattr(jax, name, forbidden)
    with jax.disable_jit():
        got = hvp.manual_hvp(net, *problem)
    assert_close(got, expected, jnp.float64)


# ----- compiled once ------------------------------------------------------------------------


def test_manual_hvp_compiles_once_per_shape(make_problem):
    net = nc.Network((3, 9, 2), "silu", "softmax", "softmax_cross_entropy")
    params, x, y, v = _as(_problem(make_problem, net, batch=13, seed=3), jnp.float32)
    cache = hvp.manual_hvp_jit._cache_size
    before = cache()
    jax.block_until_ready(net.manual_hvp(params, x, y, v))
    assert cache() == before + 1
    jax.block_until_ready(net.manual_hvp(params, x, y, params))
    assert cache() == before + 1, "a second call with the same shapes recompiled"
    twin = nc.Network((3, 9, 2), "silu", "softmax", "softmax_cross_entropy")
    jax.block_until_ready(twin.manual_hvp(params, x, y, v))
    assert cache() == before + 1, "an equal Network did not reuse the compiled program"
    jax.block_until_ready(net.manual_hvp(params, x[:7], y[:7], v))
    assert cache() == before + 2


def test_autodiff_hvp_compiles_once_per_shape(make_problem):
    net = nc.Network((3, 7, 2), "gelu", "sigmoid", "binary_cross_entropy")
    params, x, y, v = _as(_problem(make_problem, net, batch=11, seed=2), jnp.float32)
    cache = autodiff.autodiff_hvp_jit._cache_size
    before = cache()
    jax.block_until_ready(net.autodiff_hvp(params, x, y, v))
    jax.block_until_ready(net.autodiff_hvp(params, x, y, v))
    assert cache() == before + 1
    jax.block_until_ready(net.autodiff_hvp(params, x[:5], y[:5], v))
    assert cache() == before + 2


def test_manual_hvp_runs_in_bfloat16(make_problem, x64):
    net = nc.Network((4, 8, 8, 2), "tanh", "sigmoid", "binary_cross_entropy")
    problem = _problem(make_problem, net, batch=8, seed=5)
    got = net.manual_hvp(*_as(problem, jnp.bfloat16))
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(got))
    truth = net.autodiff_hvp(*_as(problem, jnp.float64))
    # bfloat16 (eps = 2^-7): the inputs' rounding alone moves each entry by a few eps, and
    # the R-pass adds ~20 roundings per layer; 16 eps (12%) bounds that, a missing term is O(1).
    assert_close(got, truth, jnp.bfloat16, ulps=16)


# ----- bad directions, refused before anything is traced -------------------------------------


def _float32_problem():
    net = nc.Network((3, 4, 2), "tanh", "identity")
    params = net.init(0)
    rng = np.random.default_rng(0)
    return net, params, rng.normal(size=(5, 3)), rng.normal(size=(5, 2))


def _replace(tree, layer, name, value):
    copy = [dict(weights) for weights in tree]
    if value is None:
        del copy[layer][name]
    else:
        copy[layer][name] = value
    return copy


BAD_DIRECTIONS = {
    "not-a-list": (
        lambda p: {"W": p[0]["W"]},
        TypeError,
        r"v must be a list of per-layer dicts, got dict",
    ),
    "too-few-layers": (
        lambda p: p[:1],
        ValueError,
        r"v has 1 layers but the network sizes=\(3, 4, 2\) have 2",
    ),
    "missing-b": (
        lambda p: _replace(p, 1, "b", None),
        ValueError,
        r"v\[1\] has keys \['W'\], expected \['W', 'b'\]",
    ),
    "wrong-shape": (
        lambda p: _replace(p, 0, "W", p[0]["W"].T),
        ValueError,
        r'v\[0\]\["W"\] \(W_1\) has shape \(3, 4\), expected \(4, 3\)',
    ),
    "integer-leaf": (
        lambda p: _replace(p, 1, "b", jnp.zeros((2,), jnp.int32)),
        TypeError,
        r'v\[1\]\["b"\] \(b_2\) must be floating point, got int32',
    ),
    "other-dtype": (
        lambda p: jax.tree.map(lambda a: a.astype(jnp.bfloat16), p),
        ValueError,
        r"v is bfloat16 but params are float32: the direction must have the parameters' dtype",
    ),
    "float64-without-x64": (
        lambda p: jax.tree.map(lambda a: np.asarray(a, np.float64), p),
        ValueError,
        r'v\[0\]\["W"\] \(W_1\) is float64 but JAX runs in 32-bit mode; enable it',
    ),
}


@pytest.mark.parametrize("method", ["manual_hvp", "autodiff_hvp"])
@pytest.mark.parametrize("case", list(BAD_DIRECTIONS))
def test_bad_direction_is_refused_before_tracing(case, method):
    net, params, x, y = _float32_problem()
    corrupt, error, match = BAD_DIRECTIONS[case]
    compiled = (hvp.manual_hvp_jit._cache_size(), autodiff.autodiff_hvp_jit._cache_size())
    with pytest.raises(error, match=match):
        getattr(net, method)(params, x, y, corrupt(params))
    assert compiled == (hvp.manual_hvp_jit._cache_size(), autodiff.autodiff_hvp_jit._cache_size())


# ----- verify(order=2): the R-operator judged by the verifier -------------------------------


def _verify_problem():
    net = nc.Network([3, 5, 5, 2], activation="tanh", loss="squared_error")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    return net, net.init(0), x, y


def _hvp_layer(row) -> int:
    # "H·v1 W_2" -> 2
    return int(row.name.rsplit("_", 1)[1])


def test_verify_order_2_passes_the_manual_hvp_and_adds_its_rows():
    net, params, x, y = _verify_problem()
    first = nc.verify(net, params, x, y)
    second = nc.verify(net, params, x, y, order=2)
    assert second.ok, str(second)
    hvp_rows = [row for row in second.rows if row.kind == "hvp"]
    assert [row.name for row in hvp_rows] == [
        f"H·v{k} {kind}_{layer}" for k in (1, 2) for layer in (1, 2, 3) for kind in ("W", "b")
    ]
    assert [row.name for row in second.rows[: len(first.rows)]] == [r.name for r in first.rows]
    # The formula part ran: the manual R-operator is dtype-generic.
    assert all(row.formula is not None for row in hvp_rows)


@pytest.mark.parametrize("name", sorted(mutants.HVP_MUTANTS))
def test_verify_order_2_catches_every_planted_hvp_bug_at_its_layer(name):
    net, params, x, y = _verify_problem()
    mutant = mutants.HVP_MUTANTS[name]
    assert mutant.applies(net, x.shape[0])
    verdict = nc.verify(net, params, x, y, order=2, hvp_fn=mutant.hvp)
    assert not verdict.ok
    assert all(row.ok for row in verdict.rows if row.kind != "hvp")  # first order untouched
    bad = [row for row in verdict.rows if row.kind == "hvp" and not row.ok]
    assert bad and all(row.status == "wrong_formula" for row in bad), str(verdict)
    assert max(_hvp_layer(row) for row in bad) == mutant.expected_layer(net)


def test_verify_order_2_refuses_bad_arguments():
    net, params, x, y = _verify_problem()
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        nc.verify(net, params, x, y, order=3)
    with pytest.raises(TypeError, match="hvp_fn"):
        nc.verify(net, params, x, y, order=2, hvp_fn="manual")
    wrong_shape = lambda net, params, x, y, v: v[:1]  # noqa: E731
    verdict = nc.verify(net, params, x, y, order=2, hvp_fn=wrong_shape)
    assert not verdict.ok and "second order not checked" in verdict.rows[-1].why
