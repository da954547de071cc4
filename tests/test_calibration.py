"""The verifier's calibration, pinned from both sides, with the default ``K`` and ``T``.

* **No false alarm** (``K`` or ``T`` too small): a corpus of correct gradients per dtype,
  the manual backprop on the suite's networks (activations, losses, depths 1-4, cancelling
  output sums such as ``a - y`` and ``diag(s) - s sᵀ``) and hand-written pytree gradients
  (tiny values, leaves of scales 10^12 apart, per-example gradients averaged), must pass.
* **Power** (``K`` or ``T`` too large): one layer's gradient, or its median-sized element,
  scaled by ``1 + ε`` must be caught at the ``ε`` stated per dtype, by the whole verdict
  and by the precision part alone.

The constants are never named here: every judgement uses the verifier's defaults, read
from ``netcheck.verifier.tolerance`` when it is called. Setting ``NOISE_MULTIPLE`` to 2 or
``TIE_MULTIPLE`` to 0.4 there fails the first group of tests; 80 or 40 fails the second.

Cost: every network corpus is one compiled program per (spec, dtype) over many seeds
(``netcheck.bench.suite.run_group``), the power one compiled program per dtype
(``netcheck.bench.suite.detection_power``); seeds are fixed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.bench import suite
from netcheck.verifier import Verdict, check_gradient

SEEDS = 32
"""Seeds per network spec: one compiled program serves them all."""

_SPECS = suite.default_cases()[:: suite.SUITE_SEEDS]
"""The default suite's 27 specs (every hidden activation x loss pair), by index."""

NETWORK_CORPUS = {
    "float64": 17,  # silu, softmax output, squared error, 3-6-6-3, batch 12, no bias
    "float32": 1,  # sigmoid, sigmoid output, binary cross-entropy, 3-8-1, batch 16
    "bfloat16": 4,  # leaky relu, sigmoid output, binary cross-entropy, 2-4-3, batch 3
    "float16": 7,  # gelu, sigmoid output, binary cross-entropy, 5-8-1, batch 16, no bias
}
"""Per dtype, the default-suite spec run in that dtype (an index into ``_SPECS``).

Chosen from a sweep of all 27 specs x 4 dtypes x 32 seeds (3456 correct cases, witness
off) as cases near the edge: the largest ratio distance / tolerance over their 32 seeds
is 0.96, 0.28, 0.38 and 0.29, and ``K = 2`` or ``T = 0.4`` raises alarms on the first
three. A compiled group costs seconds, hence one spec per dtype."""


def _corpus_cases(index: int, dtype: str) -> list[suite.Case]:
    spec = _SPECS[index]
    return [dataclasses.replace(spec, dtype=dtype, seed=spec.seed + s) for s in range(SEEDS)]


def _failures(verdicts: list[Verdict], cases: list[suite.Case]) -> list[str]:
    return [f"{case.id}: {v.reason}" for case, v in zip(cases, verdicts, strict=True) if not v.ok]


@pytest.mark.parametrize("dtype", suite.DTYPES)
def test_correct_backprop_raises_no_alarm_on_the_network_corpus(dtype):
    cases = _corpus_cases(NETWORK_CORPUS[dtype], dtype)
    verdicts = suite.run_group(cases, witness=False)[0]
    assert not _failures(verdicts, cases)


# Correct gradients the default constants once failed (found by the sweep above), before
# δ^ℓ and the W, b built from it were judged against the δ recursion's summed terms.
FORMER_FALSE_ALARMS = [
    # The default suite's own case silu-softmax-squared_error-3x6x6x3-b12-nobias-float32-
    # s17001: W_3's formula part, max norm, 3.61e-16 > 3.5e-16.
    (17, "float32", 17001),
    # elu-softmax-squared_error-4x5x7x3-b1-bias: δ^3 = G(L)(a - y) with G(L) = diag(s) - s sᵀ,
    # a cancelling sum judged against |t| rather than its terms; 1.67e-16 > 5.32e-17.
    (14, "float32", 14015),
]


@pytest.mark.parametrize(("index", "dtype", "seed"), FORMER_FALSE_ALARMS)
def test_cancelling_deltas_raise_no_alarm(index, dtype, seed):
    cases = [dataclasses.replace(_SPECS[index], dtype=dtype, seed=seed)]
    verdicts = suite.run_group(cases, witness=False)[0]
    assert not _failures(verdicts, cases)


# ----- hand-written pytree gradients --------------------------------------------------


def _scales(dtype: str) -> tuple[float, float]:
    """``(big, tiny)`` for a dtype: leaves ``big`` and ``1/big`` apart from 1 (kept below
    float16's overflow), and a gradient as small as ``√tiny`` of the dtype (at least
    float32's, which float64's floor is measured in)."""
    big = 1e2 if dtype == "float16" else 1e6
    tiny = max(jnp.finfo(dtype).tiny, jnp.finfo(jnp.float32).tiny)
    return big, float(np.sqrt(tiny))


def _pytree_problem(dtype: str):
    """A loss over leaves of very different scales and its gradient, written by hand."""
    big, tiny = _scales(dtype)

    def loss(p, x):
        return (
            tiny * jnp.sum(jnp.tanh(x @ p["tiny"]))
            + big * jnp.sum(jnp.tanh(x @ p["large"]))
            + jnp.sum(jnp.tanh(x @ p["small"])) / big
            + jnp.mean(jnp.tanh(x @ p["mlp"]) ** 2)
        )

    def grad(p, x):
        def tanh_sum_grad(w):  # d/dw Σ tanh(xw) = xᵀ (1 - t²), with 1 - t² = (1 - t)(1 + t)
            t = jnp.tanh(x @ w)
            return x.T @ ((1 - t) * (1 + t))

        def per_example(xi):  # d/dw tanh(xi w)² for one example: xi ⊗ 2 t (1 - t²)
            t = jnp.tanh(xi @ p["mlp"])
            return jnp.outer(xi, 2 * t * (1 - t * t))

        outputs = p["mlp"].shape[1]
        return {
            "tiny": tiny * tanh_sum_grad(p["tiny"]),
            "large": big * tanh_sum_grad(p["large"]),
            "small": tanh_sum_grad(p["small"]) / big,
            "mlp": jnp.mean(jax.vmap(per_example)(x), axis=0) / outputs,
        }

    return loss, grad


def _pytree_point(dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    params = {
        "tiny": rng.normal(size=(4, 3)),
        "large": rng.normal(size=(4, 3)),
        "small": rng.normal(size=(4, 3)),
        "mlp": rng.normal(size=(4, 5)) / 2,
    }
    x = rng.normal(size=(6, 4))
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), (params, x))


@pytest.mark.parametrize("dtype", suite.DTYPES)
def test_hand_written_pytree_gradients_raise_no_alarm(dtype):
    loss, grad = _pytree_problem(dtype)
    failures = []
    with jax.enable_x64(dtype == "float64"):
        for seed in range(SEEDS):  # one compiled program: new values do not recompile
            params, x = _pytree_point(dtype, seed)
            verdict = check_gradient(loss, grad, params, x, witness=False)
            failures += [f"seed {seed}: {verdict.reason}"] * (not verdict.ok)
    assert not failures


# ----- power: planted errors ------------------------------------------------------------

STATED_POWER = {
    #          (layer, both) (layer, precision) (element, both) (element, precision)
    "float64": (3.2e-15, 3.2e-15, 3.2e-14, 3.2e-14),
    "float32": (3.2e-15, 3.2e-6, 3.2e-14, 3.2e-5),
    "bfloat16": (3.2e-15, 0.1, 3.2e-14, 1.0),
    "float16": (3.2e-15, 0.01, 3.2e-14, 0.1),
}
"""The ``ε`` caught per dtype, for (mutation, mode) in the order of the columns.

Measured on the power case below: each is the smallest step of the half-decade grid
``netcheck.bench.suite.EPSILONS`` caught with the default constants (``K = 8, T = 4``), by
``detection_power(..., constants=Constants(K, T))`` at ``(8, 4)``, ``(80, 4)`` and
``(8, 40)``. With ``K = 80`` or ``T = 40`` every one of them is missed (the smallest caught
moves up one or two steps, and bfloat16's single element by the precision part alone is
not caught at any ``ε ≤ 1``), so these ε sit between what the default catches and what a
ten-times blinder rule misses. They are within the goals the verifier states: ``1e-9``
through the formula part in every dtype, ``1e-4`` for one float32 element by precision."""

_COLUMNS = (
    ("layer", "both"),
    ("layer", "precision"),
    ("element", "both"),
    ("element", "precision"),
)


@pytest.mark.parametrize("dtype", suite.DTYPES)
def test_planted_errors_are_caught_at_the_stated_epsilon_and_above(dtype):
    # One power case (the first power spec, a 3-8-2 tanh network, seed 100000) in one
    # compiled program: the correct gradient (ε = 0) and every ε of the grid, both
    # mutations, judged by the whole verdict and by the precision part alone.
    record = suite.detection_power((dtype,), n_cases=1, check_grads_cases=0, progress=False)
    result = record["dtypes"][0]
    assert result["kinks"] == 0  # the verifier judges this case (no relu at exactly 0)
    assert result["false_alarms"] == 0 and result["false_alarms_precision"] == 0
    epsilons = np.asarray(record["epsilons"])
    for (mutation, mode), stated in zip(_COLUMNS, STATED_POWER[dtype], strict=True):
        detected = np.asarray(result["mutations"][mutation][mode]["detected_fraction"])
        at_or_above = epsilons >= stated * (1 - 0.02)  # the grid's 10^-k/2 vs 2 digits
        assert at_or_above.any()
        assert (detected[at_or_above] == 1).all(), (mutation, mode, stated)


@pytest.mark.parametrize("w", [0.8, 3.0])
def test_a_zero_gradient_computed_by_cancellation_at_more_points(w):
    # test_check_gradient's regression (sin² + cos² = 1, autodiff and the truth exactly 0,
    # the candidate 2 sin cos - sin 2w an ulp of its terms away) at two more points of a
    # grid of 61 in [-3, 3], where bfloat16 once failed the formula part (ratio 3.0 and
    # 3.7, when the floor was the candidate's own rounding); the tolerance is now the
    # rounding of autodiff's own terms (netcheck.verifier.term_magnitudes).
    def loss(w, x):
        return jnp.sum(jnp.sin(w * x) ** 2 + jnp.cos(w * x) ** 2)

    def grad(w, x):
        return jnp.sum(2 * jnp.sin(w * x) * jnp.cos(w * x) * x - jnp.sin(2 * w * x) * x)

    x = jnp.linspace(0.1, 3.0, 7).astype(jnp.bfloat16)
    verdict = check_gradient(loss, grad, jnp.asarray(w, jnp.bfloat16), x, witness=False)
    assert verdict.rows[0].precision.worst_truth == 0
    assert verdict.ok, str(verdict)
