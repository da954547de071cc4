"""Timing shared by every benchmark: interleaved rounds, paired ratios, bootstrap intervals.

Every benchmark of netcheck times the methods it compares *interleaved*: round by round, in
a fresh random order, so that load from other processes hits them alike
(``time_interleaved``). Ratios pair the times of one round (``paired_ratios``), and a
goal is judged by the percentile-bootstrap interval of the median ratio
(``median_interval``), never by which side of the target one median lands on.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def environment() -> dict[str, Any]:
    """Where the benchmark runs: device, platform, JAX version, matmul precision, host."""
    device = jax.devices()[0]
    precision = jax.config.jax_default_matmul_precision
    return {
        "device": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": importlib.metadata.version("jaxlib"),
        # The runtime behind the device, e.g. "cuda 12080" on a GPU ("<unknown>" on a CPU).
        "platform_version": str(getattr(device.client, "platform_version", "<unknown>")),
        # None is JAX's default: full float32 on CPU, TF32 for float32 on recent NVIDIA GPUs.
        "matmul_precision": "default" if precision is None else str(precision),
        "x64": bool(jax.config.jax_enable_x64),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        # Other processes' load is the main source of timing noise on a shared machine.
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
    }


def _measure(call: Callable[[], Any], repeats: int) -> float:
    """Seconds per call over ``repeats`` back-to-back calls, waiting for the last result."""
    start = time.perf_counter()
    for _ in range(repeats):
        result = call()
    jax.block_until_ready(result)
    return (time.perf_counter() - start) / repeats


def time_interleaved(
    calls: dict[str, Callable[[], Any]],
    rounds: int,
    min_measure_s: float,
    budget_s: float = 0.0,
    max_rounds: int | None = None,
    shared: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Time several calls alternately: each round measures every call once, in turn.

    Each call is first warmed up, and its repeat count chosen so that one measurement lasts
    about ``min_measure_s`` (from the median of three timed calls); the calls named in
    ``shared`` get one common count, set by the slowest of them, so that the methods being
    compared are measured in exactly the same way. Each round runs the calls in a fresh
    random order (seeded), so that neither a burst of load from other processes nor the
    cache left behind by the previous call always lands on the same method: a fixed
    rotation would keep every call's predecessor the same in every round.
    Cheap calls get more rounds: after ``rounds``, rounds go on while the total is under
    ``budget_s`` (up to ``max_rounds``, default ``5 * rounds``).

    Args:
        calls: name -> a no-argument call returning JAX arrays (or anything else).
        rounds: the least number of measurements per call.
        min_measure_s: the shortest measurement.
        budget_s: keep adding rounds until this many seconds have passed.
        max_rounds: the most rounds.
        shared: names of calls that share one repeat count.

    Returns:
        name -> ``{"times_s": [seconds per call, one per round], "repeats": int}``.
    """
    max_rounds = 5 * rounds if max_rounds is None else max(max_rounds, rounds)
    per_call = {}
    for name, call in calls.items():
        _measure(call, 1)  # warm-up: the first call may still allocate
        per_call[name] = statistics.median(_measure(call, 1) for _ in range(3))
    repeats = {
        name: max(1, math.ceil(min_measure_s / max(seconds, 1e-9)))
        for name, seconds in per_call.items()
    }
    group = [name for name in shared if name in calls]
    if group:
        slowest = max(per_call[name] for name in group)
        for name in group:
            repeats[name] = max(1, math.ceil(min_measure_s / max(slowest, 1e-9)))
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    rng = random.Random(0)  # seeded: a run is reproducible in its order
    start = time.perf_counter()
    done = 0
    while done < rounds or (time.perf_counter() - start < budget_s and done < max_rounds):
        for name in rng.sample(names, len(names)):
            times[name].append(_measure(calls[name], repeats[name]))
        done += 1
    return {name: {"times_s": times[name], "repeats": repeats[name]} for name in names}


def paired_ratios(times: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Per round, ``times[r] / reference[r]``; rounds beyond the shorter list are ignored.

    The two were measured back to back in the same round, so load from other processes,
    which drifts on a scale of seconds, mostly cancels in each round's ratio; a ratio of
    the two medians would let it in.
    """
    return [t / r for t, r in zip(times, reference, strict=False)]


def paired_ratio(times: Sequence[float], reference: Sequence[float]) -> float:
    """The median over rounds of ``paired_ratios``."""
    return statistics.median(paired_ratios(times, reference))


CONFIDENCE = 0.95
"""Coverage of the intervals that performance goals are judged by."""

BOOTSTRAP_RESAMPLES = 4000
"""Resamples of ``median_interval``: the interval's ends move by well under 1% of
their width from one seed to another."""


def median_interval(
    groups: Sequence[Sequence[float]],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median over groups of each group's median.

    A stratified bootstrap (numpy only): the groups (shapes) are fixed and the noise is in
    the rounds, so each resample redraws every group's rounds with replacement, takes each
    group's median and then the median of those. With one group it is the interval of that
    group's median ratio. Seeded: the same record always gives the same interval.

    Args:
        groups: per group (shape), its per-round values (``paired_ratios``), each
            non-empty.
        confidence: the interval's coverage, e.g. 0.95.
        resamples: bootstrap resamples.
        seed: seeds ``numpy.random.default_rng``.

    Returns:
        ``(low, high)``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
        quantiles of the resampled statistic.
    """
    if not groups or any(len(values) == 0 for values in groups):
        raise ValueError("median_interval needs at least one group and a value in each")
    rng = np.random.default_rng(seed)
    medians = []
    for values in groups:
        values = np.asarray(values, dtype=np.float64)
        draws = rng.integers(0, values.size, (resamples, values.size))
        medians.append(np.median(values[draws], axis=1))
    statistic = np.median(np.stack(medians), axis=0)
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistic, [tail, 1 - tail])
    return float(low), float(high)


def paired_interval(times: Sequence[float], reference: Sequence[float]) -> list[float]:
    """``median_interval`` of one shape's ``paired_ratios``, as a JSON-able list."""
    return list(median_interval([paired_ratios(times, reference)]))


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median and spread (quartiles, min, max) of a list of seconds."""
    ordered = sorted(times)
    if len(ordered) >= 2:
        q25, _, q75 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q25 = q75 = ordered[0]
    return {
        "median_s": statistics.median(ordered),
        "q25_s": q25,
        "q75_s": q75,
        "min_s": ordered[0],
        "max_s": ordered[-1],
    }
