"""Figures of a report: matplotlib renderers that read plain records and nothing else.

Each figure is two functions: a pure ``*_data(record)`` that takes what is plotted out of
one stage's JSON-able record (plain lists and arrays, testable against the raw record),
and a renderer that draws exactly that data into a ``matplotlib.figure.Figure``.
Every plotted series carries a ``gid`` (``"ratio:float32"``) so that what a figure shows
can be read back from its artists. None of them trains, times or verifies anything.

Legibility: every figure is ``WIDTH_IN`` x ``DPI`` = 1200 px wide, shown at that
size by the page, with no text below ``MIN_FONT_PT`` (9 pt at 100% zoom); log axes
carry plain tick labels (``0.5``, ``2``, ``10⁻⁶``), and where a zero or a NaN/Inf has to
be drawn on one, a labelled line says where. Long case names stay off the axes: cases are
short ids (``c07``, ``k3``) keyed in a legend table of the report.

Figures are drawn on the Agg canvas directly (no ``pyplot``, no global backend switch).
``FIGURES`` lists every figure a report draws, with the stage it reads and its
caption; ``png_bytes`` encodes one.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from netcheck.report.tables import KILL_PREFIX, VERIFICATION_PREFIX, short_ids

Record = dict[str, Any]
Series = dict[str, list[Any]]

DPI = 100
WIDTH_IN = 12.0
"""Every figure is ``WIDTH_IN * DPI`` = 1200 px wide."""

MIN_FONT_PT = 9.0
STYLE = {
    "font.size": 11.0,
    "axes.titlesize": 12.0,
    "axes.labelsize": 11.0,
    "xtick.labelsize": 10.0,
    "ytick.labelsize": 10.0,
    "legend.fontsize": 10.0,
    "legend.title_fontsize": 10.0,
    "figure.titlesize": 13.0,
}
"""Font sizes in points, none below ``MIN_FONT_PT``; applied while a figure is drawn."""

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
DTYPE_COLOR = {
    "float64": "#2ca02c",
    "float32": "#1f77b4",
    "bfloat16": "#ff7f0e",
    "float16": "#9467bd",
}
KILL_COLORS = {"localised": "#2ca02c", "killed": "#ffbf00", "survived": "#d62728", "n/a": "#bbbbbb"}
KILL_MEANING = {
    "localised": "caught, and the layer where the bug sits named",
    "killed": "caught, another layer named",
    "survived": "not caught (on the correct-code row: a false alarm)",
    "n/a": "not run: the bug does not apply to this network",
}
CORRECT_CODE_ROW = "correct code"


def png_bytes(figure: Figure) -> bytes:
    """The figure encoded as PNG at ``DPI`` (deterministic: no timestamp in it)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _styled(render: Callable[[Record], Figure]) -> Callable[[Record], Figure]:
    """Draw ``render``'s figure under ``STYLE`` (font sizes are read as artists are made)."""

    @functools.wraps(render)
    def styled(record: Record) -> Figure:
        with matplotlib.rc_context(STYLE):
            return render(record)

    return styled


def _figure(ncols: int = 1, height: float = 5.0) -> tuple[Figure, list[Any]]:
    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


# ----- readable log axes ---------------------------------------------------------------


PLAIN_RANGE = (1e-3, 1e5)
"""A log axis lying within this range gets plain tick labels (``0.002``, ``0.5``, ``300``)."""


def tick_text(value: float, plain: bool) -> str:
    """A log-axis tick label, never ``1.8×10^0``.

    Args:
        value: the tick's value.
        plain: the axis lies within ``PLAIN_RANGE``: plain numbers (``0.5``, ``2``,
            ``5000``); otherwise powers of ten as ``10⁻⁶`` and other values as ``2e-6``.
    """
    if value <= 0 or not math.isfinite(value):
        return ""
    if plain:
        text = f"{value:.3g}"
        return f"{value:.0f}" if "e" in text else text
    exponent = round(math.log10(value))
    if math.isclose(value, 10.0**exponent, rel_tol=1e-9):
        return f"$10^{{{exponent}}}$"
    mantissa, power = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(power)}"


def _readable_log(axis: Any, which: str) -> None:
    """Readable tick labels on a log axis (``tick_text``); minor ticks (2, 5) labelled
    when the axis spans less than two decades."""
    scale = axis.xaxis if which == "x" else axis.yaxis

    def label(value: float, minor: bool) -> str:
        low, high = sorted(scale.get_view_interval())
        if minor and not (low > 0 and math.log10(high / low) < 2):
            return ""
        plain = PLAIN_RANGE[0] <= low and high <= PLAIN_RANGE[1]
        return tick_text(value, plain)

    scale.set_major_locator(LogLocator(base=10))
    scale.set_major_formatter(FuncFormatter(lambda value, _: label(value, minor=False)))
    scale.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    scale.set_minor_formatter(FuncFormatter(lambda value, _: label(value, minor=True)))


def _legend_below(axis: Any, ncols: int = 2) -> None:
    """The axis' legend under it, off the data."""
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=ncols, frameon=False)


def log_positions(
    values: Sequence[float | None], every: Sequence[float | None] | None = None
) -> tuple[np.ndarray, float | None, float | None]:
    """Values placed on a log axis: positives as they are, zeros and NaN/Inf on marked lines.

    Args:
        values: the values; None stands for NaN/Inf (as in the records).
        every: all values of the axis (default ``values``), so that several series share
            one placement.

    Returns:
        ``(positions, zero_at, nonfinite_at)``: zeros sit at ``zero_at``, a decade below
        the axis' smallest positive value, and None at ``nonfinite_at``, a decade above its
        largest; each is None when no value of the axis needs it.
    """
    every = values if every is None else every
    positive = [v for v in every if v is not None and v > 0]
    low = 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-6
    high = 10.0 ** (math.ceil(math.log10(max(positive))) + 1) if positive else 1.0
    zero_at = low if any(v is not None and v <= 0 for v in every) else None
    nonfinite_at = high if any(v is None for v in every) else None
    positions = np.array([high if v is None else (v if v > 0 else low) for v in values])
    return positions, zero_at, nonfinite_at


def _mark(axis: Any, zero_at: float | None, nonfinite_at: float | None, what: str = "0") -> None:
    """Labelled lines where ``log_positions`` put zeros and NaN/Inf."""
    if zero_at is not None:
        axis.axhline(
            zero_at, color="#777777", linestyle=":", linewidth=1.2, label=f"{what} drawn here"
        )
    if nonfinite_at is not None:
        axis.axhline(
            nonfinite_at, color="red", linestyle=":", linewidth=1.2, label="NaN/Inf drawn here"
        )


# ----- the benchmark -------------------------------------------------------------------


def _dtypes(bench: Record) -> list[str]:
    order = list(DTYPE_FILL)
    return sorted({r["dtype"] for r in bench["results"]}, key=order.index)


def _rows(bench: Record, method: str, dtype: str) -> list[Record]:
    rows = [r for r in bench["results"] if r["dtype"] == dtype and method in r["methods"]]
    return sorted(rows, key=lambda r: (r["flops"], r["width"]))


def _points(
    axis: Any, series: Series, method: str, dtype: str, gid: str, bars: bool = False
) -> None:
    style = METHOD_STYLE[method]
    (line,) = axis.plot(
        series["x"],
        series["y"],
        linestyle="none",
        marker=style["marker"],
        markersize=7,
        color=style["color"],
        fillstyle=DTYPE_FILL[dtype],
        label=f"{style['label']}, {dtype}",
        alpha=0.9,
    )
    line.set_gid(gid)
    if bars:
        y = np.asarray(series["y"], dtype=float)
        spread = [y - np.asarray(series["low"]), np.asarray(series["high"]) - y]
        axis.errorbar(series["x"], y, yerr=spread, fmt="none", ecolor=style["color"], alpha=0.5)


def step_time_data(bench: Record) -> dict[str, Series]:
    """``"method:dtype"`` -> median step time (``y``) and quartiles against step FLOPs (``x``)."""
    data = {}
    for dtype in _dtypes(bench):
        for method in ("manual", "autodiff", "roofline"):
            rows = _rows(bench, method, dtype)
            if rows:
                stats = [r["methods"][method] for r in rows]
                data[f"{method}:{dtype}"] = {
                    "x": [r["flops"] for r in rows],
                    "y": [s["median_s"] for s in stats],
                    "low": [s["q25_s"] for s in stats],
                    "high": [s["q75_s"] for s in stats],
                }
    return data


def ratio_data(bench: Record) -> dict[str, Series]:
    """``dtype`` -> manual / jax.grad paired ratio per shape (``y``) and its interval."""
    data = {}
    for dtype in _dtypes(bench):
        rows = [r for r in _rows(bench, "manual", dtype) if "manual_over_autodiff" in r]
        if rows:
            data[dtype] = {
                "x": [r["flops"] for r in rows],
                "y": [r["manual_over_autodiff"] for r in rows],
                "low": [r["manual_over_autodiff_interval"][0] for r in rows],
                "high": [r["manual_over_autodiff_interval"][1] for r in rows],
            }
    return data


@_styled
def bench_time_figure(bench: Record) -> Figure:
    """Step time vs step FLOPs, manual beside jax.grad (and the roofline), and their ratio.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels: ``step_time_data`` (bars: interquartile range), gids
        ``"time:method:dtype"``; ``ratio_data`` (bars: 95% interval), gids
        ``"ratio:dtype"``, with the goals (1.00 median, 1.05 worst shape) drawn in.
    """
    from netcheck.bench.step import MAX_RATIO_GOAL, MEDIAN_RATIO_GOAL

    figure, (times, ratios) = _figure(2)
    for key, series in step_time_data(bench).items():
        method, dtype = key.split(":")
        _points(times, series, method, dtype, f"time:{key}", bars=True)
    for dtype, series in ratio_data(bench).items():
        _points(ratios, series, "manual", dtype, f"ratio:{dtype}", bars=True)
    times.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="median step time (s)",
        title="Step time (bars: interquartile range)",
    )
    ratios.axhline(MEDIAN_RATIO_GOAL, color="black", linewidth=1, label="1.00 (median goal)")
    ratios.axhline(
        MAX_RATIO_GOAL, color="black", linestyle="--", linewidth=1, label="1.05 (worst-shape goal)"
    )
    ratios.set(
        xscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="manual / jax.grad step time",
        title="manual / jax.grad per shape (bars: 95% interval)",
    )
    for axis in (times, ratios):
        _readable_log(axis, "x")
    _readable_log(times, "y")
    _legend_below(times)
    _legend_below(ratios)
    return figure


def roofline_data(bench: Record) -> dict[str, dict[str, Series]]:
    """What the roofline figure plots.

    Returns:
        ``{"rate": {"method:dtype": {x: FLOPs, y: FLOP/s}}, "over": {"method:dtype": {x,
        y: time / roofline time, low, high: its interval}}}``; FLOP/s is the step's matrix
        FLOPs over the median time, ``over`` is manual and jax.grad only.
    """
    rate, over = {}, {}
    for dtype in _dtypes(bench):
        for method in METHOD_STYLE:
            rows = _rows(bench, method, dtype)
            if rows:
                rate[f"{method}:{dtype}"] = {
                    "x": [r["flops"] for r in rows],
                    "y": [r["methods"][method]["flops_per_s"] for r in rows],
                }
        for method in ("manual", "autodiff"):
            rows = _rows(bench, method, dtype)
            if rows:
                stats = [r["methods"][method] for r in rows]
                over[f"{method}:{dtype}"] = {
                    "x": [r["flops"] for r in rows],
                    "y": [s["time_over_roofline"] for s in stats],
                    "low": [s["time_over_roofline_interval"][0] for s in stats],
                    "high": [s["time_over_roofline_interval"][1] for s in stats],
                }
    return {"rate": rate, "over": over}


@_styled
def roofline_figure(bench: Record) -> Figure:
    """Throughput against the roofline: FLOP/s per method, and time as a multiple of it.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels of ``roofline_data``: achieved FLOP/s of every method (gids
        ``"rate:method:dtype"``), the roofline's being the device's own matmul rate at that
        shape; and ``time / roofline time`` of manual and jax.grad (gids
        ``"over:method:dtype"``, bars: 95% interval) with the 1.15 goal drawn in.
    """
    from netcheck.bench.step import ROOFLINE_GOAL

    figure, (rates, over) = _figure(2)
    data = roofline_data(bench)
    for key, series in data["rate"].items():
        method, dtype = key.split(":")
        _points(rates, series, method, dtype, f"rate:{key}")
    for key, series in data["over"].items():
        method, dtype = key.split(":")
        _points(over, series, method, dtype, f"over:{key}", bars=True)
    rates.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="FLOP/s (step FLOPs / median time)",
        title="Throughput",
    )
    over.axhline(1.0, color="#555555", linewidth=1, label="1 (as fast as the matmuls alone)")
    over.axhline(
        ROOFLINE_GOAL,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"{ROOFLINE_GOAL:.2f} (goal at the largest shape)",
    )
    over.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="step time / roofline time",
        title="Time as a multiple of the roofline (bars: 95% interval)",
    )
    for axis in (rates, over):
        _readable_log(axis, "x")
        _readable_log(axis, "y")
    _legend_below(rates)
    _legend_below(over)
    return figure


def memory_data(bench: Record) -> dict[str, dict[str, Series]]:
    """``{"bytes": {"method:dtype": {x: FLOPs, y: temp bytes}}, "difference": {dtype: {x,
    y: manual - jax.grad bytes}}}``, shapes without a memory analysis left out."""
    sizes, difference = {}, {}
    for dtype in _dtypes(bench):
        for method in ("manual", "autodiff", "roofline"):
            rows = [
                r
                for r in _rows(bench, method, dtype)
                if r["methods"][method]["temp_bytes"] is not None
            ]
            if rows:
                sizes[f"{method}:{dtype}"] = {
                    "x": [r["flops"] for r in rows],
                    "y": [r["methods"][method]["temp_bytes"] for r in rows],
                }
        rows = [
            r
            for r in _rows(bench, "manual", dtype)
            if r.get("manual_temp_bytes_minus_autodiff") is not None
        ]
        if rows:
            difference[dtype] = {
                "x": [r["flops"] for r in rows],
                "y": [r["manual_temp_bytes_minus_autodiff"] for r in rows],
            }
    return {"bytes": sizes, "difference": difference}


@_styled
def memory_figure(bench: Record) -> Figure:
    """Compiled temporary memory of manual and jax.grad per shape, and their difference.

    Args:
        bench: a ``netcheck.bench`` record.

    Returns:
        Two panels of ``memory_data``: temporary bytes vs step FLOPs (log axis, 0 bytes
        on a marked line; gids ``"bytes:method:dtype"``); manual minus jax.grad bytes
        (goal <= 0; gids ``"difference:dtype"``).
    """
    figure, (sizes, difference) = _figure(2)
    data = memory_data(bench)
    every = [v for series in data["bytes"].values() for v in series["y"]]
    zero_at = None
    for key, series in data["bytes"].items():
        method, dtype = key.split(":")
        positions, zero_at, _ = log_positions(series["y"], every)
        _points(sizes, {"x": series["x"], "y": positions}, method, dtype, f"bytes:{key}")
    _mark(sizes, zero_at, None, "0 bytes")
    for dtype, series in data["difference"].items():
        _points(difference, series, "manual", dtype, f"difference:{dtype}")
    sizes.set(
        xscale="log",
        yscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="compiled temporary bytes",
        title="Compiled temporary memory",
    )
    difference.axhline(0, color="black", linewidth=1, label="0 (goal: at or below)")
    difference.set(
        xscale="log",
        xlabel="matrix-product FLOPs per step",
        ylabel="manual - jax.grad (bytes)",
        title="manual minus jax.grad",
    )
    _readable_log(sizes, "y")
    for axis in (sizes, difference):
        _readable_log(axis, "x")
    _legend_below(sizes)
    _legend_below(difference)
    return figure


# ----- training ------------------------------------------------------------------------


def training_data(training: Record) -> dict[str, Series]:
    """``"train:grad"`` / ``"validation:grad"`` loss per epoch, and ``"gap"``:
    ``|manual - jax.grad|`` train loss per epoch."""
    data = {}
    for grad, history in training["histories"].items():
        data[f"train:{grad}"] = {"x": history["epoch"], "y": history["train_loss"]}
        if history.get("validation_loss"):
            data[f"validation:{grad}"] = {"x": history["epoch"], "y": history["validation_loss"]}
    manual, auto = training["histories"]["manual"], training["histories"]["autodiff"]
    gap = np.abs(np.array(manual["train_loss"]) - np.array(auto["train_loss"]))
    data["gap"] = {"x": manual["epoch"], "y": gap.tolist()}
    return data


@_styled
def training_figure(training: Record) -> Figure:
    """Training curves of the manual gradient and jax.grad, and their difference.

    Args:
        training: a training-comparison record (``histories`` per gradient).

    Returns:
        Two panels of ``training_data``: train and validation loss per epoch for both
        runs (they should lie on top of each other; gids ``"train:grad"``,
        ``"validation:grad"``); ``|manual - jax.grad|`` train loss per epoch on a log axis,
        exact ties on a marked line (gid ``"gap"``).
    """
    figure, (curves, gap) = _figure(2)
    styles = {"manual": "-", "autodiff": "--"}
    data = training_data(training)
    for key, series in data.items():
        if key == "gap":
            continue
        kind, grad = key.split(":")
        (line,) = curves.plot(
            series["x"],
            series["y"],
            styles[grad],
            color=METHOD_STYLE[grad]["color"],
            alpha=1.0 if kind == "train" else 0.5,
            linewidth=2,
            label=f"{METHOD_STYLE[grad]['label']}, {kind}",
        )
        line.set_gid(key)
    curves.set(xlabel="epoch", ylabel="mean loss", title="Loss per epoch")
    curves.legend(loc="upper right")
    positions, zero_at, _ = log_positions(data["gap"]["y"])
    (line,) = gap.plot(data["gap"]["x"], positions, "o-", color="#333333", label="|difference|")
    line.set_gid("gap")
    _mark(gap, zero_at, None, "exact tie (0)")
    gap.set(
        yscale="log",
        xlabel="epoch",
        ylabel="|manual - jax.grad| train loss",
        title="Gap between the two runs",
    )
    _readable_log(gap, "y")
    gap.legend(loc="best")
    return figure


# ----- the verification suite ----------------------------------------------------------


def _suite_dtypes(cases: Sequence[Record]) -> list[str]:
    order = list(DTYPE_COLOR)
    return sorted({c["dtype"] for c in cases}, key=lambda d: order.index(d) if d in order else 99)


def _worst_error(case: Record) -> float | None:
    """A case's worst relative error over its layers; None if any layer's is NaN/Inf."""
    errors = [layer["worst_relative_error"] for layer in case["layers"]]
    return None if any(e is None for e in errors) else max(errors)


def agreement_data(suite: Record) -> dict[str, dict[str, list[Any]]]:
    """``dtype`` -> per case its worst ``distance / tolerance`` (``ratio``), worst relative
    error (``error``; None for NaN/Inf) and whether it ``failed``."""
    cases = suite["cases"]
    return {
        dtype: {
            "ratio": [c["worst_ratio"] for c in cases if c["dtype"] == dtype],
            "error": [_worst_error(c) for c in cases if c["dtype"] == dtype],
            "failed": [not c["ok"] for c in cases if c["dtype"] == dtype],
        }
        for dtype in _suite_dtypes(cases)
    }


@_styled
def agreement_figure(suite: Record) -> Figure:
    """Agreement per dtype against its tolerance: the distribution over cases.

    Args:
        suite: a ``netcheck.bench.suite.run_suite`` record.

    Returns:
        Two panels of ``agreement_data``, one column of points per dtype (gids
        ``"ratio:dtype"``, ``"error:dtype"``; failed cases as red crosses, gids
        ``"ratio-failed:dtype"`` ...): each case's worst ``distance / tolerance`` (the
        verifier passes a case below 1), and its worst relative error; exact zeros and
        NaN/Inf on marked lines.
    """
    figure, (ratios, errors) = _figure(2)
    data = agreement_data(suite)
    rng = np.random.default_rng(0)  # horizontal jitter only, for readability
    for axis, field in ((ratios, "ratio"), (errors, "error")):
        axis.set_yscale("log")
        every = [v for d in data.values() for v in d[field]]
        _, zero_at, nonfinite_at = log_positions(every)
        for index, (dtype, values) in enumerate(data.items()):
            positions = log_positions(values[field], every)[0]
            x = index + rng.uniform(-0.15, 0.15, len(positions))
            failed = np.array(values["failed"], dtype=bool)
            good = axis.scatter(
                x[~failed], positions[~failed], s=30, color=DTYPE_COLOR.get(dtype, "k"), alpha=0.8
            )
            good.set_gid(f"{field}:{dtype}")
            bad = axis.scatter(x[failed], positions[failed], s=60, marker="x", color="red")
            bad.set_gid(f"{field}-failed:{dtype}")
        _mark(axis, zero_at, nonfinite_at, "exact 0")
        axis.set_xticks(range(len(data)), list(data))
        axis.set_xlim(-0.5, len(data) - 0.5)
        _readable_log(axis, "y")
    ratios.axhline(1.0, color="black", linestyle="--", linewidth=1, label="tolerance (fails above)")
    n_cases = len(suite["cases"])
    ratios.set(
        ylabel="worst distance / tolerance per case",
        title=f"manual vs float64 truth, {n_cases} cases (red x: failed)",
    )
    errors.set(ylabel="worst relative error per case", title="Relative error by dtype")
    ratios.legend(loc="lower right")
    if errors.get_legend_handles_labels()[0]:
        errors.legend(loc="lower right")
    return figure


HEATMAP_RANGE = (-4.0, 2.0)
"""The heat map's colour scale, log10(distance / tolerance): exact zeros (and anything
below) at the bottom, NaN/Inf at the top."""

_ROWS_PER_PANEL, _MAX_PANELS = 20, 6


def heatmap_data(suite: Record) -> dict[str, Any]:
    """What the heat map shows.

    Returns:
        ``{"ids": short ids (``c01`` ...) in the record's order, "values": (cases, depth)
        float array of log10(distance / tolerance) per case and layer ℓ (column ℓ-1),
        clipped to ``HEATMAP_RANGE``, NaN/Inf at its top, NaN where a network has no
        such layer}``.
    """
    cases = suite["cases"]
    depth = max(len(c["layers"]) for c in cases)
    low, high = HEATMAP_RANGE
    values = np.full((len(cases), depth), np.nan)
    for row, case in enumerate(cases):
        for layer in case["layers"]:
            ratio = layer["worst_ratio"]
            if ratio is None:
                value = high
            elif ratio <= 0:
                value = low
            else:
                value = min(max(math.log10(ratio), low), high)
            values[row, layer["layer"] - 1] = value
    ids = short_ids([c["id"] for c in cases], VERIFICATION_PREFIX)
    return {"ids": [ids[c["id"]] for c in cases], "values": values}


@_styled
def layer_error_heatmap(suite: Record) -> Figure:
    """Per-layer error: ``log10(distance / tolerance)`` per case (rows) and layer (columns).

    Args:
        suite: a ``netcheck.bench.suite.run_suite`` record.

    Returns:
        ``heatmap_data`` as a heat map, cases in up to 6 side-by-side panels of about 20
        rows (short ids keyed in the report's legend table; each panel's image has gid
        ``"heatmap:<panel>"``); blank where a case's network has fewer layers.
    """
    data = heatmap_data(suite)
    values, ids = data["values"], data["ids"]
    n_panels = min(_MAX_PANELS, max(1, math.ceil(len(ids) / _ROWS_PER_PANEL)))
    per_panel = math.ceil(len(ids) / n_panels)
    height = 2.2 + 0.2 * per_panel
    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    low, high = HEATMAP_RANGE
    image = None
    for panel, axis in enumerate(axes):
        rows = slice(panel * per_panel, (panel + 1) * per_panel)
        image = axis.imshow(
            values[rows],
            aspect="auto",
            cmap="RdYlGn_r",
            vmin=low,
            vmax=high,
            interpolation="nearest",
        )
        image.set_gid(f"heatmap:{panel}")
        depth = values.shape[1]
        axis.set_xticks(range(depth), [f"ℓ={layer}" for layer in range(1, depth + 1)])
        axis.set_yticks(range(len(ids[rows])), ids[rows])
        axis.tick_params(axis="y", labelsize=MIN_FONT_PT)
    figure.suptitle(
        "Per-layer worst distance / tolerance, log10: above 0 fails; "
        "exact 0 drawn at the bottom (-4), NaN/Inf at the top (2)"
    )
    figure.colorbar(image, ax=list(axes), label="log10(distance / tolerance)")
    return figure


# ----- the kill matrix -----------------------------------------------------------------


def kill_data(kill: Record) -> dict[str, Any]:
    """What the kill matrix shows.

    Returns:
        ``{"rows": ["correct code", mutant names...], "columns": short case ids (``k1``
        ...), "states": rows x columns of ``"localised" | "killed" | "survived" | "n/a"``}``;
        on the correct-code row a pass is ``"localised"`` (green) and a false alarm
        ``"survived"`` (red).
    """
    case_ids = [c["id"] for c in kill["control"]]
    for mutant in kill["mutants"]:
        case_ids += [c["id"] for c in mutant["cases"]]
    ids = short_ids(case_ids, KILL_PREFIX)
    column = {full: i for i, full in enumerate(ids)}
    states = [["n/a"] * len(ids) for _ in range(len(kill["mutants"]) + 1)]
    for case in kill["control"]:
        states[0][column[case["id"]]] = "localised" if case["ok"] else "survived"
    for row, mutant in enumerate(kill["mutants"], start=1):
        for case in mutant["cases"]:
            if not case["killed"]:
                state = "survived"
            else:
                state = "localised" if case["localised"] else "killed"
            states[row][column[case["id"]]] = state
    return {
        "rows": [CORRECT_CODE_ROW] + [m["name"] for m in kill["mutants"]],
        "columns": list(ids.values()),
        "states": states,
    }


@_styled
def kill_matrix_figure(kill: Record) -> Figure:
    """The planted-bug kill matrix: each mutant (rows) on each kill case (columns).

    Args:
        kill: a ``netcheck.bench.suite.kill_matrix`` record.

    Returns:
        ``kill_data`` as a grid (image gid ``"kill"``, one pixel per cell) coloured by
        ``KILL_COLORS``, with a legend of what each colour means; the first row, set
        apart by a line, is the correct code: green where it passes, red on a false alarm.
    """
    data = kill_data(kill)
    codes = list(KILL_COLORS)
    grid = np.array([[codes.index(state) for state in row] for row in data["states"]])
    height = 2.6 + 0.32 * grid.shape[0]
    figure = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(
        grid,
        aspect="auto",
        cmap=ListedColormap(list(KILL_COLORS.values())),
        vmin=-0.5,
        vmax=len(codes) - 0.5,
        interpolation="nearest",
    )
    image.set_gid("kill")
    axis.axhline(0.5, color="black", linewidth=2.5)
    axis.set_yticks(range(grid.shape[0]), data["rows"])
    axis.set_xticks(range(grid.shape[1]), data["columns"])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("kill case (ids keyed in the table below)")
    axis.set_title("Planted bugs (rows) on the kill cases (columns); top row: the correct code")
    handles = [
        Patch(facecolor=color, edgecolor="#444444", label=KILL_MEANING[state])
        for state, color in KILL_COLORS.items()
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return figure


# ----- detection power -----------------------------------------------------------------


POWER_CHECKERS = {
    "both": ("netcheck", "-o", 1.0),
    "precision": ("precision alone", ":^", 0.8),
    "check_grads": ("check_grads", "--s", 0.6),
}
"""How each checker is drawn: its label, line style and opacity."""


def power_data(power: Record) -> dict[str, Series]:
    """``"mutation/checker:dtype"`` -> fraction of cases flagged (``y``) per ε (``x``).

    ``mutation`` is ``element`` or ``layer``; ``checker`` is ``both`` (netcheck's verdict),
    ``precision`` (its precision part alone) or ``check_grads`` (only where it ran).
    """
    data = {}
    for entry in power["dtypes"]:
        dtype = entry["dtype"]
        for mutation in ("element", "layer"):
            for mode in ("both", "precision"):
                data[f"{mutation}/{mode}:{dtype}"] = {
                    "x": list(power["epsilons"]),
                    "y": list(entry["mutations"][mutation][mode]["detected_fraction"]),
                }
            if entry["check_grads"]["n_cases"]:
                data[f"{mutation}/check_grads:{dtype}"] = {
                    "x": list(power["check_grads_epsilons"]),
                    "y": list(entry["check_grads"][mutation]["detected_fraction"]),
                }
    return data


@_styled
def detection_power_figure(power: Record) -> Figure:
    """Detection power per dtype: netcheck (with and without its formula part) beside
    ``jax.test_util.check_grads``, for one element and for one whole layer.

    Args:
        power: a ``netcheck.bench.suite.detection_power`` record.

    Returns:
        Two panels (one element, whole layer) of ``power_data``: the fraction of cases
        flagged against ``ε`` (log axis); solid for netcheck's verdict, dotted for its
        precision part alone, dashed for check_grads; gids as the data's keys. The legend
        names each dtype's false alarms (``ε = 0``).
    """
    figure, axes = _figure(2, height=7.0)
    entries = {entry["dtype"]: entry for entry in power["dtypes"]}
    panels = dict(zip(("element", "layer"), axes, strict=True))
    for key, series in power_data(power).items():
        where, dtype = key.split(":")
        mutation, checker = where.split("/")
        label, style, alpha = POWER_CHECKERS[checker]
        entry = entries[dtype]
        alarms = {
            "both": (entry["false_alarms"], entry["n_cases"]),
            "precision": (entry["false_alarms_precision"], entry["n_cases"]),
            "check_grads": (entry["check_grads"]["false_alarms"], entry["check_grads"]["n_cases"]),
        }[checker]
        (line,) = panels[mutation].plot(
            series["x"],
            series["y"],
            style,
            markersize=5,
            linewidth=2,
            color=DTYPE_COLOR.get(dtype, "k"),
            alpha=alpha,
            label=f"{label} {dtype} ({alarms[0]}/{alarms[1]} false alarms)",
        )
        line.set_gid(key)
    for mutation, axis in panels.items():
        what = "its median-sized element" if mutation == "element" else "the whole layer"
        axis.set(
            xscale="log",
            xlabel=f"ε (one layer's gradient: {what} scaled by 1 + ε)",
            ylabel="fraction of cases flagged",
            ylim=(-0.03, 1.03),
            title=f"{'One element' if mutation == 'element' else 'One whole layer'}: "
            "the further left, the smaller the bugs caught",
        )
        _readable_log(axis, "x")
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    return figure


# ----- verifier cost -------------------------------------------------------------------

COST_STYLE = {
    "check_gradient": {"color": "#1f77b4", "marker": "o", "label": "check_gradient"},
    "verify": {"color": "#2ca02c", "marker": "s", "label": "verify"},
    "check_grads": {"color": "#7f7f7f", "marker": "^", "label": "jax check_grads"},
}


def verifier_cost_data(cost: Record) -> dict[str, Series]:
    """``method`` -> its cost in float64 gradients (``y``, median of paired ratios, with
    the 95% interval ``low``/``high``) against the model's parameter count (``x``)."""
    rows = sorted(cost["results"], key=lambda row: row["n_params"])
    return {
        method: {
            "x": [row["n_params"] for row in rows],
            "y": [row["ratios"][method]["median"] for row in rows],
            "low": [row["ratios"][method]["interval"][0] for row in rows],
            "high": [row["ratios"][method]["interval"][1] for row in rows],
        }
        for method in COST_STYLE
    }


@_styled
def verifier_cost_figure(cost: Record) -> Figure:
    """The verifier's cost as a multiple of one float64 gradient, against model size.

    Args:
        cost: a ``netcheck.bench.verifier_cost`` record.

    Returns:
        ``verifier_cost_data`` (gids as its keys; bars: 95% interval) on log-log axes,
        with the goals (check_gradient 10x, verify 15x) drawn in.
    """
    from netcheck.bench.verifier_cost import CHECK_GRADIENT_GOAL, VERIFY_GOAL

    figure, (axis,) = _figure(1, height=5.5)
    for method, series in verifier_cost_data(cost).items():
        style = COST_STYLE[method]
        y = np.asarray(series["y"], dtype=float)
        (line,) = axis.plot(
            series["x"],
            y,
            linestyle="-",
            marker=style["marker"],
            markersize=7,
            color=style["color"],
            label=style["label"],
            alpha=0.9,
        )
        line.set_gid(method)
        spread = [y - np.asarray(series["low"]), np.asarray(series["high"]) - y]
        axis.errorbar(series["x"], y, yerr=spread, fmt="none", ecolor=style["color"], alpha=0.5)
    axis.axhline(
        CHECK_GRADIENT_GOAL,
        color="#1f77b4",
        linestyle="--",
        linewidth=1,
        label=f"check_gradient goal ({CHECK_GRADIENT_GOAL:g}x)",
    )
    axis.axhline(
        VERIFY_GOAL,
        color="#2ca02c",
        linestyle="--",
        linewidth=1,
        label=f"verify goal ({VERIFY_GOAL:g}x)",
    )
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="parameters of the MLP",
        ylabel="time / one float64 jax.grad",
        title="Verifier cost in gradients, against model size (bars: 95% interval)",
    )
    _readable_log(axis, "x")
    _readable_log(axis, "y")
    _legend_below(axis, ncols=3)
    return figure


# ----- the list ------------------------------------------------------------------------


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
        "Per-layer error heat map: log10(distance / tolerance) per case and layer; "
        "case ids in the table below.",
    ),
    FigureSpec(
        "kill_matrix.png",
        "kill_matrix",
        kill_matrix_figure,
        "Planted bugs against the verifier: caught, and at which layer; case ids in the "
        "table below.",
    ),
    FigureSpec(
        "detection_power.png",
        "detection_power",
        detection_power_figure,
        "Detection power per dtype, one element and a whole layer: netcheck's verdict, its "
        "precision part alone, and jax.test_util.check_grads.",
    ),
    FigureSpec(
        "bench_time.png",
        "bench",
        bench_time_figure,
        "Step time vs size, manual beside jax.grad, and their paired ratio per shape.",
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
        "verifier_cost.png",
        "verifier_cost",
        verifier_cost_figure,
        "The verifier's cost in float64 gradients against model size, beside check_grads.",
    ),
    FigureSpec(
        "training.png",
        "training",
        training_figure,
        "Training curves with the manual gradient and with jax.grad, from the same start.",
    ),
)
"""Every figure a report draws, in the order it shows them."""
