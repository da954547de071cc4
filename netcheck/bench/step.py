"""Benchmarks: the manual gradient beside ``jax.grad`` and beside the matrix products alone.

For every shape of a grid (width ``w``, depth ``L``, batch ``n``, dtype) the benchmark
network is ``sizes = (w,) * (L + 1)``, tanh hidden layers, identity output, squared error,
with biases. Each method is compiled once (compile time kept apart), warmed up, and timed
with ``block_until_ready``; the methods of one shape are *interleaved* round by round (in a
fresh random order each round) so that noise from other processes hits them alike, and the
median of the rounds is reported with its spread; ratios pair the times of one round.

Methods:
    ``manual``: ``netcheck.nn.backprop.manual_grad_jit``, the δ recursion.
    ``autodiff``: ``netcheck.nn.autodiff.autodiff_grad_jit``, ``jax.grad`` of the same loss.
    ``roofline``: exactly the matrix products a forward-plus-backward step needs and nothing
        else (``roofline_products``), the limit the other methods are measured against.
    ``literal``: ``netcheck.nn.literal.literal_grad_jit``, the slides' per-example form with
        ``G(ℓ)`` as matrices (small shapes only).
    ``numpy_loop``: a per-example loop in numpy, as in Nielsen's ``network.py`` (small shapes).
    ``finite_differences``: central differences on every parameter (tiny shapes only).

Every result row records the device, platform, JAX version and matmul precision it ran
under; ``performance_goals`` judges a record against the project's stated goals, each
timed goal by the bootstrap confidence interval of its paired per-round ratios
(``median_interval``), never by which side of the target one median lands on.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from netcheck.bench.timing import (
    CONFIDENCE,
    environment,
    median_interval,
    paired_interval,
    paired_ratio,
    paired_ratios,
    summarize,
    time_interleaved,
)
from netcheck.nn import Network, Params, autodiff, backprop, literal

Array = jax.Array

SCHEMA = "netcheck.bench/2"
"""Identifies a benchmark record (see ``run_bench``)."""

METHODS = ("manual", "autodiff", "roofline", "literal", "numpy_loop", "finite_differences")
"""Every method the benchmark knows, in the order tables list them."""

DTYPES = ("float32", "bfloat16", "float16", "float64")

_CORE = ("manual", "autodiff", "roofline")
"""The methods compared head to head: timed in one group, with one repeat count."""

_ROW_ENVIRONMENT = ("device", "platform", "jax_version", "matmul_precision")
"""The environment fields repeated in every result row."""

BENCH_NETWORK = {
    "activation": "tanh",
    "output_activation": "identity",
    "loss": "squared_error",
    "bias": True,
}
"""The benchmark network's configuration, beside ``sizes = (width,) * (depth + 1)``."""

# Limits of the slow methods: per-example Python or per-example G(ℓ) matrices, and 2P
# forward passes for finite differences, would take minutes beyond them.
_SMALL_WIDTH, _SMALL_BATCH = 256, 64
_TINY_PARAMS, _TINY_BATCH = 10_000, 32


# ----- shapes and grids ----------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One benchmark shape.

    Attributes:
        width: every layer's width ``n_ℓ`` (input and output included).
        depth: ``L``, the number of weight layers.
        batch: examples per step.
        dtype: name of the parameters' and data's dtype.
    """

    width: int
    depth: int
    batch: int
    dtype: str = "float32"

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(n_0, ..., n_L)``, all equal to ``width``."""
        return (self.width,) * (self.depth + 1)

    def network(self) -> Network:
        """The benchmark ``Network`` of this shape."""
        return Network(sizes=self.sizes, **BENCH_NETWORK)

    @property
    def flops(self) -> int:
        """Floating-point operations of the matrix products of one step (``matmul_flops``)."""
        return matmul_flops(self.sizes, self.batch)

    @property
    def n_params(self) -> int:
        """Number of parameters (weights and biases)."""
        return sum(n_out * n_in + n_out for n_in, n_out in itertools.pairwise(self.sizes))

    def label(self) -> str:
        """A short readable name, e.g. ``w256 L2 n32 float32``."""
        return f"w{self.width} L{self.depth} n{self.batch} {self.dtype}"


@dataclass(frozen=True)
class Grid:
    """A grid of shapes: the product of widths x depths x batches x dtypes.

    Attributes:
        name: ``quick``, ``default``, ``report``, ``large`` or ``custom``.
        widths, depths, batches, dtypes: the axes of the product.
        max_flops: shapes whose step needs more matrix-product FLOPs are left out, so that a
            grid sized for two CPU cores stays within a few minutes.
        rounds: the least number of interleaved timing rounds per shape (the median is
            over the rounds).
        min_measure_s: a measurement repeats a call until it lasts at least this long, so
            that microsecond steps are not measured at the clock's resolution.
        budget_s: cheap shapes get more rounds, until this many seconds (see
            ``time_interleaved``).
        methods: the methods to run where they apply (see ``applicable_methods``).
    """

    name: str
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...] = ("float32",)
    max_flops: float = math.inf
    rounds: int = 7
    min_measure_s: float = 0.01
    budget_s: float = 1.0
    methods: tuple[str, ...] = field(default=METHODS)

    def __post_init__(self) -> None:
        for axis in ("widths", "depths", "batches"):
            values = tuple(getattr(self, axis))
            if not values:
                raise ValueError(f"grid {axis} is empty; give at least one value")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise TypeError(f"grid {axis} must be integers, got {value!r}")
                if value < 1:
                    raise ValueError(f"grid {axis} must be >= 1, got {value}")
            object.__setattr__(self, axis, tuple(int(v) for v in values))
        dtypes = tuple(self.dtypes)
        if not dtypes:
            raise ValueError("grid dtypes is empty; give at least one of " + ", ".join(DTYPES))
        for dtype in dtypes:
            if dtype not in DTYPES:
                raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        object.__setattr__(self, "dtypes", dtypes)
        methods = tuple(self.methods)
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if "roofline" not in methods:
            # Every other method is reported as a multiple of the roofline.
            methods = (*methods, "roofline")
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in methods))
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"grid rounds must be a positive integer, got {self.rounds!r}")
        if not self.min_measure_s >= 0:
            raise ValueError(f"grid min_measure_s must be >= 0, got {self.min_measure_s!r}")

    def shapes(self) -> list[Shape]:
        """The grid's shapes within ``max_flops``, smallest step first."""
        shapes = [
            Shape(width, depth, batch, dtype)
            for dtype in self.dtypes
            for depth in self.depths
            for width in self.widths
            for batch in self.batches
        ]
        kept = [shape for shape in shapes if shape.flops <= self.max_flops]
        if not kept:
            raise ValueError(
                f"every shape of grid {self.name!r} exceeds max_flops={self.max_flops:g}"
            )
        return sorted(kept, key=lambda s: (DTYPES.index(s.dtype), s.flops, s.width, s.depth))

    def to_record(self) -> dict[str, Any]:
        """The grid as a JSON-able dict."""
        record = asdict(self)
        record["max_flops"] = None if math.isinf(self.max_flops) else self.max_flops
        return {key: list(v) if isinstance(v, tuple) else v for key, v in record.items()}


GRIDS: dict[str, Grid] = {
    # A smoke test: seconds.
    "quick": Grid("quick", widths=(64, 256), depths=(2,), batches=(1, 64), rounds=5, budget_s=0.2),
    # Issue 2's figures on two CPU cores: widths 64..2048, depths 2..5, batch 1..1024, in a
    # few minutes; the largest steps (width 2048 with batch 1024) are left out by max_flops.
    "default": Grid(
        "default",
        widths=(64, 256, 1024, 2048),
        depths=(2, 3, 5),
        batches=(1, 32, 1024),
        max_flops=2.5e10,
        rounds=7,
    ),
    # The benchmark stage of `netcheck report`: a reduced default grid, well under a minute.
    "report": Grid(
        "report",
        widths=(64, 256, 1024),
        depths=(2, 4),
        batches=(1, 256),
        max_flops=3e9,
        rounds=5,
        budget_s=0.3,
    ),
    # For accelerators: widths up to 8192, float32 (TF32 by default on NVIDIA) and bfloat16.
    "large": Grid(
        "large",
        widths=(512, 1024, 2048, 4096, 8192),
        depths=(2, 4),
        batches=(256, 1024, 4096),
        dtypes=("float32", "bfloat16"),
        rounds=9,
        budget_s=0.5,
        methods=("manual", "autodiff", "roofline"),
    ),
}
"""The named grids; ``default`` is sized for two CPU cores, ``large`` for a GPU."""


def matmul_flops(sizes: Sequence[int], batch: int) -> int:
    """FLOPs of the matrix products of one forward-plus-backward step.

    Per layer ``ℓ`` (``n_{ℓ-1} -> n_ℓ``), each product costs ``2 n n_{ℓ-1} n_ℓ`` (a multiply
    and an add per term): the forward ``Z^ℓ = A^{ℓ-1} W_ℓᵀ``, the weight gradient
    ``(Δ^ℓ)ᵀ A^{ℓ-1}``, and, for ``ℓ >= 2``, the recursion ``Δ^{ℓ+1} W_{ℓ+1}`` that carries
    ``δ`` down to layer ``ℓ - 1``. Elementwise work (activations, ``g'``, biases) is not counted.

    Args:
        sizes: ``(n_0, ..., n_L)``.
        batch: examples per step ``n``.

    Returns:
        ``2 n Σ_ℓ n_{ℓ-1} n_ℓ (2 + [ℓ >= 2])``.
    """
    total = 0
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        products = 3 if layer >= 2 else 2
        total += products * 2 * batch * n_in * n_out
    return total


# ----- the methods ---------------------------------------------------------------------


def roofline_products(weights: list[Array], x: Array) -> list[Array]:
    """Exactly the matrix products of one step (those ``matmul_flops`` counts), alone.

    The same shapes and data dependencies as backprop, without activations or biases:
    ``A^ℓ = A^{ℓ-1} W_ℓᵀ``; ``Δ^L = A^L``; ``∂W_ℓ = (Δ^ℓ)ᵀ A^{ℓ-1}``; ``Δ^{ℓ-1} = Δ^ℓ W_ℓ``.

    Args:
        weights: ``[W_1, ..., W_L]``, each ``(n_ℓ, n_{ℓ-1})``.
        x: ``(batch, n_0)``.

    Returns:
        ``[∂W_1, ..., ∂W_L]``, shaped like ``weights``.
    """
    # The barriers keep XLA from re-associating the chain of products (with nothing
    # elementwise between them it would fold (Δ W)ᵀ A into other products of other shapes),
    # so that these are the very products, of the very shapes, that backprop runs.
    barrier = jax.lax.optimization_barrier
    activations = [x]
    for w in weights:
        activations.append(barrier(activations[-1] @ w.T))
    delta = activations[-1]
    grads = []
    for layer in range(len(weights), 0, -1):
        grads.append(delta.T @ activations[layer - 1])
        if layer > 1:
            delta = barrier(delta @ weights[layer - 1])
    return grads[::-1]


def numpy_loop_grad(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The benchmark network's gradient one example at a time in numpy (Nielsen-style).

    tanh hidden layers, identity output, squared error: ``δ^L = ŷ - y``,
    ``δ^ℓ = (1 - (a^ℓ)²) ⊙ W_{ℓ+1}ᵀ δ^{ℓ+1}``, ``∂L/∂W_ℓ = δ^ℓ (a^{ℓ-1})ᵀ``, averaged.

    Args:
        weights: ``[W_ℓ (n_ℓ, n_{ℓ-1})]``.
        biases: ``[b_ℓ (n_ℓ,)]``.
        x: ``(batch, n_0)``.
        y: ``(batch, n_L)``.

    Returns:
        ``(weight_grads, bias_grads)`` shaped like ``weights`` and ``biases``.
    """
    grad_w = [np.zeros_like(w) for w in weights]
    grad_b = [np.zeros_like(b) for b in biases]
    depth = len(weights)
    for x_i, y_i in zip(x, y, strict=True):
        a = [x_i]
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            z = w @ a[-1] + b
            a.append(z if layer == depth else np.tanh(z))
        delta = a[-1] - y_i
        for layer in range(depth, 0, -1):
            grad_w[layer - 1] += np.outer(delta, a[layer - 1])
            grad_b[layer - 1] += delta
            if layer > 1:
                delta = (1 - a[layer - 1] ** 2) * (weights[layer - 1].T @ delta)
    n = x.shape[0]
    return [g / n for g in grad_w], [g / n for g in grad_b]


def finite_difference_grad(
    net: Network, params: Params, x: Array, y: Array, step: float = 1e-3
) -> Params:
    """Central differences ``(L(θ + h e_i) - L(θ - h e_i)) / 2h`` on every parameter.

    ``2P`` evaluations of the mean loss for ``P`` parameters, run as a ``lax.map``.

    Args:
        net: the network.
        params: its parameters.
        x: ``(batch, n_0)``.
        y: ``(batch, n_L)``.
        step: ``h``.

    Returns:
        The same pytree as ``params``.
    """
    flat, unravel = ravel_pytree(params)
    h = jnp.asarray(step, flat.dtype)

    def loss(vector: Array) -> Array:
        return net.mean_loss_unchecked(unravel(vector), x, y)

    def partial(index: Array) -> Array:
        offset = jnp.zeros_like(flat).at[index].set(h)
        return (loss(flat + offset) - loss(flat - offset)) / (2 * h)

    return unravel(jax.lax.map(partial, jnp.arange(flat.size), batch_size=64))


_roofline_jit = jax.jit(roofline_products)
_finite_difference_jit = jax.jit(finite_difference_grad, static_argnums=0)


def applicable_methods(shape: Shape, methods: Iterable[str]) -> list[str]:
    """The methods of ``methods`` that run at ``shape`` (the slow ones only on small shapes)."""
    small = shape.width <= _SMALL_WIDTH and shape.batch <= _SMALL_BATCH
    tiny = shape.n_params <= _TINY_PARAMS and shape.batch <= _TINY_BATCH
    numpy_dtype = shape.dtype in ("float32", "float64")
    allowed = {
        "manual": True,
        "autodiff": True,
        "roofline": True,
        "literal": small,
        "numpy_loop": small and numpy_dtype,
        "finite_differences": tiny and numpy_dtype,
    }
    return [method for method in methods if allowed[method]]


# ----- measuring -----------------------------------------------------------------------


@dataclass
class _Prepared:
    """A method ready to time: a no-argument call, its compile time, its compiled costs."""

    call: Callable[[], Any]
    compile_s: float | None
    costs: dict[str, Any]


def _compiled_costs(compiled: Any) -> dict[str, Any]:
    """Temporary, argument and output bytes and XLA's FLOP count of a compiled executable.

    Each is None where the backend does not report it.
    """
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        analysis = None

    def read(name: str) -> int | None:
        value = getattr(analysis, name, None)
        return None if value is None else int(value)

    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        cost = None
    if isinstance(cost, list):  # older JAX: one dict per device program
        cost = cost[0] if cost else None
    flops = None if not cost or cost.get("flops") is None else float(cost["flops"])
    return {
        "temp_bytes": read("temp_size_in_bytes"),
        "argument_bytes": read("argument_size_in_bytes"),
        "output_bytes": read("output_size_in_bytes"),
        # XLA's own count for the compiled program (all operations, not just matmuls): a
        # noise-free comparison of the work two methods ask for.
        "xla_flops": flops,
    }


def _compile(jitted: Any, static: tuple[Any, ...], dynamic: tuple[Any, ...]) -> _Prepared:
    """Lower and compile ``jitted(*static, *dynamic)``, timing the compilation."""
    start = time.perf_counter()
    compiled = jitted.lower(*static, *dynamic).compile()
    compile_s = time.perf_counter() - start
    # A compiled executable takes only the dynamic arguments.
    return _Prepared(lambda: compiled(*dynamic), compile_s, _compiled_costs(compiled))


def _prepare(method: str, shape: Shape, key: Array) -> _Prepared:
    """Build the inputs of ``shape`` and compile ``method`` for them."""
    net = shape.network()
    dtype = jnp.dtype(shape.dtype)
    params = net.init(key, dtype=dtype)
    key_x, key_y = jax.random.split(jax.random.fold_in(key, 1))
    x = jax.random.normal(key_x, (shape.batch, shape.width), dtype)
    y = jax.random.normal(key_y, (shape.batch, shape.width), dtype)
    jitted = {
        "manual": backprop.manual_grad_jit,
        "autodiff": autodiff.autodiff_grad_jit,
        "literal": literal.literal_grad_jit,
        "finite_differences": _finite_difference_jit,
    }
    if method in jitted:
        return _compile(jitted[method], (net,), (params, x, y))
    if method == "roofline":
        return _compile(_roofline_jit, (), ([layer["W"] for layer in params], x))
    if method == "numpy_loop":
        weights = [np.asarray(layer["W"]) for layer in params]
        biases = [np.asarray(layer["b"]) for layer in params]
        x_np, y_np = np.asarray(x), np.asarray(y)
        costs: dict[str, Any] = {
            "temp_bytes": None,
            "argument_bytes": None,
            "output_bytes": None,
            "xla_flops": None,
        }
        return _Prepared(lambda: numpy_loop_grad(weights, biases, x_np, y_np), None, costs)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def bench_shape(
    shape: Shape,
    methods: Sequence[str] = METHODS,
    rounds: int = 7,
    min_measure_s: float = 0.01,
    budget_s: float = 0.0,
    key: Array | None = None,
) -> dict[str, Any]:
    """Benchmark every applicable method at one shape, interleaved.

    Args:
        shape: the shape.
        methods: the methods to run (the roofline always runs).
        rounds: the least number of interleaved timing rounds.
        min_measure_s: the shortest single measurement.
        budget_s: add rounds while the shape has taken less than this.
        key: PRNG key for parameters and data (default ``PRNGKey(0)``).

    Returns:
        A JSON-able row: the shape, its FLOPs and parameter count, the environment, and per
        method ``compile_s``, the timing summary (``median_s``, ``q25_s``, ``q75_s``,
        ``min_s``, ``max_s``, ``times_s``, ``repeats``), ``flops_per_s`` (the step's matrix
        FLOPs over the median; an *effective* rate for methods that do other work),
        ``time_over_roofline`` (``paired_ratio`` against the roofline timed in the same
        group: manual, jax.grad and the roofline are one group, the slow methods with a
        second roofline another) with its ``time_over_roofline_interval``
        (``paired_interval``) and the compiled memory (``temp_bytes`` ...); then
        ``manual_over_autodiff`` (``paired_ratio`` of the step times) and its
        ``manual_over_autodiff_interval``, ``manual_temp_bytes_minus_autodiff`` and, where
        slow methods ran, ``slow_group_roofline_times_s``.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    names = applicable_methods(shape, (*methods, "roofline"))
    names = [m for m in METHODS if m in names]
    prepared = {name: _prepare(name, shape, key) for name in names}
    # The compared methods are timed among themselves: a slow method's sweep through
    # memory would otherwise leave a cold cache to whichever call follows it.
    core = [name for name in names if name in _CORE]
    timings = time_interleaved(
        {name: prepared[name].call for name in core},
        rounds,
        min_measure_s,
        budget_s,
        shared=core,
    )
    references = dict.fromkeys(core, timings["roofline"]["times_s"])
    slow = [name for name in names if name not in _CORE]
    if slow:
        # The slow methods get a roofline of their own to be paired with.
        group = {name: prepared[name].call for name in [*slow, "roofline"]}
        slow_timings = time_interleaved(group, rounds, min_measure_s)
        for name in slow:
            timings[name] = slow_timings[name]
            references[name] = slow_timings["roofline"]["times_s"]
    row_methods = {}
    for name in names:
        summary = summarize(timings[name]["times_s"])
        row_methods[name] = {
            "compile_s": prepared[name].compile_s,
            **summary,
            "times_s": timings[name]["times_s"],
            "repeats": timings[name]["repeats"],
            "flops_per_s": shape.flops / summary["median_s"],
            "time_over_roofline": paired_ratio(timings[name]["times_s"], references[name]),
            "time_over_roofline_interval": paired_interval(
                timings[name]["times_s"], references[name]
            ),
            **prepared[name].costs,
        }
    row: dict[str, Any] = {
        **asdict(shape),
        "sizes": list(shape.sizes),
        "n_params": shape.n_params,
        "flops": shape.flops,
        **{k: v for k, v in environment().items() if k in _ROW_ENVIRONMENT},
        "methods": row_methods,
    }
    if slow:
        # What the slow methods' time_over_roofline is paired with.
        row["slow_group_roofline_times_s"] = references[slow[0]]
    if "manual" in row_methods and "autodiff" in row_methods:
        manual, auto = row_methods["manual"], row_methods["autodiff"]
        row["manual_over_autodiff"] = paired_ratio(manual["times_s"], auto["times_s"])
        row["manual_over_autodiff_interval"] = paired_interval(manual["times_s"], auto["times_s"])
        if manual["temp_bytes"] is not None and auto["temp_bytes"] is not None:
            row["manual_temp_bytes_minus_autodiff"] = manual["temp_bytes"] - auto["temp_bytes"]
    return row


def run_bench(
    grid: Grid | str = "default",
    progress: bool = False,
    key: Array | None = None,
    matmul_precision: str | None = None,
) -> dict[str, Any]:
    """Run a benchmark grid and return its JSON-able record.

    Args:
        grid: a ``Grid`` or the name of one in ``GRIDS``.
        progress: a tqdm bar on stderr, one step per shape, shown only when stderr is a
            terminal (tqdm's ``disable=None``), so that logs are not filled with bars.
        key: PRNG key for parameters and data.
        matmul_precision: ``None`` (JAX's default), ``"default"``, ``"high"`` or
            ``"highest"``; applied with ``jax.default_matmul_precision`` and recorded.

    Returns:
        ``{"schema": SCHEMA, "grid": ..., "environment": ..., "started": ISO time,
        "elapsed_s": ..., "results": [bench_shape rows], "goals": performance_goals}``.

    Raises:
        ValueError: unknown grid name or precision.
        TypeError: ``grid`` is neither a name nor a ``Grid``.
    """
    grid = resolve_grid(grid)
    if "float64" in grid.dtypes and not jax.config.jax_enable_x64:
        raise ValueError(
            "grid dtype float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 or "
            "jax.config.update('jax_enable_x64', True)"
        )
    if matmul_precision not in (None, "default", "high", "highest"):
        raise ValueError(
            f"matmul_precision must be None, 'default', 'high' or 'highest', "
            f"got {matmul_precision!r}"
        )
    shapes = grid.shapes()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    clock = time.perf_counter()
    rows = []
    with jax.default_matmul_precision(matmul_precision):
        env = environment()
        bar = tqdm(
            shapes,
            desc="bench",
            unit="shape",
            disable=None if progress else True,
            file=sys.stderr,
        )
        for shape in bar:
            bar.set_postfix_str(shape.label())
            rows.append(
                bench_shape(
                    shape, grid.methods, grid.rounds, grid.min_measure_s, grid.budget_s, key
                )
            )
    record = {
        "schema": SCHEMA,
        "grid": grid.to_record(),
        "network": {"sizes": "(width,) * (depth + 1)", **BENCH_NETWORK},
        "environment": env,
        "started": started,
        "elapsed_s": time.perf_counter() - clock,
        "results": rows,
    }
    record["goals"] = performance_goals(record)
    return record


def resolve_grid(grid: Grid | str) -> Grid:
    """A ``Grid`` from itself or from its name in ``GRIDS``."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; known: {', '.join(GRIDS)}")
        return GRIDS[grid]
    raise TypeError(f"grid must be a Grid or one of {', '.join(GRIDS)}, got {grid!r}")


# ----- the goals -----------------------------------------------------------------------

MEDIAN_RATIO_GOAL = 1.00
MAX_RATIO_GOAL = 1.05
ROOFLINE_GOAL = 1.15


def performance_goals(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Judge a benchmark record against the project's performance goals.

    1. manual / jax.grad step time, median over shapes ``<= 1.00``;
    2. ... and at no shape above ``1.05``;
    3. manual step time ``<= 1.15 x`` the roofline at the largest shape (most FLOPs), for
       each dtype of the grid;
    4. manual compiled temporary memory ``<=`` jax.grad's at every shape.

    A timed goal is judged by the ``CONFIDENCE`` interval of its paired per-round
    ratios (``median_interval``, recomputed here from every row's ``times_s``), not by
    where one median lands: it is *met* unless the whole interval lies above the target
    (no evidence that manual is slower than the target allows), *missed* when it does.
    Two programs of equal speed thus meet ``<= 1.00`` however their medians fall. Goal 2
    is judged at the shape whose interval has the highest lower end (the strongest
    evidence of a slowdown). Memory is counted, not timed: its goal is judged on the value.

    Args:
        record: a ``run_bench`` record (rows need ``times_s`` of the methods compared).

    Returns:
        One dict per goal: ``name``, ``target`` (text), ``target_value``, ``measured``,
        ``interval`` (``[low, high]``, or None for memory), ``met`` (None when the record
        cannot tell, e.g. no memory analysis on this backend), ``where`` (the shape or
        shapes it was judged on) and ``detail`` (how it was judged, in words).
    """
    rows = [row for row in record["results"] if "manual_over_autodiff" in row]
    goals = []
    if rows:
        ratios = [_round_ratios(row, "autodiff") for row in rows]
        median = statistics.median(statistics.median(r) for r in ratios)
        goals.append(
            _timed_goal(
                "manual / jax.grad step time, median over shapes",
                MEDIAN_RATIO_GOAL,
                median,
                median_interval(ratios),
                f"{len(rows)} shapes",
            )
        )
        intervals = [median_interval([r]) for r in ratios]
        index = max(range(len(rows)), key=lambda i: intervals[i][0])
        goals.append(
            _timed_goal(
                "manual / jax.grad step time, worst shape",
                MAX_RATIO_GOAL,
                statistics.median(ratios[index]),
                intervals[index],
                f"{row_label(rows[index])}, of {len(rows)} shapes the one whose interval "
                "starts highest",
            )
        )
    manual_rows = [row for row in record["results"] if "manual" in row["methods"]]
    dtypes = sorted({row["dtype"] for row in manual_rows}, key=DTYPES.index)
    for dtype in dtypes:
        largest = max(
            (row for row in manual_rows if row["dtype"] == dtype),
            key=lambda row: (row["flops"], row["width"]),
        )
        over = _round_ratios(largest, "roofline")
        where = "largest shape" if len(dtypes) == 1 else f"largest {dtype} shape"
        goals.append(
            _timed_goal(
                f"manual step time / roofline, {where}",
                ROOFLINE_GOAL,
                statistics.median(over),
                median_interval([over]),
                row_label(largest),
            )
        )
    excess = [row.get("manual_temp_bytes_minus_autodiff") for row in rows]
    known = [(value, row) for value, row in zip(excess, rows, strict=True) if value is not None]
    name = "manual - jax.grad compiled temporary bytes, worst shape"
    if rows and known:
        worst_value, worst_row = max(known, key=lambda pair: pair[0])
        complete = len(known) == len(rows)
        goals.append(
            _goal(
                name,
                0,
                worst_value,
                None,
                False if worst_value > 0 else (True if complete else None),
                row_label(worst_row),
                "compiled temporary bytes from XLA's memory analysis, the largest difference "
                "over the shapes"
                + ("" if complete else f"; only {len(known)} of {len(rows)} shapes measured"),
                "<= 0",
            )
        )
    elif rows:
        goals.append(
            _goal(name, 0, None, None, None, "–", "no memory analysis on this backend", "<= 0")
        )
    return goals


def _round_ratios(row: dict[str, Any], reference: str) -> list[float]:
    """A row's per-round manual / ``reference`` times (the group timed together)."""
    methods = row["methods"]
    return paired_ratios(methods["manual"]["times_s"], methods[reference]["times_s"])


def _timed_goal(
    name: str, target: float, measured: float, interval: Sequence[float], where: str
) -> dict[str, Any]:
    low, high = interval
    met = low <= target
    rule = (
        f"median of the paired per-round ratios, {CONFIDENCE:.0%} bootstrap interval "
        f"{low:.4g} to {high:.4g}; met unless the interval lies entirely above {target:.2f}"
        + ("" if met else f" (it does: manual is slower than {target:.2f}x)")
    )
    return _goal(name, target, measured, [low, high], met, where, rule)


def _goal(
    name: str,
    target: float,
    measured: float | None,
    interval: list[float] | None,
    met: bool | None,
    where: str,
    detail: str,
    target_text: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "target": target_text or f"<= {target:.2f}",
        "target_value": target,
        "measured": measured,
        "interval": interval,
        "met": None if met is None else bool(met),
        "where": where,
        "detail": detail,
    }


def row_label(row: dict[str, Any]) -> str:
    """``w256 L2 n32 float32``: width, depth, batch and dtype of a result row."""
    return f"w{row['width']} L{row['depth']} n{row['batch']} {row['dtype']}"
