"""The default verification suite, the mutant kill matrix and the detection-power measurement.

Every function here returns a plain JSON-able dict (records documented on each function),
so a report can render the results without running anything.

Speed: a case is ``(spec, dtype, seed)``. Cases that differ only in their seed share one
compiled program, ``jit(vmap(measure))`` over the seeds (``netcheck.verifier.measure_network``
with the candidate computed inside), so the cost is one compilation per ``(spec, dtype)``
group. Case data is drawn on the host with NumPy (seeded, reproducible) so that no random
number generator is compiled.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from netcheck.bench.mutants import MUTANTS, Mutant
from netcheck.nn import Network, Params, backprop
from netcheck.nn.activations import HIDDEN_ACTIVATIONS
from netcheck.nn.losses import LOSSES
from netcheck.verifier import (
    FAST_COMPILE,
    Verdict,
    jsonable,
    measure_network_many,
    network_verdict,
)
from netcheck.verifier.measure import FORMULA_METRICS, upcast, witness_noise
from netcheck.verifier.network import (
    measure_network_candidate,
    network_references,
    quantity_shapes,
)
from netcheck.verifier.tolerance import DEFAULT_CONSTANTS, Constants, rows_pass
from netcheck.verifier.witness import witness_agrees

FORMULA_KEYS = frozenset((*FORMULA_METRICS, "self_floor64", "max_self_floor64"))
"""The metrics of the formula part, dropped to judge the precision part alone."""

Array = jax.Array

DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")
"""The working dtypes the suite covers."""

_RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu", "silu"})

# The output activation each loss is checked with: squared error goes with an identity,
# a sigmoid and a softmax output in turn (the softmax one exercises G(L) = diag(s) - s sᵀ).
_SQUARED_ERROR_OUTPUTS = ("identity", "sigmoid", "softmax")

# (hidden widths, batch) shapes cycled through by the default suite; depth = len(widths)+1.
_SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((), 4),
    ((8,), 16),
    ((5, 7), 1),
    ((9, 3, 6), 8),
    ((4,), 3),
    ((6, 6), 12),
)


@dataclass(frozen=True)
class Case:
    """One verification case: a network spec, a batch size, a dtype and a seed.

    Attributes:
        activation: hidden activation ``g``.
        output_activation: output activation ``g_L``.
        loss: loss name.
        sizes: ``(n_0, ..., n_L)``.
        batch: examples in the batch.
        bias: whether layers have biases.
        dtype: working dtype name (one of ``DTYPES``).
        seed: seeds the data, the parameters and the witness directions.
    """

    activation: str
    output_activation: str
    loss: str
    sizes: tuple[int, ...]
    batch: int
    bias: bool
    dtype: str
    seed: int

    @property
    def net(self) -> Network:
        """The ``Network`` of this case."""
        return Network(self.sizes, self.activation, self.output_activation, self.loss, self.bias)

    @property
    def group(self) -> tuple[Any, ...]:
        """Everything but the seed: cases of one group share a compiled program."""
        return (self.net, self.batch, self.dtype)

    @property
    def id(self) -> str:
        """A readable id, e.g. ``tanh-sigmoid-binary_cross_entropy-3x8x1-b16-bias-float32-s7``."""
        sizes = "x".join(map(str, self.sizes))
        bias = "bias" if self.bias else "nobias"
        return (
            f"{self.activation}-{self.output_activation}-{self.loss}-{sizes}-b{self.batch}-"
            f"{bias}-{self.dtype}-s{self.seed}"
        )

    def spec(self) -> dict[str, Any]:
        """The case as a JSON-able dict (the fields above, ``sizes`` as a list)."""
        record = asdict(self)
        record["sizes"] = list(self.sizes)
        return record


# ----- the cases ---------------------------------------------------------------------


def _output_for(loss: str, index: int) -> str:
    required = LOSSES[loss].output_activation
    return required if required is not None else _SQUARED_ERROR_OUTPUTS[index % 3]


def _spec_cases(index: int, seeds: int) -> list[Case]:
    """The cases of spec ``index`` (0..26) of the default suite.

    Spec ``i`` pairs hidden activation ``i mod 9`` with loss ``(⌊i/9⌋ + i) mod 3``, so each
    of the 27 (activation, loss) pairs appears once; its shape, bias and dtype cycle with
    ``i`` (dtype ``i mod 4``), and its ``seeds`` seeds are ``1000 i, 1000 i + 1, ...``.
    """
    activation = HIDDEN_ACTIVATIONS[index % 9]
    loss = tuple(LOSSES)[(index // 9 + index) % 3]
    hidden, batch = _SHAPES[index % len(_SHAPES)]
    output = _output_for(loss, index)
    n_in = 2 + index % 4
    n_out = 1 if loss == "binary_cross_entropy" and index % 2 else 3
    if loss == "squared_error" and output != "softmax" and index % 3 == 1:
        n_out = 1
    sizes = (n_in, *hidden, n_out)
    bias = index % 5 != 2
    dtype = DTYPES[index % 4]
    return [
        Case(activation, output, loss, sizes, batch, bias, dtype, 1000 * index + s)
        for s in range(seeds)
    ]


SUITE_SPECS = 27
"""Specs in the default suite: every (hidden activation, loss) pair once."""

SUITE_SEEDS = 8
"""Seeds per spec in the default suite (one compiled program serves them all)."""

QUICK_SEEDS = 4
"""Seeds per spec with ``quick``."""


def default_cases(
    quick: bool = False,
    activation: str | None = None,
    loss: str | None = None,
    dtype: str | None = None,
) -> list[Case]:
    """The default suite: every hidden activation x loss pair, shapes and dtypes cycled.

    The full suite has 27 specs, one per (hidden activation, loss) pair, with squared
    error on identity, sigmoid and softmax outputs in turn; depth 1-4, widths 1-9, batch
    sizes 1-16, bias on/off and the four dtypes cycle over them (each dtype gets 6-7
    specs). Each spec runs ``SUITE_SEEDS`` seeds in one compiled program:
    27 x 8 = 216 cases. ``quick`` keeps the 9 specs ``a + 9 (a mod 3)`` (``a = 0..8``),
    which still cover every activation, every loss and every dtype, with
    ``QUICK_SEEDS`` seeds: 36 cases.

    Args:
        quick: the quick selection.
        activation, loss, dtype: keep only cases with this hidden activation, loss or
            dtype (applied after the selection; seeds do not change).

    Returns:
        The cases, reproducible: the same arguments always give the same list.
    """
    _check_choice(activation, HIDDEN_ACTIVATIONS, "activation")
    _check_choice(loss, tuple(LOSSES), "loss")
    _check_choice(dtype, DTYPES, "dtype")
    if quick:
        indices = [a + 9 * (a % 3) for a in range(9)]
        seeds = QUICK_SEEDS
    else:
        indices = list(range(SUITE_SPECS))
        seeds = SUITE_SEEDS
    cases = [case for index in indices for case in _spec_cases(index, seeds)]
    return [
        case
        for case in cases
        if (activation is None or case.activation == activation)
        and (loss is None or case.loss == loss)
        and (dtype is None or case.dtype == dtype)
    ]


def case_data(case: Case) -> tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """The parameters and data of a case, float64 NumPy, drawn from ``case.seed``.

    Weights are normal with variance ``2/n_in`` (He) for relu-like hidden activations
    and ``2/(n_in+n_out)`` (Glorot) otherwise, biases ``N(0, 0.1²)``; ``x ~ N(0, 1)``;
    ``y`` normal for squared error, Bernoulli(½) for binary cross-entropy, one-hot for
    softmax cross-entropy.

    Returns:
        ``(params, x (batch, n_0), y (batch, n_L))``, to be cast to ``case.dtype``.
    """
    rng = np.random.default_rng(case.seed)
    params = []
    for n_in, n_out in zip(case.sizes[:-1], case.sizes[1:], strict=True):
        fan = 2 / n_in if case.activation in _RELU_LIKE else 2 / (n_in + n_out)
        layer = {"W": rng.normal(0.0, np.sqrt(fan), (n_out, n_in))}
        if case.bias:
            layer["b"] = rng.normal(0.0, 0.1, (n_out,))
        params.append(layer)
    x = rng.standard_normal((case.batch, case.sizes[0]))
    n_out = case.sizes[-1]
    if case.loss == "binary_cross_entropy":
        y = (rng.random((case.batch, n_out)) < 0.5).astype(np.float64)
    elif case.loss == "softmax_cross_entropy":
        y = np.eye(n_out)[rng.integers(0, n_out, case.batch)]
    else:
        y = rng.standard_normal((case.batch, n_out))
    return params, x, y


# ----- running groups of cases -------------------------------------------------------

GradFn = Callable[..., Any]


def _candidate_pair(net: Network, grad_fn: GradFn, deltas_fn: GradFn, params, x, y) -> tuple:
    """The candidate at the working dtype and run in float64 on the upcast point (the
    formula part); for a float64 point the two coincide and the second is ``None``."""
    grads, deltas = grad_fn(net, params, x, y), deltas_fn(net, params, x, y)
    if jnp.dtype(x.dtype) == jnp.float64:
        return grads, deltas, None, None
    p64, x64, y64 = upcast((params, x, y))
    return grads, deltas, grad_fn(net, p64, x64, y64), deltas_fn(net, p64, x64, y64)


@functools.cache
def _group_program(net: Network, candidates: tuple[tuple[GradFn, GradFn], ...], witness: bool):
    """``jit(vmap(measure))`` over seeds, each candidate ``(grad_fn, deltas_fn)`` computed
    inside (at the working dtype and in float64) and judged against references computed
    once."""

    def one(params: Any, x: Array, y: Array, noise: Any) -> list[dict[str, Any]]:
        computed = [
            _candidate_pair(net, grad_fn, deltas_fn, params, x, y)
            for grad_fn, deltas_fn in candidates
        ]
        return measure_network_many(net, computed, params, x, y, noise if witness else None)

    return jax.jit(jax.vmap(one), compiler_options=FAST_COMPILE)


def _stacked_inputs(cases: Sequence[Case]) -> tuple[Any, ...]:
    """The group's parameters, data and witness noise, stacked along a seed axis."""
    dtype = jnp.dtype(cases[0].dtype)
    data = [case_data(case) for case in cases]

    def stack(*leaves: np.ndarray) -> Array:
        # Cast on the host (NumPy knows bfloat16 through ml_dtypes): a cast on the device
        # would compile one small program per shape.
        return jax.device_put(np.stack(leaves).astype(dtype))

    params = jax.tree_util.tree_map(stack, *[d[0] for d in data])
    x = stack(*[d[1] for d in data])
    y = stack(*[d[2] for d in data])
    noise = [
        witness_noise(case.seed, [np.zeros(s) for s in quantity_shapes(case.net, case.batch)])
        for case in cases
    ]
    stacked_noise = [jax.device_put(np.stack(leaves)) for leaves in zip(*noise, strict=True)]
    return params, x, y, stacked_noise


def run_group(
    cases: Sequence[Case],
    candidates: Sequence[tuple[GradFn, GradFn]] = ((backprop.manual_grad, backprop.manual_deltas),),
    witness: bool = True,
    constants: Constants = DEFAULT_CONSTANTS,
) -> list[list[Verdict]]:
    """Verify cases of one group (same spec, batch and dtype) in one compiled program.

    Args:
        cases: cases with equal ``Case.group``.
        candidates: the gradients under test, ``(grad_fn, deltas_fn)`` pairs (default the
            manual backprop alone); all are judged against the same references.
        witness: take the finite-difference witness.
        constants: ``K`` and ``T`` to judge with.

    Returns:
        ``verdicts[k][i]``: the ``Verdict`` of candidate ``k`` on
        case ``i``.
    """
    if len({case.group for case in cases}) != 1:
        raise ValueError("run_group needs cases of one group (same spec, batch and dtype)")
    net, batch = cases[0].net, cases[0].batch
    with jax.enable_x64(True):
        inputs = _stacked_inputs(cases)
        program = _group_program(net, tuple(candidates), witness)
        measured = jax.tree_util.tree_map(np.asarray, program(*inputs))
    dtype = jnp.dtype(cases[0].dtype)
    return [
        [
            network_verdict(
                net, dtype, batch, jax.tree_util.tree_map(lambda a, i=i: a[i], one), constants
            )
            for i in range(len(cases))
        ]
        for one in measured
    ]


def _groups(cases: Iterable[Case]) -> list[list[Case]]:
    groups: dict[tuple[Any, ...], list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    return list(groups.values())


def case_record(case: Case, verdict: Verdict) -> dict[str, Any]:
    """One case of ``run_suite``.

    Schema::

        {"id": str, "spec": Case.spec(), "dtype": str, "ok": bool, "kink": bool,
         "first_bad_layer": int | None, "reasons": [str], "worst_ratio": float,
         "layers": [{"layer": ℓ, "worst_relative_error": float | None,
                     "worst_ratio": float | None,
                     "rows": {"delta"|"W"|"b": {"relative_error", "ratio", "status",
                              "formula_ratio" (None without a formula part),
                              "precision_ratio", "detectable_element"}}}]}

    ``ratio`` is distance / tolerance (below 1 passes; the larger over the parts and
    norms); ``None`` stands for NaN/Inf.
    """
    layers = []
    for layer in verdict.layers:
        rows = {
            row.kind: {
                "relative_error": jsonable(row.relative_error),
                "ratio": jsonable(row.ratio),
                "status": row.status,
                "formula_ratio": None if row.formula is None else jsonable(row.formula.ratio),
                "precision_ratio": jsonable(row.precision.ratio),
                "detectable_element": jsonable(row.detectable_element),
            }
            for row in layer.rows
        }
        layers.append(
            {
                "layer": layer.layer,
                "worst_relative_error": jsonable(max(row.relative_error for row in layer.rows)),
                "worst_ratio": jsonable(max(row.ratio for row in layer.rows)),
                "rows": rows,
            }
        )
    return {
        "id": case.id,
        "spec": case.spec(),
        "dtype": case.dtype,
        "ok": verdict.ok,
        "kink": verdict.kink,
        "first_bad_layer": verdict.first_bad_layer,
        "reasons": list(verdict.reasons),
        "worst_ratio": jsonable(verdict.worst_ratio),
        "layers": layers,
    }


def run_suite(
    cases: Sequence[Case],
    progress: bool = True,
    witness: bool = True,
    constants: Constants = DEFAULT_CONSTANTS,
) -> dict[str, Any]:
    """Verify the manual backprop on every case.

    Args:
        cases: e.g. ``default_cases``.
        progress: show a tqdm bar on stderr.
        witness: take the float64 finite-difference witness (``netcheck verify --quick``
            leaves it out).
        constants: ``K`` and ``T`` to judge with (the defaults: 8 and 4).

    Returns:
        ``{"kind": "suite", "n_cases": int, "n_failed": int, "ok": bool, "groups": int,
        "wall_s": float, "witness": bool, "constants": {"noise_multiple", "tie_multiple"},
        "cases": [case_record(...)]}``, cases in the order given.
    """
    start = time.perf_counter()
    records: dict[Case, dict[str, Any]] = {}
    groups = _groups(cases)
    with tqdm(
        total=len(cases), desc="verify", unit="case", disable=None if progress else True
    ) as bar:
        for group in groups:
            verdicts = run_group(group, witness=witness, constants=constants)[0]
            for case, verdict in zip(group, verdicts, strict=True):
                records[case] = case_record(case, verdict)
            bar.update(len(group))
    ordered = [records[case] for case in cases]
    failed = sum(not record["ok"] for record in ordered)
    return {
        "kind": "suite",
        "n_cases": len(ordered),
        "n_failed": failed,
        "ok": failed == 0,
        "groups": len(groups),
        "wall_s": time.perf_counter() - start,
        "witness": witness,
        "constants": _constants(constants),
        "cases": ordered,
    }


def _constants(constants: Constants) -> dict[str, float]:
    return {"noise_multiple": constants.noise_multiple, "tie_multiple": constants.tie_multiple}


# ----- the kill matrix ---------------------------------------------------------------

KILL_SPECS: tuple[tuple[str, str, str, tuple[int, ...], int], ...] = (
    ("tanh", "sigmoid", "squared_error", (5, 5, 5, 5), 5),
    ("relu", "softmax", "squared_error", (4, 6, 6, 3), 3),
    ("sigmoid", "sigmoid", "binary_cross_entropy", (3, 4, 1), 8),
    ("gelu", "softmax", "softmax_cross_entropy", (2, 4, 4, 4), 6),
)
"""(activation, output, loss, sizes, batch) of the kill matrix; every mutant applies to
at least one, and each exercises a different output rule."""


def kill_cases(
    dtypes: Sequence[str] = ("float32", "float64"),
    seeds: int = 2,
    activation: str | None = None,
    loss: str | None = None,
) -> list[Case]:
    """The cases the mutants are run on: ``KILL_SPECS`` x ``dtypes`` x ``seeds``,
    optionally only the specs with this hidden ``activation`` or ``loss``."""
    for dtype in dtypes:
        _check_choice(dtype, DTYPES, "dtype")
    specs = [
        (index, spec)
        for index, spec in enumerate(KILL_SPECS)
        if activation in (None, spec[0]) and loss in (None, spec[2])
    ]
    if not specs:
        used = sorted({f"{spec[0]}/{spec[2]}" for spec in KILL_SPECS})
        raise ValueError(
            f"no kill-matrix spec has activation={activation!r}, loss={loss!r}; "
            f"the specs are (activation/loss): {', '.join(used)}"
        )
    return [
        Case(act, out, name, sizes, batch, True, dtype, 7000 + 10 * index + s)
        for index, (act, out, name, sizes, batch) in specs
        for dtype in dtypes
        for s in range(seeds)
    ]


def kill_matrix(
    dtypes: Sequence[str] = ("float32", "float64"),
    mutants: Sequence[str] | None = None,
    progress: bool = True,
    activation: str | None = None,
    loss: str | None = None,
    constants: Constants = DEFAULT_CONSTANTS,
) -> dict[str, Any]:
    """Run every mutant on every kill case where it applies, and the correct code as control.

    Mutants that apply to no selected case (only possible with the ``activation`` /
    ``loss`` filters) are listed under ``"not_run"`` instead of ``"mutants"``.

    Args:
        dtypes: working dtypes of the kill cases (the ``scaled_layer`` bug, 1e-3, is below
            bfloat16/float16 resolution, so those are not in the default).
        mutants: names from ``netcheck.bench.mutants.MUTANTS`` (default all).
        progress: show a tqdm bar on stderr.
        activation, loss: run only the kill specs with this hidden activation / loss.
        constants: ``K`` and ``T`` to judge with.

    Returns:
        ``{"kind": "kill_matrix", "dtypes": [...], "not_run": [names], "all_killed": bool,
        "all_localised": bool, "control_ok": bool, "wall_s": float,
        "mutants": [{"name", "description", "corrupts", "killed": bool (every case),
        "localised": bool (every case), "cases": [{"id", "dtype", "killed": bool,
        "named_layer": int | None, "expected_layer": int, "localised": bool,
        "reason": str | None}]}],
        "control": [{"id", "dtype", "ok": bool, "reasons": [str]}]}``.
    """
    start = time.perf_counter()
    names = list(MUTANTS) if mutants is None else list(mutants)
    for name in names:
        _check_choice(name, tuple(MUTANTS), "mutant")
    cases = kill_cases(dtypes, activation=activation, loss=loss)
    groups = _groups(cases)
    control: list[dict[str, Any]] = []
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tqdm(
        total=len(groups), desc="mutants", unit="program", disable=None if progress else True
    ) as bar:
        for group in groups:
            net, batch = group[0].net, group[0].batch
            applicable = [MUTANTS[name] for name in names if MUTANTS[name].applies(net, batch)]
            candidates = [(backprop.manual_grad, backprop.manual_deltas)]
            candidates += [(mutant.grad, mutant.deltas) for mutant in applicable]
            control_verdicts, *mutant_verdicts = run_group(
                group, candidates, witness=False, constants=constants
            )
            for case, verdict in zip(group, control_verdicts, strict=True):
                control.append(
                    {
                        "id": case.id,
                        "dtype": case.dtype,
                        "ok": verdict.ok,
                        "reasons": list(verdict.reasons),
                    }
                )
            for mutant, verdicts in zip(applicable, mutant_verdicts, strict=True):
                for case, verdict in zip(group, verdicts, strict=True):
                    results[mutant.name].append(_kill_record(mutant, case, verdict))
            bar.update()
    records = []
    not_run = [name for name in names if not results[name]] if (activation or loss) else []
    for name in names:
        rows = results[name]
        mutant = MUTANTS[name]
        if name in not_run:
            continue
        records.append(
            {
                "name": name,
                "description": mutant.description,
                "corrupts": mutant.corrupts,
                "killed": bool(rows) and all(row["killed"] for row in rows),
                "localised": bool(rows) and all(row["localised"] for row in rows),
                "cases": rows,
            }
        )
    return {
        "kind": "kill_matrix",
        "dtypes": list(dtypes),
        "not_run": not_run,
        "all_killed": all(record["killed"] for record in records),
        "all_localised": all(record["localised"] for record in records),
        "control_ok": all(record["ok"] for record in control),
        "wall_s": time.perf_counter() - start,
        "mutants": records,
        "control": control,
    }


def _kill_record(mutant: Mutant, case: Case, verdict: Verdict) -> dict[str, Any]:
    expected = mutant.expected_layer(case.net)
    return {
        "id": case.id,
        "dtype": case.dtype,
        "killed": not verdict.ok,
        "named_layer": verdict.first_bad_layer,
        "expected_layer": expected,
        "localised": verdict.first_bad_layer == expected,
        "reason": verdict.reason,
    }


# ----- detection power ---------------------------------------------------------------

EPSILONS: tuple[float, ...] = tuple(float(10.0 ** (-k / 2)) for k in range(0, 31))
"""The scalings ``1 + ε`` tried: ``ε = 1, 10^-0.5, ..., 10^-15``."""

CHECK_GRADS_EPSILONS: tuple[float, ...] = tuple(float(10.0**-k) for k in range(0, 9))
"""The coarser grid on which ``jax.test_util.check_grads`` is run (it is slow)."""

MUTATIONS = ("layer", "element")
"""``layer``: one layer's ``∂L/∂W_ℓ, ∂L/∂b_ℓ`` scaled by ``1 + ε``; ``element``: the
median-sized (nonzero) element of one layer's ``∂L/∂W_ℓ`` scaled by ``1 + ε``."""

MODES = ("both", "precision")
"""``both``: the verdict with its formula part; ``precision``: the precision part alone."""

_POWER_SPECS: tuple[tuple[str, str, str, tuple[int, ...], int, bool], ...] = (
    ("tanh", "identity", "squared_error", (3, 8, 2), 8, True),
    ("relu", "sigmoid", "binary_cross_entropy", (4, 6, 5, 1), 16, True),
    ("sigmoid", "softmax", "softmax_cross_entropy", (5, 7, 4), 4, False),
    ("gelu", "softmax", "squared_error", (2, 5, 5, 3), 12, True),
    ("elu", "sigmoid", "squared_error", (6, 4, 2), 1, True),
    ("silu", "identity", "squared_error", (3, 9, 9, 9, 2), 8, True),
    ("softplus", "sigmoid", "binary_cross_entropy", (4, 3, 2), 6, False),
    ("leaky_relu", "softmax", "softmax_cross_entropy", (3, 8, 8, 5), 10, True),
)


def power_cases(dtype: str, n_cases: int) -> list[Case]:
    """``n_cases`` correct cases of one dtype, spread evenly over the power specs."""
    _check_choice(dtype, DTYPES, "dtype")
    if isinstance(n_cases, bool) or not isinstance(n_cases, int) or n_cases < 1:
        raise ValueError(f"n_cases must be a positive int, got {n_cases!r}")
    return [
        Case(
            *_POWER_SPECS[i % len(_POWER_SPECS)][:4],
            *_POWER_SPECS[i % len(_POWER_SPECS)][4:],
            dtype,
            100_000 + i,
        )
        for i in range(n_cases)
    ]


def median_element_masks(grads: Params, onehot: Array) -> tuple[list[Array], Array]:
    """0/1 masks of the median-sized nonzero element of the chosen layer's ``∂L/∂W``.

    Args:
        grads: the (correct) gradient, whose magnitudes choose the element.
        onehot: ``(L,)``, 1 at the chosen layer.

    Returns:
        ``(masks, mutable)``: per layer a mask shaped like ``W_ℓ`` (all zero except at the
        chosen layer), and whether the chosen layer has a nonzero element at all (a
        mutation of a zero element changes nothing and cannot be caught).
    """
    masks, mutable = [], jnp.zeros((), bool)
    for index, layer in enumerate(grads):
        size = jnp.abs(layer["W"]).ravel()
        nonzero = jnp.sum(size > 0)
        order = jnp.argsort(jnp.where(size > 0, size, jnp.inf))
        chosen = order[nonzero // 2]
        flat = (jnp.arange(size.size) == chosen) & (nonzero > 0) & (onehot[index] > 0)
        masks.append(flat.reshape(layer["W"].shape).astype(onehot.dtype))
        mutable = mutable | ((nonzero > 0) & (onehot[index] > 0))
    return masks, mutable


def mutation_weights(
    onehot: Array, masks: list[Array], element: Array
) -> tuple[list[Array], list[Array]]:
    """Where ``1 + ε`` applies: per layer, for ``∂L/∂W_ℓ`` and for ``∂L/∂b_ℓ``.

    Args:
        onehot: ``(L,)``, 1 at the chosen layer.
        masks: ``median_element_masks``'s masks.
        element: scale one element (else the whole chosen layer).

    Returns:
        ``(w_where, b_where)``: 0/1 arrays shaped like each ``W_ℓ``, and 0/1 scalars.
    """
    w_where = [jnp.where(element, mask, onehot[i]) for i, mask in enumerate(masks)]
    b_where = [jnp.where(element, 0.0, onehot[i]) for i in range(len(masks))]
    return w_where, b_where


def _scaled(grads: Params, where: tuple[list[Array], list[Array]], epsilon: Array) -> Params:
    """The gradient with each leaf scaled by ``1 + ε · where`` (``mutation_weights``),
    the factor rounded to the leaf's dtype (so a bfloat16 ``1 + 1e-9`` is exactly 1), as a
    bug written in that dtype would be."""
    wrong = []
    for layer, w_where, b_where in zip(grads, *where, strict=True):
        out = {"W": layer["W"] * (1 + epsilon * w_where).astype(layer["W"].dtype)}
        if "b" in layer:
            out["b"] = layer["b"] * (1 + epsilon * b_where).astype(layer["b"].dtype)
        wrong.append(out)
    return wrong


@functools.cache
def _power_program(net: Network) -> Any:
    """Per case: the verifier's numbers for the manual gradient mutated by each ``ε`` of
    the grid, one layer scaled and one element scaled (``ε = 0`` first: correct code)."""

    def one(params: Any, x: Array, y: Array, noise: Any, onehot: Array, eps: Array):
        grads, deltas, grads64, deltas64 = _candidate_pair(
            net, backprop.manual_grad, backprop.manual_deltas, params, x, y
        )
        masks, mutable = median_element_masks(grads if grads64 is None else grads64, onehot)
        refs = network_references(net, params, x, y, noise, grads64 is not None)

        def variant(epsilon: Array, element: Array) -> dict[str, Any]:
            chosen = mutation_weights(onehot, masks, element)
            wrong = _scaled(grads, chosen, epsilon)
            wrong64 = None if grads64 is None else _scaled(grads64, chosen, epsilon)
            return measure_network_candidate(net, refs, (wrong, deltas, wrong64, deltas64))

        # One vmap over (mutation, ε): the references are computed once, outside it.
        element = jnp.repeat(jnp.array([False, True]), eps.shape[0])
        measured = jax.vmap(variant)(jnp.tile(eps, 2), element)
        split = jax.tree_util.tree_map(lambda a: a.reshape(2, eps.shape[0], *a.shape[1:]), measured)
        return {
            "layer": jax.tree_util.tree_map(lambda a: a[0], split),
            "element": jax.tree_util.tree_map(lambda a: a[1], split),
            "mutable": mutable,
        }

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None)), compiler_options=FAST_COMPILE)


def detection_power(
    dtypes: Sequence[str] = DTYPES,
    n_cases: int = 1000,
    check_grads_cases: int = 200,
    progress: bool = True,
    constants: Constants = DEFAULT_CONSTANTS,
) -> dict[str, Any]:
    """Measure, per dtype, the smallest detected error: one layer scaled, one element scaled.

    For each correct case a random layer ``ℓ`` is chosen, and for every ``ε`` in
    ``EPSILONS`` (``ε = 0`` is the correct gradient: a failure there is a false alarm)
    either ``∂L/∂W_ℓ, ∂L/∂b_ℓ`` or the median-sized nonzero element of ``∂L/∂W_ℓ`` is
    multiplied by ``1 + ε``, in the working dtype and in the float64 run alike. Each
    variant is judged twice: by the whole verdict (formula and precision) and by the
    precision part alone. The same mutations are judged by ``jax.test_util.check_grads``
    (reverse mode, its default tolerances) on the first ``check_grads_cases`` cases, the
    gradient entering through a ``jax.custom_vjp``. ``constants`` are ``K`` and ``T``.

    Returns:
        ``{"kind": "detection_power", "wall_s", "constants", "epsilons",
        "check_grads_epsilons", "dtypes": [{"dtype", "n_cases", "false_alarms",
        "false_alarms_precision" (the precision part alone), "false_alarm_ids",
        "false_alarm_ids_precision" (the ids of those cases, to rerun them), "kinks" (cases at a
        non-differentiable point, left out of the power figures), "worst_ratio_correct",
        "mutations": {"layer" | "element": {"both" | "precision": summary,
        "excluded": cases whose element mutation changes nothing}}, the ``layer``/``both``
        summary also at the top level (``detected_fraction``, ``smallest_detected_all``,
        ``median_threshold``, ``hardest``), "check_grads": {"n_cases", "false_alarms",
        "layer" | "element": summary, and the ``layer`` summary at the top level}}]}``,
        where a summary is ``{"detected_fraction": [per ε], "smallest_detected_all": ε |
        None (every case flags it), "median_threshold": ε | None, "hardest": [3 x {"id",
        "threshold"}]}``.
    """
    start = time.perf_counter()
    for dtype in dtypes:
        _check_choice(dtype, DTYPES, "dtype")
    records = []
    for dtype in dtypes:
        cases = power_cases(dtype, n_cases)
        ours = _power_ours(cases, progress, constants)
        theirs = _power_check_grads(cases[:check_grads_cases], progress)
        records.append({"dtype": dtype, **ours, "check_grads": theirs})
    return {
        "kind": "detection_power",
        "wall_s": time.perf_counter() - start,
        "constants": _constants(constants),
        "epsilons": list(EPSILONS),
        "check_grads_epsilons": list(CHECK_GRADS_EPSILONS),
        "dtypes": records,
    }


def _chosen_layer(case: Case) -> int:
    return int(np.random.default_rng(case.seed).integers(1, len(case.sizes)))


def verdicts_pass(
    dtype: Any, measured: dict[str, Any], formula: bool, constants: Constants = DEFAULT_CONSTANTS
) -> np.ndarray:
    """Whether each verdict of a batch of network measurements passes, without building
    the verdicts: the verifier's own vectorised rule (``rows_pass``)
    with the verdict's other reasons (NaN/Inf loss, a disagreeing witness).

    Args:
        dtype: the working dtype.
        measured: ``measure_network_many`` output for one candidate,
            with leading batch axes (cases, variants, ...).
        formula: judge with the formula part (else the precision part alone).
        constants: ``K`` and ``T``.

    Returns:
        A boolean array of the leading batch shape.
    """
    metrics = dict(measured["metrics"])
    if not formula:
        metrics = {k: v for k, v in metrics.items() if k not in FORMULA_KEYS}
    kink = np.asarray(measured["kinks"]).sum(axis=-1) > 0
    truth_bad = np.asarray(measured["truth_nonfinite"]) > 0
    rows = rows_pass(
        metrics,
        dtype,
        constants,
        kink_point=kink[..., None],
        truth_nonfinite=truth_bad[..., None],
    )
    ok = rows.all(axis=-1)
    ok &= np.isfinite(np.asarray(measured["loss"])) & np.isfinite(
        np.asarray(measured["loss_truth"])
    )
    if "witness" in measured:
        ok &= witness_agrees(measured["witness"])
    return ok


def _power_ours(cases: list[Case], progress: bool, constants: Constants) -> dict[str, Any]:
    eps = np.array((0.0, *EPSILONS))
    shape = (len(cases), len(EPSILONS))
    detected = {(m, mode): np.zeros(shape, bool) for m in MUTATIONS for mode in MODES}
    false_alarm_ids: dict[str, list[str]] = {mode: [] for mode in MODES}
    kinked = np.zeros(len(cases), bool)
    mutable = np.zeros(len(cases), bool)
    ids: list[str] = []
    worst = 0.0
    row = 0
    desc = f"power {cases[0].dtype}"
    with tqdm(total=len(cases), desc=desc, unit="case", disable=None if progress else True) as bar:
        for group in _groups(cases):
            net, batch = group[0].net, group[0].batch
            dtype = jnp.dtype(group[0].dtype)
            onehot = np.eye(net.depth)[[_chosen_layer(case) - 1 for case in group]]
            with jax.enable_x64(True):
                params, x, y, noise = _stacked_inputs(group)
                measured = _power_program(net)(
                    params, x, y, noise, jnp.asarray(onehot), jnp.asarray(eps)
                )
                measured = jax.tree_util.tree_map(np.asarray, measured)
            rows = slice(row, row + len(group))
            for mutation in MUTATIONS:
                for mode in MODES:
                    ok = verdicts_pass(dtype, measured[mutation], mode == "both", constants)
                    detected[mutation, mode][rows] = ~ok[:, 1:]
                    if mutation == "layer":
                        alarms = ~ok[:, 0]
                        false_alarm_ids[mode] += [
                            case.id for case, alarm in zip(group, alarms, strict=True) if alarm
                        ]
            kinked[rows] = np.asarray(measured["layer"]["kinks"])[:, 0].sum(axis=-1) > 0
            mutable[rows] = measured["mutable"]
            for i in range(len(group)):
                correct = jax.tree_util.tree_map(lambda a, i=i: a[i, 0], measured["layer"])
                verdict = network_verdict(net, dtype, batch, correct, constants)
                worst = max(worst, verdict.worst_ratio)
            ids += [case.id for case in group]  # rows follow the group order
            row += len(group)
            bar.update(len(group))
    # At a non-differentiable point the verifier abstains, so power is over the rest.
    smooth = ~kinked
    mutations = {}
    for mutation in MUTATIONS:
        keep = smooth & (mutable if mutation == "element" else True)
        kept_ids = [i for i, k in zip(ids, keep, strict=True) if k]
        mutations[mutation] = {
            mode: _power_summary(detected[mutation, mode][keep], EPSILONS, kept_ids)
            for mode in MODES
        }
        mutations[mutation]["excluded"] = int((smooth & ~keep).sum())
    return {
        "n_cases": len(cases),
        "false_alarms": len(false_alarm_ids["both"]),
        "false_alarms_precision": len(false_alarm_ids["precision"]),
        "false_alarm_ids": false_alarm_ids["both"],
        "false_alarm_ids_precision": false_alarm_ids["precision"],
        "kinks": int(kinked.sum()),
        "worst_ratio_correct": worst,
        **mutations["layer"]["both"],
        "mutations": mutations,
    }


def _power_summary(
    detected: np.ndarray, epsilons: Sequence[float], ids: Sequence[str]
) -> dict[str, Any]:
    if not len(ids):
        return {
            "detected_fraction": [0.0] * len(epsilons),
            "smallest_detected_all": None,
            "median_threshold": None,
            "hardest": [],
        }
    fraction = detected.mean(axis=0)
    all_detected = [eps for eps, f in zip(epsilons, fraction, strict=True) if f == 1.0]
    # Per case, the smallest ε detected with every larger ε detected too.
    thresholds = []
    for row in detected:
        misses = np.flatnonzero(~row)
        first_miss = misses[0] if misses.size else len(epsilons)
        thresholds.append(epsilons[first_miss - 1] if first_miss > 0 else np.inf)
    median = float(np.median(thresholds))
    hardest = np.argsort(thresholds, kind="stable")[::-1][:3]
    return {
        "detected_fraction": [float(f) for f in fraction],
        "smallest_detected_all": min(all_detected) if all_detected else None,
        "median_threshold": median if np.isfinite(median) else None,
        "hardest": [
            {
                "id": ids[i],
                "threshold": float(thresholds[i]) if np.isfinite(thresholds[i]) else None,
            }
            for i in hardest
        ],
    }


def _power_check_grads(cases: list[Case], progress: bool) -> dict[str, Any]:
    from jax.test_util import check_grads

    detected = {m: np.zeros((len(cases), len(CHECK_GRADS_EPSILONS)), bool) for m in MUTATIONS}
    false_alarms = 0
    desc = f"check_grads {cases[0].dtype}" if cases else "check_grads"
    enable = jnp.dtype(cases[0].dtype) == jnp.float64 if cases else False
    with (
        jax.enable_x64(enable),
        tqdm(total=len(cases), desc=desc, unit="case", disable=None if progress else True) as bar,
    ):
        for row, case in enumerate(cases):
            net = case.net
            dtype = jnp.dtype(case.dtype)
            params, x, y = case_data(case)
            params = jax.tree_util.tree_map(lambda a, d=dtype: jax.device_put(a.astype(d)), params)
            x, y = jax.device_put(x.astype(dtype)), jax.device_put(y.astype(dtype))
            onehot = jnp.asarray(np.eye(net.depth)[_chosen_layer(case) - 1], dtype)
            for mutation in MUTATIONS:
                for j, epsilon in enumerate((0.0, *CHECK_GRADS_EPSILONS)):
                    if mutation == "element" and j == 0:
                        continue  # the correct gradient is the same for both mutations
                    loss = _custom_vjp_loss(
                        net, x, y, onehot, jnp.asarray(epsilon, dtype), mutation == "element"
                    )
                    try:
                        check_grads(loss, (params,), order=1, modes=("rev",))
                        flagged = False
                    except AssertionError:
                        flagged = True
                    if j == 0:
                        false_alarms += flagged
                    else:
                        detected[mutation][row, j - 1] = flagged
            bar.update()
    ids = [case.id for case in cases]
    summaries = {m: _power_summary(detected[m], CHECK_GRADS_EPSILONS, ids) for m in MUTATIONS}
    return {
        "n_cases": len(cases),
        "false_alarms": int(false_alarms),
        **summaries["layer"],
        **summaries,
    }


@functools.cache
def _jitted_pieces(net: Network) -> tuple[Any, Any]:
    loss = jax.jit(lambda params, x, y: net.mean_loss_unchecked(params, x, y))

    def scaled_grad(params: Any, x: Array, y: Array, onehot: Array, eps: Array, element: Array):
        grads = backprop.manual_grad(net, params, x, y)
        masks = median_element_masks(grads, onehot)[0]
        return _scaled(grads, mutation_weights(onehot, masks, jnp.asarray(element)), eps)

    return loss, jax.jit(scaled_grad)


def _custom_vjp_loss(
    net: Network, x: Array, y: Array, onehot: Array, eps: Array, element: bool
) -> Callable:
    """The mean loss whose VJP is the manual gradient with one layer (or one element)
    scaled by ``1 + ε``."""
    loss, scaled_grad = _jitted_pieces(net)

    @jax.custom_vjp
    def f(params: Any) -> Array:
        return loss(params, x, y)

    def forward(params: Any) -> tuple[Array, Any]:
        return loss(params, x, y), params

    def backward(params: Any, cotangent: Array) -> tuple[Any]:
        grads = scaled_grad(params, x, y, onehot, eps, element)
        return (jax.tree_util.tree_map(lambda g: cotangent * g, grads),)

    f.defvjp(forward, backward)
    return f


def _check_choice(value: Any, allowed: Sequence[str], what: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a name (str), got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(allowed)}")
