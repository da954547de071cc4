"""What the verifier costs, as multiples of one gradient: ``netcheck bench --verifier``.

For each MLP of a grid (depths 2-64, widths 64-2048, and the two models the verifier's
cost goals name), the same process times, interleaved round by round:

* ``grad64``: one jitted float64 ``jax.grad`` of the network's mean loss (the unit);
* ``check_gradient``: ``netcheck.check_gradient`` of the manual gradient (compiled)
  against the same loss, float32 parameters;
* ``verify``: ``netcheck.verify`` of the manual backprop, float32;
* ``check_grads``: ``jax.test_util.check_grads`` of a loss whose VJP is the manual
  gradient (reverse mode, its defaults), float32: the tool netcheck is compared with.

Each method's ratio to ``grad64`` is the median of the paired per-round ratios with its
95% bootstrap interval (``netcheck.bench.step.median_interval``). The first call of each
method on each model is timed too (``cold_s``: compilation included; later models reuse
what earlier ones compiled, as a user's second check would).

Goals (issue: a cost that stays a few gradients however large the model), on the two named
models: ``check_gradient ≤ 10x`` and ``verify ≤ 15x`` one float64 ``jax.grad``, warm; the
first call ``≤ max(5 s, 10x the first call of a jitted float64 jax.grad)``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from netcheck.bench.step import (
    _goal,
    environment,
    median_interval,
    paired_ratios,
    summarize,
    time_interleaved,
)
from netcheck.nn import Network, backprop
from netcheck.verifier import check_gradient, verify

SCHEMA = "netcheck.bench.verifier_cost/1"

METHODS = ("grad64", "check_gradient", "verify", "check_grads")
"""What is timed per model; ``grad64`` is the unit."""


@dataclass(frozen=True)
class Model:
    """One MLP of the grid: widths ``(n_0, ..., n_L)`` and a batch size.

    Attributes:
        sizes: layer widths (tanh hidden layers, a softmax + cross-entropy head).
        batch: examples per batch.
        goal: whether the cost goals are judged on this model.
    """

    sizes: tuple[int, ...]
    batch: int
    goal: bool = False

    @property
    def depth(self) -> int:
        """``L``: layers with weights."""
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        """Weights and biases."""
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def label(self) -> str:
        """``64x33 +10 n128`` style: the hidden width and depth, the head, the batch."""
        hidden = self.sizes[1:-1]
        width = f"{hidden[0]}" if len(set(hidden)) == 1 else "-".join(map(str, hidden))
        return f"{self.sizes[0]}-[{width}]x{len(hidden)}-{self.sizes[-1]} n{self.batch}"


GOAL_MODELS = (
    Model((64,) * 33 + (10,), 128, goal=True),  # depth 33, width 64: 66 leaves
    Model((1024, 2048, 2048, 10), 256, goal=True),  # 6.3M parameters
)
"""The two models the cost goals are judged on."""


def _grid(depths: Sequence[int], widths: Sequence[int], batch: int, cap: int) -> list[Model]:
    models = [
        Model((w,) * depth + (10,), batch)
        for depth in depths
        for w in widths
        if Model((w,) * depth + (10,), batch).n_params <= cap
    ]
    return models


GRIDS: dict[str, list[Model]] = {
    "quick": [Model((8, 16, 16, 3), 8), Model((8,) * 5 + (3,), 8)],
    "report": [*_grid((2, 8), (256,), 64, 2_000_000), GOAL_MODELS[0]],
    "default": [*_grid((2, 8, 32, 64), (64, 256, 1024, 2048), 128, 8_000_000), *GOAL_MODELS],
}
"""Model grids: ``quick`` (seconds, for tests), ``report`` (reduced, inside ``netcheck
report``), ``default`` (depths 2-64, widths 64-2048 up to 8M parameters, and the two goal
models)."""

CHECK_GRADIENT_GOAL = 10.0
VERIFY_GOAL = 15.0
COLD_GOAL = 10.0
COLD_FLOOR_S = 5.0


def _point(model: Model, seed: int = 0) -> tuple[Network, Any, np.ndarray, np.ndarray]:
    net = Network(model.sizes, "tanh", "softmax", "softmax_cross_entropy")
    params = net.init(jax.random.key(seed))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((model.batch, model.sizes[0])).astype(np.float32)
    y = np.eye(model.sizes[-1], dtype=np.float32)[rng.integers(0, model.sizes[-1], model.batch)]
    return net, params, x, y


def _check_grads_call(net: Network, params: Any, x: Any, y: Any) -> Callable[[], Any]:
    """``jax.test_util.check_grads`` of the loss whose VJP is the manual gradient."""
    from jax.test_util import check_grads

    loss = jax.jit(net.mean_loss_unchecked)
    grad = jax.jit(lambda p: backprop.manual_grad(net, p, x, y))

    @jax.custom_vjp
    def f(p: Any) -> Any:
        return loss(p, x, y)

    f.defvjp(
        lambda p: (loss(p, x, y), p),
        lambda p, g: (jax.tree_util.tree_map(lambda a: g * a, grad(p)),),
    )

    def call() -> bool:
        try:
            check_grads(f, (params,), order=1, modes=("rev",))
        except AssertionError:
            return False
        return True

    return call


def method_calls(model: Model) -> dict[str, Callable[[], Any]]:
    """The four timed calls of one model, ready to run (nothing compiled yet)."""
    net, params, x, y = _point(model)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    grad64 = jax.jit(jax.grad(net.mean_loss_unchecked))
    manual = jax.jit(lambda p, xx, yy: backprop.manual_grad(net, p, xx, yy))

    def unit() -> Any:
        with jax.enable_x64(True):
            return grad64(p64, x64, y64)

    return {
        "grad64": unit,
        "check_gradient": lambda: check_gradient(net.mean_loss_unchecked, manual, params, x, y).ok,
        "verify": lambda: verify(net, params, x, y).ok,
        "check_grads": _check_grads_call(net, params, x, y),
    }


def bench_model(model: Model, rounds: int = 5, min_measure_s: float = 0.0) -> dict[str, Any]:
    """Time one model: the first calls (cold), then interleaved warm rounds.

    Returns:
        A JSON-able row: ``sizes``, ``batch``, ``depth``, ``n_params``, ``leaves``,
        ``label``, ``goal``; ``cold_s`` per method; per method the timing summary and
        ``times_s``; ``ratios`` per method but ``grad64``: ``{"median", "interval"}`` of the
        paired per-round ratios to ``grad64``; ``ok``: each check's own verdict (all pass).
    """
    calls = method_calls(model)
    cold, ok = {}, {}
    for name, call in calls.items():
        start = time.perf_counter()
        result = jax.block_until_ready(call())
        cold[name] = time.perf_counter() - start
        if name != "grad64":
            ok[name] = bool(result)
    timings = time_interleaved(calls, rounds, min_measure_s)
    unit = timings["grad64"]["times_s"]
    ratios = {}
    for name in METHODS[1:]:
        paired = paired_ratios(timings[name]["times_s"], unit)
        ratios[name] = {
            "median": statistics.median(paired),
            "interval": list(median_interval([paired])),
        }
    return {
        "sizes": list(model.sizes),
        "batch": model.batch,
        "depth": model.depth,
        "n_params": model.n_params,
        "leaves": 2 * model.depth,
        "label": model.label(),
        "goal": model.goal,
        "cold_s": cold,
        "ok": ok,
        "methods": {
            name: {**summarize(t["times_s"]), "times_s": t["times_s"], "repeats": t["repeats"]}
            for name, t in timings.items()
        },
        "ratios": ratios,
    }


def run_verifier_bench(
    grid: str | Sequence[Model] = "default", rounds: int = 5, progress: bool = False
) -> dict[str, Any]:
    """Run the verifier-cost grid and judge the goals.

    Args:
        grid: a name from ``GRIDS`` or a list of ``Model``.
        rounds: interleaved warm rounds per model.
        progress: a tqdm bar on stderr when it is a terminal.

    Returns:
        ``{"schema", "grid", "environment", "started", "elapsed_s", "results": [rows],
        "goals": [...]}`` (goals as ``netcheck.bench.step.performance_goals`` writes them).
    """
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown verifier grid {grid!r}; known: {', '.join(GRIDS)}")
        name, models = grid, GRIDS[grid]
    else:
        name, models = "custom", list(grid)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    env = environment()
    bar = tqdm(
        models,
        desc="verifier cost",
        unit="model",
        disable=None if progress else True,
        file=sys.stderr,
    )
    rows = [bench_model(model, rounds) for model in bar]
    record = {
        "schema": SCHEMA,
        "grid": name,
        "environment": env,
        "started": started,
        "elapsed_s": time.perf_counter() - clock,
        "results": rows,
    }
    record["goals"] = verifier_goals(record)
    return record


def verifier_goals(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The cost goals on the goal models of a record (none if it has none).

    Warm ratios are judged by their 95% interval (met unless it lies entirely above the
    target); the first call by its one measurement against ``max(5 s, 10x)`` the first
    call of the jitted float64 ``jax.grad``.
    """
    goals = []
    for row in (r for r in record["results"] if r["goal"]):
        for method, target in (("check_gradient", CHECK_GRADIENT_GOAL), ("verify", VERIFY_GOAL)):
            ratio = row["ratios"][method]
            low, high = ratio["interval"]
            goals.append(
                _goal(
                    f"{method} / one float64 jax.grad, warm",
                    target,
                    ratio["median"],
                    [low, high],
                    low <= target,
                    row["label"],
                    f"median of paired per-round ratios, 95% interval {low:.3g} to {high:.3g}; "
                    f"met unless the interval lies entirely above {target:g}",
                    f"<= {target:g}",
                )
            )
            limit = max(COLD_FLOOR_S, COLD_GOAL * row["cold_s"]["grad64"])
            cold = row["cold_s"][method]
            goals.append(
                _goal(
                    f"{method}, first call (compilation included)",
                    limit,
                    cold,
                    None,
                    cold <= limit,
                    row["label"],
                    f"{cold:.3g} s against max({COLD_FLOOR_S:g} s, {COLD_GOAL:g} x the first "
                    f"jitted float64 jax.grad, {row['cold_s']['grad64']:.3g} s)",
                    f"<= {limit:.3g} s",
                )
            )
    return goals


def format_table(record: dict[str, Any]) -> str:
    """The record as text: one line per model, then the goals."""
    from netcheck.report.tables import goal_line

    lines = [
        f"{'model':<28}{'params':>10}{'grad64 ms':>11}{'check_gradient':>16}{'verify':>9}"
        f"{'check_grads':>13}{'cold s (cg/v)':>16}"
    ]
    for row in record["results"]:
        r = row["ratios"]
        lines.append(
            f"{row['label']:<28}{row['n_params']:>10}"
            f"{row['methods']['grad64']['median_s'] * 1e3:>11.3g}"
            f"{r['check_gradient']['median']:>15.3g}x{r['verify']['median']:>8.3g}x"
            f"{r['check_grads']['median']:>12.3g}x"
            f"{row['cold_s']['check_gradient']:>8.3g}/{row['cold_s']['verify']:<7.3g}"
        )
    if record["goals"]:
        lines.append("goals:")
        lines += [f"  {goal_line(goal)}" for goal in record["goals"]]
    return "\n".join(lines)
