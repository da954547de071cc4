"""Tests of netcheck.bench: FLOP counts, the roofline's products, the slow reference
methods, the timing statistics, the goals, and the records' environment fields."""

from __future__ import annotations

import itertools
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from netcheck.bench import step, timing

TINY = step.Grid(
    "test",
    widths=(8,),
    depths=(2,),
    batches=(3,),
    rounds=3,
    min_measure_s=0.0,
    budget_s=0.0,
)


def _hand_flops(sizes, batch):
    # Forward Z = A Wᵀ and weight gradient Δᵀ A for every layer, plus Δ W for layers >= 2;
    # each (n x k) @ (k x m) product is n*k*m multiply-adds = 2 n k m FLOPs.
    total = 0
    for layer in range(1, len(sizes)):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        total += 2 * batch * n_in * n_out  # forward
        total += 2 * n_out * batch * n_in  # ∂W_ℓ = Δᵀ A
        if layer >= 2:
            total += 2 * batch * n_out * n_in  # Δ^{ℓ-1} = Δ^ℓ W_ℓ
    return total


def test_matmul_flops_equals_a_hand_count():
    # (3, 5, 2), batch 4: layer 1: 2*4*3*5 * 2 = 240; layer 2: 2*4*5*2 * 3 = 240.
    assert step.matmul_flops((3, 5, 2), 4) == 480
    assert step.matmul_flops((7, 4, 6, 3), 5) == _hand_flops((7, 4, 6, 3), 5)
    assert step.Shape(16, 3, 2).flops == _hand_flops((16,) * 4, 2)


@pytest.mark.parametrize("sizes", [(3, 5, 2), (4, 4, 4, 4), (6, 1)], ids=str)
def test_roofline_runs_exactly_the_counted_products(sizes):
    # XLA's own cost analysis of the compiled roofline is the independent count.
    key = jax.random.PRNGKey(0)
    weights = [
        jax.random.normal(jax.random.fold_in(key, i), (n_out, n_in))
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
    ]
    x = jnp.ones((4, sizes[0]))
    cost = step._roofline_jit.lower(weights, x).compile().cost_analysis()
    assert cost["flops"] == step.matmul_flops(sizes, 4)


def test_roofline_products_match_numpy():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(5, 3)), rng.normal(size=(2, 5))]
    x = rng.normal(size=(4, 3))
    a1 = x @ weights[0].T
    a2 = a1 @ weights[1].T
    expected = [(a2 @ weights[1]).T @ x, a2.T @ a1]
    got = step.roofline_products(
        [jnp.asarray(w, jnp.float32) for w in weights], jnp.asarray(x, jnp.float32)
    )
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-5, atol=1e-5)


def test_numpy_loop_matches_float64_autodiff(x64):
    shape = step.Shape(width=5, depth=3, batch=4, dtype="float64")
    net = shape.network()
    params = net.init(jax.random.PRNGKey(1), dtype=jnp.float64)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    grad_w, grad_b = step.numpy_loop_grad(
        [np.asarray(p["W"]) for p in params], [np.asarray(p["b"]) for p in params], x, y
    )
    truth = jax.grad(net.mean_loss_unchecked)(params, jnp.asarray(x), jnp.asarray(y))
    for layer, reference in enumerate(truth):
        np.testing.assert_allclose(grad_w[layer], reference["W"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grad_b[layer], reference["b"], rtol=1e-12, atol=1e-14)


def test_finite_differences_approximate_float64_autodiff(x64):
    net = step.Shape(width=3, depth=2, batch=2, dtype="float64").network()
    params = net.init(jax.random.PRNGKey(2), dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 3), jnp.float64)
    y = jax.random.normal(jax.random.PRNGKey(4), (2, 3), jnp.float64)
    approx = step.finite_difference_grad(net, params, x, y, step=1e-5)
    truth = jax.grad(net.mean_loss_unchecked)(params, x, y)
    # Central differences: truncation error O(h²) ~ 1e-10 here, round-off ~ eps/h ~ 1e-11.
    for a, t in zip(jax.tree.leaves(approx), jax.tree.leaves(truth), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(t), rtol=1e-7, atol=1e-8)


def test_summarize_matches_numpy_percentiles():
    times = [0.5, 0.1, 0.4, 0.2, 0.9, 0.3]
    summary = timing.summarize(times)
    assert summary["median_s"] == pytest.approx(np.median(times))
    assert summary["q25_s"] == pytest.approx(np.percentile(times, 25))
    assert summary["q75_s"] == pytest.approx(np.percentile(times, 75))
    assert (summary["min_s"], summary["max_s"]) == (0.1, 0.9)


def test_time_interleaved_alternates_in_varying_order():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    result = timing.time_interleaved(calls, rounds=12, min_measure_s=0.0)
    assert all(len(result[name]["times_s"]) == 12 for name in calls)
    timed = order[12:]  # the first twelve calls are the warm-up, four per method
    rounds = [timed[i : i + 3] for i in range(0, len(timed), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    # Every call is measured right after each of the others at some point (a rotation
    # would give each call the same predecessor in every round).
    predecessors = {name: set() for name in calls}
    for before, after in itertools.pairwise(timed):
        predecessors[after].add(before)
    assert all(set(calls) - {name} <= predecessors[name] for name in calls)


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Load doubles in round 2 for both methods; the paired ratio is unaffected by it.
    assert timing.paired_ratios([1.0, 2.2, 1.1], [1.0, 2.0, 1.0]) == pytest.approx([1.0, 1.1, 1.1])
    assert timing.paired_ratio([1.0, 2.2, 1.1], [1.0, 2.0, 1.0]) == pytest.approx(1.1)


def test_median_interval_of_identical_rounds_is_that_value():
    assert timing.median_interval([[1.25] * 7]) == pytest.approx((1.25, 1.25))
    assert timing.median_interval([[1.0] * 5, [3.0] * 5, [2.0] * 9]) == pytest.approx((2.0, 2.0))


def test_median_interval_matches_the_normal_approximation():
    # Independent reference: the median of n draws of N(μ, σ²) has standard error
    # sqrt(π/2) σ / sqrt(n) for large n, so its 95% interval is ±1.96 of that.
    rng = np.random.default_rng(3)
    sigma, n = 0.05, 400
    values = 1.0 + rng.normal(0.0, sigma, n)
    low, high = timing.median_interval([values])
    half_width = 1.96 * np.sqrt(np.pi / 2) * sigma / np.sqrt(n)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.2)
    assert low < np.median(values) < high


def test_median_interval_over_groups_narrows_like_one_over_sqrt_groups():
    # The median over G shapes of their medians: with G equal shapes its spread shrinks
    # about as 1/sqrt(G) (the per-shape medians are independent and alike).
    rng = np.random.default_rng(4)
    one = [1.0 + rng.normal(0.0, 0.05, 9) for _ in range(200)]
    widths_one = [np.diff(timing.median_interval([g], resamples=1000))[0] for g in one[:40]]
    groups = [one[i * 16 : (i + 1) * 16] for i in range(10)]
    widths_16 = [np.diff(timing.median_interval(g, resamples=1000))[0] for g in groups]
    assert np.mean(widths_16) / np.mean(widths_one) == pytest.approx(1 / 4, rel=0.35)


def test_median_interval_refuses_empty_input():
    with pytest.raises(ValueError, match="at least one group"):
        timing.median_interval([])
    with pytest.raises(ValueError, match="a value in each"):
        timing.median_interval([[1.0], []])


def test_time_interleaved_shares_repeats_within_the_group():
    calls = {"fast": lambda: None, "slow": lambda: sum(range(20_000)), "alone": lambda: None}
    result = timing.time_interleaved(calls, rounds=1, min_measure_s=0.01, shared=("fast", "slow"))
    assert result["fast"]["repeats"] == result["slow"]["repeats"]
    assert result["alone"]["repeats"] > result["slow"]["repeats"]


def test_time_interleaved_budget_adds_rounds_up_to_the_cap():
    result = timing.time_interleaved(
        {"a": lambda: None}, rounds=2, min_measure_s=0.0, budget_s=10.0, max_rounds=6
    )
    assert len(result["a"]["times_s"]) == 6


def test_applicable_methods_keep_slow_methods_to_small_shapes():
    assert step.applicable_methods(step.Shape(64, 2, 1), step.METHODS) == list(step.METHODS)
    large = step.applicable_methods(step.Shape(1024, 2, 32), step.METHODS)
    assert large == ["manual", "autodiff", "roofline"]
    assert "numpy_loop" not in step.applicable_methods(
        step.Shape(8, 2, 1, "bfloat16"), step.METHODS
    )


@pytest.fixture(scope="module")
def tiny_record():
    return step.run_bench(TINY, matmul_precision="highest")


def test_bench_record_holds_environment_and_consistent_numbers(tiny_record):
    assert tiny_record["schema"] == step.SCHEMA
    env = tiny_record["environment"]
    assert env["jax_version"] == jax.__version__
    assert env["platform"] == jax.devices()[0].platform
    assert env["matmul_precision"] == "highest"
    (row,) = tiny_record["results"]
    for field in ("device", "platform", "jax_version", "matmul_precision"):
        assert row[field] == env[field]
    assert row["flops"] == _hand_flops((8, 8, 8), 3)
    assert set(row["methods"]) == set(step.METHODS)
    roofline = np.array(row["methods"]["roofline"]["times_s"])
    slow_roofline = np.array(row["slow_group_roofline_times_s"])
    for name, stats in row["methods"].items():
        assert len(stats["times_s"]) >= 3
        assert stats["min_s"] <= stats["q25_s"] <= stats["median_s"] <= stats["q75_s"]
        assert stats["q75_s"] <= stats["max_s"]
        assert stats["median_s"] == pytest.approx(statistics.median(stats["times_s"]))
        assert stats["flops_per_s"] == pytest.approx(row["flops"] / stats["median_s"])
        # Paired: the median over rounds of this round's time over the roofline's.
        reference = roofline if name in ("manual", "autodiff", "roofline") else slow_roofline
        paired = np.median(np.array(stats["times_s"]) / reference)
        assert stats["time_over_roofline"] == pytest.approx(paired)
        low, high = stats["time_over_roofline_interval"]
        assert low <= stats["time_over_roofline"] <= high
    manual, auto = row["methods"]["manual"], row["methods"]["autodiff"]
    paired = np.median(np.array(manual["times_s"]) / np.array(auto["times_s"]))
    assert row["manual_over_autodiff"] == pytest.approx(paired)
    low, high = row["manual_over_autodiff_interval"]
    assert low <= paired <= high
    per_round = np.array(manual["times_s"]) / np.array(auto["times_s"])
    assert per_round.min() <= low and high <= per_round.max()
    for goal in tiny_record["goals"]:
        assert goal["met"] is recomputed_verdict(goal)
    assert manual["repeats"] == auto["repeats"] == row["methods"]["roofline"]["repeats"]
    assert manual["compile_s"] > 0
    if manual["temp_bytes"] is not None:
        expected = manual["temp_bytes"] - auto["temp_bytes"]
        assert row["manual_temp_bytes_minus_autodiff"] == expected


def test_compiled_temp_bytes_come_from_memory_analysis(tiny_record):
    (row,) = tiny_record["results"]
    net = step.Shape(8, 2, 3).network()
    params = net.init(jax.random.PRNGKey(0))
    x = jnp.ones((3, 8))
    from netcheck.nn.backprop import manual_grad_jit

    compiled = manual_grad_jit.lower(net, params, x, x).compile()
    assert row["methods"]["manual"]["xla_flops"] == compiled.cost_analysis()["flops"]
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("no memory analysis on this backend")
    assert row["methods"]["manual"]["temp_bytes"] == analysis.temp_size_in_bytes


def _row(manual, autodiff, roofline, flops, temp_diff=0, dtype="float32"):
    # A bench row in run_bench's layout, from per-round times (seconds).
    manual, autodiff, roofline = (np.asarray(t, dtype=float) for t in (manual, autodiff, roofline))
    methods = {
        "manual": {"times_s": list(manual)},
        "autodiff": {"times_s": list(autodiff)},
        "roofline": {"times_s": list(roofline)},
    }
    return {
        "width": flops,
        "depth": 2,
        "batch": 1,
        "dtype": dtype,
        "flops": flops,
        "methods": methods,
        "manual_over_autodiff": float(np.median(manual / autodiff)),
        "manual_temp_bytes_minus_autodiff": temp_diff,
    }


def _noisy(rng, ratio, rounds=9, noise=0.02):
    # Per-round times of two programs whose true time ratio is `ratio`, under common load
    # (which the pairing cancels) and independent noise.
    load = rng.uniform(1.0, 3.0, rounds)
    reference = load * np.exp(rng.normal(0.0, noise, rounds))
    return load * ratio * np.exp(rng.normal(0.0, noise, rounds)), reference


def recomputed_verdict(goal):
    # The verdict from the goal's own numbers: met unless the interval lies above the
    # target; an untimed goal on its measured value.
    if goal["measured"] is None:
        return None
    if goal["interval"] is None:
        return goal["measured"] <= goal["target_value"]
    low, high = goal["interval"]
    assert low <= goal["measured"] <= high
    return low <= goal["target_value"]


def test_performance_goals_on_a_hand_made_record():
    rng = np.random.default_rng(0)
    rows = []
    for flops, ratio, over in ((10, 0.98, 2.0), (30, 1.0, 1.05), (20, 0.97, 3.0)):
        manual, auto = _noisy(rng, ratio)
        rows.append(_row(manual, auto, manual / over, flops, temp_diff=0))
    goals = {g["name"]: g for g in step.performance_goals({"results": rows})}
    assert all(g["met"] is recomputed_verdict(g) for g in goals.values())
    median = goals["manual / jax.grad step time, median over shapes"]
    per_shape = [
        np.median(np.divide(r["methods"]["manual"]["times_s"], r["methods"]["autodiff"]["times_s"]))
        for r in rows
    ]
    assert median["measured"] == pytest.approx(np.median(per_shape))
    assert median["met"] is True and median["target_value"] == 1.0
    roof = goals["manual step time / roofline, largest shape"]
    assert roof["measured"] == pytest.approx(1.05)  # the 30-FLOP row: manual / roofline
    assert roof["where"].startswith("w30 ") and roof["met"] is True
    memory = goals["manual - jax.grad compiled temporary bytes, worst shape"]
    assert memory["measured"] == 0 and memory["met"] is True and memory["interval"] is None

    # Manual 10-20% slower in every round, and more memory: every goal missed.
    rows = []
    for flops, ratio in ((10, 1.2), (30, 1.1)):
        manual, auto = _noisy(rng, ratio)
        rows.append(_row(manual, auto, manual / 1.3, flops, temp_diff=16))
    goals = step.performance_goals({"results": rows})
    assert [g["met"] for g in goals] == [False, False, False, False]
    assert all(g["met"] is recomputed_verdict(g) for g in goals)
    assert "it does: manual is slower" in goals[0]["detail"]

    # Two dtypes: the roofline goal is judged at each dtype's largest shape.
    manual, auto = _noisy(rng, 1.0)
    rows = [
        _row(manual, auto, manual / 1.1, 10),
        _row(manual, auto, manual / 1.3, 10, dtype="bfloat16"),
    ]
    goals = {g["name"]: g for g in step.performance_goals({"results": rows})}
    assert goals["manual step time / roofline, largest float32 shape"]["met"] is True
    assert goals["manual step time / roofline, largest bfloat16 shape"]["met"] is False


def test_the_worst_shape_goal_is_judged_where_the_evidence_of_a_slowdown_is_strongest():
    # One shape has the highest median but a wide interval; another is tightly 8% slower.
    rng = np.random.default_rng(1)
    wide = _noisy(rng, 1.04, noise=0.2)
    tight = _noisy(rng, 1.08, noise=0.002)
    rows = [_row(*wide, wide[1], 10), _row(*tight, tight[1], 20)]
    worst = step.performance_goals({"results": rows})[1]
    assert worst["where"].startswith("w20 ")
    assert worst["measured"] == pytest.approx(np.median(tight[0] / tight[1]))
    assert worst["met"] is False and worst["met"] is recomputed_verdict(worst)


def test_equal_programs_meet_the_median_goal_however_their_medians_fall():
    # Two programs of the same speed: the median over shapes lands above 1.00 about half the
    # time, which a one-median verdict would call a miss; the interval does not.
    rng = np.random.default_rng(2)
    medians, met = [], []
    for _ in range(40):
        rows = []
        for flops in range(1, 7):
            manual, auto = _noisy(rng, 1.0)
            rows.append(_row(manual, auto, auto, flops))
        goal = step.performance_goals({"results": rows})[0]
        assert goal["met"] is recomputed_verdict(goal)
        medians.append(goal["measured"])
        met.append(goal["met"])
    assert 0.25 < np.mean(np.array(medians) > 1.0) < 0.75
    assert np.mean(met) >= 0.93
    assert any(m > 1.0 and ok for m, ok in zip(medians, met, strict=True))


def test_memory_goal_cannot_be_met_on_part_of_the_shapes():
    rng = np.random.default_rng(5)
    manual, auto = _noisy(rng, 1.0)
    rows = [_row(manual, auto, auto, 10, temp_diff=0), _row(manual, auto, auto, 20, temp_diff=None)]
    memory = step.performance_goals({"results": rows})[-1]
    assert memory["met"] is None and "only 1 of 2 shapes" in memory["detail"]
    rows[0]["manual_temp_bytes_minus_autodiff"] = 8
    assert step.performance_goals({"results": rows})[-1]["met"] is False


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"widths": ()}, ValueError, "widths is empty"),
        ({"widths": (0,)}, ValueError, "widths must be >= 1"),
        ({"depths": (2.5,)}, TypeError, "depths must be integers"),
        ({"dtypes": ("int8",)}, ValueError, "unknown dtype 'int8'"),
        ({"methods": ("magic",)}, ValueError, "unknown method 'magic'"),
        ({"rounds": 0}, ValueError, "rounds must be a positive integer"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_bad_grids_are_refused(kwargs, error, match):
    base = {"name": "bad", "widths": (8,), "depths": (2,), "batches": (1,)}
    with pytest.raises(error, match=match):
        step.Grid(**{**base, **kwargs})


def test_bad_run_bench_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown grid 'huge'"):
        step.run_bench("huge")
    with pytest.raises(TypeError, match="grid must be a Grid"):
        step.run_bench(3)
    with pytest.raises(ValueError, match="float64 needs 64-bit JAX"):
        step.run_bench(step.Grid("x", (8,), (2,), (2,), dtypes=("float64",)))
    with pytest.raises(ValueError, match="matmul_precision"):
        step.run_bench(TINY, matmul_precision="fastest")
    with pytest.raises(ValueError, match="exceeds max_flops"):
        step.Grid("x", (64,), (2,), (8,), max_flops=10).shapes()
