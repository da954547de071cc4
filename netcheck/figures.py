"""Figures of a report: matplotlib renderers that read plain records and nothing else.

Each renderer takes one stage's JSON-able record (as found in ``results.json``) and returns
a :class:`matplotlib.figure.Figure`; none of them trains, times or verifies anything. The
figures are drawn on the Agg canvas directly (no ``pyplot``, no global backend switch), so
they render the same on a headless machine. :data:`FIGURES` lists every figure a report
draws, with the stage it reads and its caption; :func:`png_bytes` encodes one.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

Record = dict[str, Any]

# Colours and markers, fixed so a method looks the same in every figure.
METHOD_STYLE = {
    "manual": {"color": "#1f77b4", "marker": "o", "label": "manual (δ recursion)"},
    "autodiff": {"color": "#d62728", "marker": "s", "label": "jax.grad"},
    "roofline": {"color": "#555555", "marker": "^", "label": "roofline (matmuls only)"},
    "literal": {"color": "#9467bd", "marker": "D", "label": "literal (G(ℓ) matrices)"},
    "numpy_loop": {"color": "#8c564b", "marker": "v", "label": "numpy per-example loop"},
    "finite_differences": {"color": "#e377c2", "marker": "x", "label": "finite differences"},
}
DTYPE_FILL = {"float32": "full", "bfloat16": "none", "float16": "left", "float64": "bottom"}
_DPI = 80


def png_bytes(figure: Figure) -> bytes:
    """The figure encoded as PNG (deterministic: no timestamp in the metadata)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Figure, list[Any]]:
    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def _bench_rows(bench: Record, method: str, dtype: str) -> list[Record]:
    rows = [r for r in bench["results"] if r["dtype"] == dtype and method in r["methods"]]
    return sorted(rows, key=lambda r: r["flops"])


def _dtypes(bench: Record) -> list[str]:
    return sorted({r["dtype"] for r in bench["results"]}, key=list(DTYPE_FILL).index)


def _method_line(
    axis: Any, x: Sequence[float], y: Sequence[float], method: str, dtype: str, **extra: Any
) -> None:
    style = METHOD_STYLE[method]
    axis.plot(
        x,
        y,
        linestyle="none",
        marker=style["marker"],
        color=style["color"],
        fillstyle=DTYPE_FILL[dtype],
        label=f"{style['label']}, {dtype}",
        alpha=0.85,
        **extra,
    )


def bench_time_figure(bench: Record) -> Figure:
    """Step time vs step FLOPs, manual beside jax.grad (and the roofline), and their ratio.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels: median step time with its interquartile range; ``manual / jax.grad``
        per shape with the goals (1.00 median, 1.05 worst) drawn in.
    """
    figure, (times, ratios) = _figure(2)
    for dtype in _dtypes(bench):
        for method in ("manual", "autodiff", "roofline"):
            rows = _bench_rows(bench, method, dtype)
            if not rows:
                continue
            x = [r["flops"] for r in rows]
            stats = [r["methods"][method] for r in rows]
            median = np.array([s["median_s"] for s in stats])
            spread = np.array(
                [
                    [m - s["q25_s"] for m, s in zip(median, stats, strict=True)],
                    [s["q75_s"] - m for m, s in zip(median, stats, strict=True)],
                ]
            )
            _method_line(times, x, median, method, dtype)
            times.errorbar(
                x, median, yerr=spread, fmt="none", ecolor=METHOD_STYLE[method]["color"], alpha=0.5
            )
        rows = [r for r in _bench_rows(bench, "manual", dtype) if "manual_over_autodiff" in r]
        _method_line(
            ratios,
            [r["flops"] for r in rows],
            [r["manual_over_autodiff"] for r in rows],
            "manual",
            dtype,
        )
    times.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="median step time (s)",
        title="Step time (bars: interquartile range)",
    )
    times.legend(fontsize=7)
    ratios.axhline(1.0, color="black", linewidth=1, label="1.00 (median goal)")
    ratios.axhline(
        1.05, color="black", linestyle="--", linewidth=1, label="1.05 (worst-shape goal)"
    )
    ratios.set(
        xscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="manual / jax.grad step time",
        title="Manual over jax.grad, per shape",
    )
    ratios.legend(fontsize=7)
    return figure


def roofline_figure(bench: Record) -> Figure:
    """Throughput against the roofline: FLOP/s per method, and time as a multiple of it.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels: achieved FLOP/s (the step's matrix FLOPs over the median time) of every
        method, the roofline's being the device's own matmul rate at that shape; and
        ``time / roofline time`` of manual and jax.grad with the 1.15 goal drawn in.
    """
    figure, (rates, over) = _figure(2)
    for dtype in _dtypes(bench):
        for method in METHOD_STYLE:
            rows = _bench_rows(bench, method, dtype)
            if rows:
                _method_line(
                    rates,
                    [r["flops"] for r in rows],
                    [r["methods"][method]["flops_per_s"] for r in rows],
                    method,
                    dtype,
                )
        for method in ("manual", "autodiff"):
            rows = _bench_rows(bench, method, dtype)
            _method_line(
                over,
                [r["flops"] for r in rows],
                [r["methods"][method]["time_over_roofline"] for r in rows],
                method,
                dtype,
            )
    rates.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="FLOP/s (step FLOPs / median time)",
        title="Throughput",
    )
    rates.legend(fontsize=6)
    over.axhline(1.0, color="#555555", linewidth=1)
    over.axhline(
        1.15, color="black", linestyle="--", linewidth=1, label="1.15 (goal at the largest shape)"
    )
    over.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="step time / roofline time",
        title="Time as a multiple of the roofline",
    )
    over.legend(fontsize=7)
    return figure


def memory_figure(bench: Record) -> Figure:
    """Compiled temporary memory of manual and jax.grad per shape, and their difference.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels: temporary bytes vs step FLOPs; manual minus jax.grad bytes (goal <= 0).
    """
    figure, (sizes, difference) = _figure(2)
    for dtype in _dtypes(bench):
        for method in ("manual", "autodiff", "roofline"):
            rows = [
                r
                for r in _bench_rows(bench, method, dtype)
                if r["methods"][method]["temp_bytes"] is not None
            ]
            _method_line(
                sizes,
                [r["flops"] for r in rows],
                [max(r["methods"][method]["temp_bytes"], 1) for r in rows],
                method,
                dtype,
            )
        rows = [
            r
            for r in _bench_rows(bench, "manual", dtype)
            if r.get("manual_temp_bytes_minus_autodiff") is not None
        ]
        _method_line(
            difference,
            [r["flops"] for r in rows],
            [r["manual_temp_bytes_minus_autodiff"] for r in rows],
            "manual",
            dtype,
        )
    sizes.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="compiled temporary bytes",
        title="Compiled temporary memory (0 bytes drawn at 1)",
    )
    sizes.legend(fontsize=7)
    difference.axhline(0, color="black", linewidth=1, label="0 (goal: at or below)")
    difference.set(
        xscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="manual - jax.grad (bytes)",
        title="Manual minus jax.grad",
    )
    difference.legend(fontsize=7)
    return figure


def training_figure(training: Record) -> Figure:
    """Training curves of the manual gradient and jax.grad, and their difference.

    Args:
        training: a training-comparison record (``histories`` per gradient).

    Returns:
        Two panels: train and validation loss per epoch for both runs (they should lie on
        top of each other); ``|manual - jax.grad|`` train loss per epoch.
    """
    figure, (curves, gap) = _figure(2)
    styles = {"manual": "-", "autodiff": "--"}
    for grad, history in training["histories"].items():
        color = METHOD_STYLE[grad]["color"]
        label = METHOD_STYLE[grad]["label"]
        curves.plot(
            history["epoch"],
            history["train_loss"],
            styles[grad],
            color=color,
            label=f"{label}, train",
        )
        if history["validation_loss"]:
            curves.plot(
                history["epoch"],
                history["validation_loss"],
                styles[grad],
                color=color,
                alpha=0.5,
                label=f"{label}, validation",
            )
    curves.set(xlabel="epoch", ylabel="mean loss", title="Loss per epoch")
    curves.legend(fontsize=7)
    manual, auto = training["histories"]["manual"], training["histories"]["autodiff"]
    difference = np.abs(np.array(manual["train_loss"]) - np.array(auto["train_loss"]))
    # Exact ties are drawn at the smallest positive value so the log axis can show them.
    positive = difference[difference > 0]
    floor = positive.min() / 10 if positive.size else 1e-12
    gap.plot(manual["epoch"], np.maximum(difference, floor), "o-", color="#333333")
    gap.set(
        yscale="log",
        xlabel="epoch",
        ylabel="|manual - jax.grad| train loss",
        title="Gap between the two runs",
    )
    return figure


DTYPE_COLOR = {
    "float64": "#2ca02c",
    "float32": "#1f77b4",
    "bfloat16": "#ff7f0e",
    "float16": "#9467bd",
}


def _suite_dtypes(cases: Sequence[Record]) -> list[str]:
    order = list(DTYPE_COLOR)
    return sorted({c["dtype"] for c in cases}, key=lambda d: order.index(d) if d in order else 99)


def _positive(values: Sequence[float | None], floor: float) -> np.ndarray:
    """Values for a log axis: None (NaN/Inf in the record) drawn at the top (at least 10),
    zeros at ``floor``."""
    finite = [v for v in values if v is not None]
    top = max([*finite, 1.0]) * 10
    return np.array([top if v is None else max(v, floor) for v in values])


def _worst_error(case: Record) -> float | None:
    """A case's worst relative error over its layers; None if any layer's is NaN/Inf."""
    errors = [layer["worst_relative_error"] for layer in case["layers"]]
    return None if any(e is None for e in errors) else max(errors)


def agreement_figure(suite: Record) -> Figure:
    """Agreement per dtype against its tolerance: the distribution over cases.

    Args:
        suite: a ``netcheck.suite.run_suite`` record.

    Returns:
        Two panels, one column of points per dtype: each case's worst ``distance /
        tolerance`` (the verifier passes a case below 1), and its worst relative error.
    """
    figure, (ratios, errors) = _figure(2)
    cases = suite["cases"]
    dtypes = _suite_dtypes(cases)
    rng = np.random.default_rng(0)  # horizontal jitter only, for readability
    for index, dtype in enumerate(dtypes):
        mine = [c for c in cases if c["dtype"] == dtype]
        ratio = _positive([c["worst_ratio"] for c in mine], 1e-6)
        error = _positive([_worst_error(c) for c in mine], 1e-18)
        x = index + rng.uniform(-0.15, 0.15, len(mine))
        failed = np.array([not c["ok"] for c in mine])
        for axis, values in ((ratios, ratio), (errors, error)):
            axis.scatter(
                x[~failed], values[~failed], s=14, color=DTYPE_COLOR.get(dtype, "k"), alpha=0.8
            )
            axis.scatter(x[failed], values[failed], s=30, marker="x", color="red")
    ratios.axhline(1.0, color="black", linestyle="--", linewidth=1, label="tolerance")
    for axis in (ratios, errors):
        axis.set_xticks(range(len(dtypes)), dtypes)
        axis.set_xlim(-0.5, len(dtypes) - 0.5)
        axis.set_yscale("log")
    ratios.set(
        ylabel="worst distance / tolerance per case",
        title=f"Manual vs float64 truth, {len(cases)} cases (x: failed)",
    )
    ratios.legend(fontsize=7)
    errors.set(
        ylabel="worst relative error per case",
        title="Relative error by dtype (NaN/Inf drawn at the top)",
    )
    return figure


def layer_error_heatmap(suite: Record) -> Figure:
    """Per-layer error: ``log10(distance / tolerance)`` per case (rows) and layer (columns).

    Args:
        suite: a ``netcheck.suite.run_suite`` record.

    Returns:
        A heat map; cells left blank where a case's network has fewer layers, and NaN/Inf
        drawn at the top of the colour scale.
    """
    cases = suite["cases"]
    depth = max(len(c["layers"]) for c in cases)
    grid = np.full((len(cases), depth), np.nan)
    for row, case in enumerate(cases):
        for layer in case["layers"]:
            ratio = layer["worst_ratio"]
            grid[row, layer["layer"] - 1] = 3.0 if ratio is None else np.log10(max(ratio, 1e-6))
    height = min(2.0 + 0.13 * len(cases), 30.0)
    figure = Figure(figsize=(7.5, height), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(
        grid, aspect="auto", cmap="RdYlGn_r", vmin=-4, vmax=2, interpolation="nearest"
    )
    axis.set_xticks(range(depth), [f"ℓ={layer}" for layer in range(1, depth + 1)])
    axis.set_yticks(range(len(cases)), [c["id"] for c in cases], fontsize=5)
    axis.set_title("Per-layer worst distance / tolerance (log10; above 0 fails)")
    figure.colorbar(image, ax=axis, label="log10(distance / tolerance)")
    return figure


KILL_COLORS = {"localised": "#2ca02c", "killed": "#ffbf00", "survived": "#d62728", "n/a": "#eeeeee"}


def kill_matrix_figure(kill: Record) -> Figure:
    """The planted-bug kill matrix: each mutant (rows) on each kill case (columns).

    Args:
        kill: a ``netcheck.suite.kill_matrix`` record.

    Returns:
        A grid coloured green (caught at the layer where the bug is), amber (caught,
        another layer named), red (survived), grey (the mutant does not apply there); the
        first row is the correct code, green where it passes and red on a false alarm.
    """
    case_ids = [c["id"] for c in kill["control"]]
    column = {case_id: i for i, case_id in enumerate(case_ids)}
    codes = list(KILL_COLORS)
    grid = np.full((len(kill["mutants"]) + 1, len(case_ids)), codes.index("n/a"))
    for case in kill["control"]:
        grid[0, column[case["id"]]] = codes.index("localised" if case["ok"] else "survived")
    for row, mutant in enumerate(kill["mutants"], start=1):
        for case in mutant["cases"]:
            state = (
                ("localised" if case["localised"] else "killed") if case["killed"] else ("survived")
            )
            grid[row, column[case["id"]]] = codes.index(state)
    height = 1.5 + 0.32 * grid.shape[0]
    figure = Figure(figsize=(max(7.0, 0.35 * len(case_ids) + 3), height), layout="constrained")
    axis = figure.subplots()
    axis.imshow(
        grid,
        aspect="auto",
        cmap=ListedColormap(list(KILL_COLORS.values())),
        vmin=-0.5,
        vmax=len(codes) - 0.5,
        interpolation="nearest",
    )
    axis.set_yticks(
        range(grid.shape[0]), ["(correct code)"] + [m["name"] for m in kill["mutants"]], fontsize=7
    )
    axis.set_xticks(range(len(case_ids)), case_ids, rotation=90, fontsize=5)
    axis.set_title(
        "Kill matrix: green caught at the right layer, amber caught elsewhere, red survived",
        fontsize=9,
    )
    return figure


def detection_power_figure(power: Record) -> Figure:
    """Detection power per dtype, the verifier beside ``jax.test_util.check_grads``.

    Args:
        power: a ``netcheck.suite.detection_power`` record.

    Returns:
        The fraction of cases flagged when one layer's gradient is scaled by ``1 + ε``,
        against ``ε`` (log axis), solid for netcheck, dashed for check_grads; false alarms
        (``ε = 0``) in the legend.
    """
    figure, (axis,) = _figure(1, width=7.5, height=4.5)
    for entry in power["dtypes"]:
        color = DTYPE_COLOR.get(entry["dtype"], "k")
        axis.plot(
            power["epsilons"],
            entry["detected_fraction"],
            "-o",
            markersize=3,
            color=color,
            label=f"netcheck {entry['dtype']} "
            f"({entry['false_alarms']}/{entry['n_cases']} false alarms)",
        )
        theirs = entry["check_grads"]
        if theirs["n_cases"]:
            axis.plot(
                power["check_grads_epsilons"],
                theirs["detected_fraction"],
                "--s",
                markersize=3,
                color=color,
                alpha=0.7,
                label=f"check_grads {entry['dtype']} "
                f"({theirs['false_alarms']}/{theirs['n_cases']} false alarms)",
            )
    axis.set(
        xscale="log",
        xlabel="ε (one layer's gradient scaled by 1 + ε)",
        ylabel="fraction of cases flagged",
        ylim=(-0.03, 1.03),
        title="Detection power: smaller ε caught = more sensitive",
    )
    axis.legend(fontsize=6)
    return figure


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a report: its file, the stage it reads, its renderer and caption."""

    filename: str
    stage: str
    render: Callable[[Record], Figure]
    caption: str


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "agreement.png",
        "verification",
        agreement_figure,
        "Agreement per dtype against its tolerance: each case's worst distance / tolerance.",
    ),
    FigureSpec(
        "layer_errors.png",
        "verification",
        layer_error_heatmap,
        "Per-layer error heat map: log10(distance / tolerance) per case and layer.",
    ),
    FigureSpec(
        "kill_matrix.png",
        "kill_matrix",
        kill_matrix_figure,
        "Planted bugs against the verifier: caught, and at which layer.",
    ),
    FigureSpec(
        "detection_power.png",
        "detection_power",
        detection_power_figure,
        "Detection power per dtype: netcheck's verifier beside jax.test_util.check_grads.",
    ),
    FigureSpec(
        "bench_time.png",
        "bench",
        bench_time_figure,
        "Step time vs size, manual beside jax.grad, and their ratio per shape.",
    ),
    FigureSpec(
        "bench_roofline.png",
        "bench",
        roofline_figure,
        "Throughput (FLOP/s) of every method and step time as a multiple of the roofline.",
    ),
    FigureSpec(
        "bench_memory.png",
        "bench",
        memory_figure,
        "Compiled temporary memory of manual and jax.grad per shape.",
    ),
    FigureSpec(
        "training.png",
        "training",
        training_figure,
        "Training curves with the manual gradient and with jax.grad, from the same start.",
    ),
)
"""Every figure a report draws, in the order it shows them."""
