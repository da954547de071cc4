"""Tests of netcheck.report.figures: what each figure plots, against an independent
computation from the raw record, and read back from the figure's artists; legibility
(width, font sizes, tick labels); valid, deterministic PNGs. Renderers never run anything:
the suite, kill-matrix and detection-power records here are plain dicts in their documented
layouts, the benchmark record one tiny real run."""

from __future__ import annotations

import io
import math

import matplotlib.image
import matplotlib.text
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from netcheck.bench import step
from netcheck.report import figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_record():
    grid = step.Grid(
        "test",
        widths=(4, 8),
        depths=(2,),
        batches=(2, 3),
        rounds=3,
        min_measure_s=0.0,
        budget_s=0.0,
        methods=("manual", "autodiff", "numpy_loop"),
    )
    return step.run_bench(grid)


def training_record():
    # A plain record in the trainer's history layout (renderers never train); one exact tie.
    epochs = [1, 2, 3]
    manual = {"epoch": epochs, "train_loss": [0.7, 0.5, 0.4], "validation_loss": [0.72, 0.55, 0.45]}
    auto = {
        "epoch": epochs,
        "train_loss": [0.7, 0.5000002, 0.4003],
        "validation_loss": [0.72, 0.55, 0.45],
    }
    return {"histories": {"manual": manual, "autodiff": auto}}


def suite_record():
    # The documented layout of netcheck.bench.suite.run_suite, with one failed case, one NaN and
    # one exact zero; plus a field this renderer does not know (records may grow).
    def case(case_id, dtype, ratios, ok=True):
        layers = [
            {
                "layer": i + 1,
                "worst_relative_error": None if r is None else r * 1e-7,
                "worst_ratio": r,
                "rows": {},
                "formula": {"ratio": 0.1},
            }
            for i, r in enumerate(ratios)
        ]
        finite = [r for r in ratios if r is not None]
        return {
            "id": case_id,
            "spec": {},
            "dtype": dtype,
            "ok": ok,
            "kink": False,
            "first_bad_layer": None if ok else 1,
            "reasons": [] if ok else ["W_1 off"],
            "worst_ratio": None if len(finite) < len(ratios) else max(finite),
            "layers": layers,
        }

    cases = [
        case("a", "float32", [0.1, 0.2]),
        case("b", "float64", [0.0, 0.0, 0.0]),
        case("c", "bfloat16", [5.0, 0.2], ok=False),
        case("d", "float16", [None]),
    ]
    return {
        "kind": "suite",
        "n_cases": 4,
        "n_failed": 1,
        "ok": False,
        "groups": 4,
        "wall_s": 1.0,
        "constants": {"noise_multiple": 8.0, "tie_multiple": 32.0},
        "cases": cases,
    }


def kill_record():
    control = [
        {"id": "tanh-case-1", "dtype": "float32", "ok": True, "reasons": []},
        {"id": "relu-case-2", "dtype": "float32", "ok": False, "reasons": ["false alarm"]},
    ]
    mutants = [
        {
            "name": "slide_sign",
            "description": "δ^L = G(L)(y - ŷ)",
            "corrupts": "δ^L",
            "killed": True,
            "localised": True,
            "cases": [
                {
                    "id": "tanh-case-1",
                    "dtype": "float32",
                    "killed": True,
                    "named_layer": 2,
                    "expected_layer": 2,
                    "localised": True,
                    "reason": "W_2 off",
                }
            ],
        },
        {
            "name": "no_g_prime",
            "description": "G(ℓ) dropped",
            "corrupts": "δ^{L-1}",
            "killed": False,
            "localised": False,
            "cases": [
                {
                    "id": "relu-case-2",
                    "dtype": "float32",
                    "killed": False,
                    "named_layer": None,
                    "expected_layer": 1,
                    "localised": False,
                    "reason": None,
                },
                {
                    "id": "tanh-case-1",
                    "dtype": "float32",
                    "killed": True,
                    "named_layer": 2,
                    "expected_layer": 1,
                    "localised": False,
                    "reason": "W_2 off",
                },
            ],
        },
    ]
    return {
        "kind": "kill_matrix",
        "dtypes": ["float32"],
        "all_killed": False,
        "all_localised": False,
        "control_ok": False,
        "wall_s": 1.0,
        "mutants": mutants,
        "control": control,
    }


def _summary(fraction, smallest, median):
    return {
        "detected_fraction": fraction,
        "smallest_detected_all": smallest,
        "median_threshold": median,
        "hardest": [],
    }


def power_record():
    eps = [1.0, 0.1, 0.01]
    mutations = {
        "element": {
            "both": _summary([1.0, 1.0, 1.0], 0.01, 0.01),
            "precision": _summary([1.0, 0.75, 0.25], 1.0, 0.1),
            "excluded": 0,
        },
        "layer": {
            "both": _summary([1.0, 1.0, 0.5], 0.1, 0.01),
            "precision": _summary([1.0, 0.5, 0.0], 1.0, 1.0),
            "excluded": 0,
        },
    }
    check_grads = {"n_cases": 2, "false_alarms": 1}
    check_grads |= {"element": _summary([0.5, 0.0], None, None)}
    check_grads |= {"layer": _summary([1.0, 0.0], 1.0, 1.0)}
    entry = {
        "dtype": "float32",
        "n_cases": 4,
        "false_alarms": 0,
        "false_alarms_precision": 0,
        "kinks": 0,
        **mutations["layer"]["both"],
        "mutations": mutations,
        "check_grads": check_grads,
    }
    # Every dtype of a real report (the figure's legend must hold all of them).
    return {
        "kind": "detection_power",
        "wall_s": 1.0,
        "epsilons": eps,
        "check_grads_epsilons": [1.0, 0.1],
        "dtypes": [
            {**entry, "dtype": dtype} for dtype in ("float64", "float32", "bfloat16", "float16")
        ],
    }


def verifier_cost_record():
    from netcheck.bench.verifier_cost import verifier_goals

    rows = []
    for n_params, ratio, goal in ((1_000, 3.0, False), (50_000, 6.0, True), (2_000_000, 8.0, True)):
        rows.append(
            {
                "label": f"m{n_params}",
                "n_params": n_params,
                "leaves": 4,
                "goal": goal,
                "cold_s": {"grad64": 0.5, "check_gradient": 2.0, "verify": 3.0, "check_grads": 1.0},
                "methods": {"grad64": {"median_s": 0.01}},
                "ratios": {
                    "check_gradient": {"median": ratio, "interval": [ratio - 1, ratio + 1]},
                    "verify": {"median": ratio + 2, "interval": [ratio + 1, ratio + 3]},
                    "check_grads": {"median": 20.0, "interval": [18.0, 22.0]},
                },
            }
        )
    record = {"schema": "netcheck.bench.verifier_cost/1", "grid": "test", "results": rows}
    record["goals"] = verifier_goals(record)
    return record


def records(bench_record):
    return {
        "verification": suite_record(),
        "kill_matrix": kill_record(),
        "detection_power": power_record(),
        "bench": bench_record,
        "verifier_cost": verifier_cost_record(),
        "training": training_record(),
    }


@pytest.fixture(scope="module")
def drawn(bench_record):
    """Every figure of FIGURES drawn once: filename -> (figure, decoded PNG)."""
    data = records(bench_record)
    out = {}
    for spec in figures.FIGURES:
        figure = spec.render(data[spec.stage])
        png = figures.png_bytes(figure)  # also draws it, so tick labels exist
        assert png.startswith(PNG_SIGNATURE)
        out[spec.filename] = (figure, matplotlib.image.imread(io.BytesIO(png), format="png"))
    return out


def artist(figure, gid):
    found = [a for a in figure.findobj() if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def line_data(figure, gid):
    x, y = artist(figure, gid).get_data()
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def by_flops(record, dtype="float32"):
    return sorted(
        (r for r in record["results"] if r["dtype"] == dtype),
        key=lambda r: (r["flops"], r["width"]),
    )


# ----- legibility ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", figures.FIGURES, ids=lambda s: s.filename)
def test_figures_are_1200_px_wide_with_no_text_below_9_pt(spec, drawn):
    figure, image = drawn[spec.filename]
    assert image.shape[1] >= 1200 and image.shape[0] >= 300
    texts = [
        t for t in figure.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()
    ]
    assert texts
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9]
    assert not small


@pytest.mark.parametrize("spec", figures.FIGURES, ids=lambda s: s.filename)
def test_titles_labels_and_legends_lie_inside_the_figure(spec, drawn):
    figure, _ = drawn[spec.filename]
    renderer = figure.canvas.get_renderer()
    width, height = figure.canvas.get_width_height()
    texts = [figure._suptitle] if figure._suptitle else []
    for legend in [*figure.legends, *(a.get_legend() for a in figure.axes)]:
        texts += legend.texts if legend else []
    for axis in figure.axes:
        texts += [axis.title, axis.xaxis.label, axis.yaxis.label]
    for text in texts:
        if text.get_visible() and text.get_text():
            box = text.get_window_extent(renderer)
            assert box.x0 >= -1 and box.x1 <= width + 1, text.get_text()
            assert box.y0 >= -1 and box.y1 <= height + 1, text.get_text()


@pytest.mark.parametrize("spec", figures.FIGURES, ids=lambda s: s.filename)
def test_tick_labels_are_plain(spec, drawn):
    figure, _ = drawn[spec.filename]
    for axis in figure.axes:
        for tick in [*axis.get_xticklabels(which="both"), *axis.get_yticklabels(which="both")]:
            text = tick.get_text()
            assert "times" not in text and "×" not in text and "e+" not in text, text


def test_tick_text():
    assert [figures.tick_text(v, plain=True) for v in (0.001, 0.5, 2.0, 1000.0, 20000.0)] == [
        "0.001",
        "0.5",
        "2",
        "1000",
        "20000",
    ]
    assert figures.tick_text(1e-6, plain=False) == "$10^{-6}$"
    assert figures.tick_text(2e-6, plain=False) == "2e-6"
    assert figures.tick_text(1e9, plain=False) == "$10^{9}$"


def test_log_positions_put_zeros_and_nonfinite_on_marked_lines():
    positions, zero_at, nonfinite_at = figures.log_positions([0.02, 0.0, None, 3.0])
    assert (zero_at, nonfinite_at) == (pytest.approx(1e-3), pytest.approx(100.0))
    assert positions == pytest.approx([0.02, 1e-3, 100.0, 3.0])
    positions, zero_at, nonfinite_at = figures.log_positions([0.5], every=[0.5, 0.0])
    assert positions == pytest.approx([0.5]) and zero_at == pytest.approx(0.01)
    assert nonfinite_at is None
    assert figures.log_positions([1.0, 2.0])[1:] == (None, None)


def test_zeros_on_log_axes_are_labelled(drawn):
    # The agreement figure holds an exact 0 and a NaN; the training gap an exact tie.
    for name, labels in (
        ("agreement.png", {"exact 0 drawn here", "NaN/Inf drawn here"}),
        ("training.png", {"exact tie (0) drawn here"}),
    ):
        figure, _ = drawn[name]
        legends = {
            t.get_text() for a in figure.axes if a.get_legend() for t in a.get_legend().texts
        }
        assert labels <= legends


# ----- the benchmark -----------------------------------------------------------------------


def test_ratio_panel_plots_manual_over_jax_grad(bench_record, drawn):
    # Independent: per shape, the median over rounds of manual / jax.grad time.
    rows = by_flops(bench_record)
    expected = [
        np.median(np.divide(r["methods"]["manual"]["times_s"], r["methods"]["autodiff"]["times_s"]))
        for r in rows
    ]
    data = figures.ratio_data(bench_record)["float32"]
    assert data["x"] == [r["flops"] for r in rows]
    assert data["y"] == pytest.approx(expected)
    assert all(
        lo <= y <= hi for lo, y, hi in zip(data["low"], data["y"], data["high"], strict=True)
    )
    x, y = line_data(drawn["bench_time.png"][0], "ratio:float32")
    assert x == pytest.approx([r["flops"] for r in rows]) and y == pytest.approx(expected)


def test_step_time_panel_plots_the_median_round(bench_record, drawn):
    rows = by_flops(bench_record)
    for method in ("manual", "autodiff", "roofline"):
        expected = [np.median(r["methods"][method]["times_s"]) for r in rows]
        assert figures.step_time_data(bench_record)[f"{method}:float32"]["y"] == pytest.approx(
            expected
        )
        _, y = line_data(drawn["bench_time.png"][0], f"time:{method}:float32")
        assert y == pytest.approx(expected)


def test_roofline_figure_plots_rates_and_paired_multiples(bench_record, drawn):
    figure = drawn["bench_roofline.png"][0]
    for method in ("manual", "autodiff", "roofline", "numpy_loop"):
        rows = [r for r in by_flops(bench_record) if method in r["methods"]]
        rate = [r["flops"] / np.median(r["methods"][method]["times_s"]) for r in rows]
        assert figures.roofline_data(bench_record)["rate"][f"{method}:float32"]["y"] == (
            pytest.approx(rate)
        )
        assert line_data(figure, f"rate:{method}:float32")[1] == pytest.approx(rate)
    for method in ("manual", "autodiff"):
        rows = by_flops(bench_record)
        over = [
            np.median(
                np.divide(r["methods"][method]["times_s"], r["methods"]["roofline"]["times_s"])
            )
            for r in rows
        ]
        assert line_data(figure, f"over:{method}:float32")[1] == pytest.approx(over)


def test_memory_figure_plots_temp_bytes_and_their_difference(bench_record, drawn):
    rows = by_flops(bench_record)
    if rows[0]["methods"]["manual"]["temp_bytes"] is None:
        pytest.skip("no memory analysis on this backend")
    figure = drawn["bench_memory.png"][0]
    manual = [r["methods"]["manual"]["temp_bytes"] for r in rows]
    auto = [r["methods"]["autodiff"]["temp_bytes"] for r in rows]
    every = [
        v
        for r in rows
        for m in ("manual", "autodiff", "roofline")
        for v in [r["methods"][m]["temp_bytes"]]
    ]
    floor = 10.0 ** (math.floor(math.log10(min(v for v in every if v > 0))) - 1)
    assert line_data(figure, "bytes:manual:float32")[1] == pytest.approx(
        [v if v > 0 else floor for v in manual]
    )
    difference = [m - a for m, a in zip(manual, auto, strict=True)]
    assert line_data(figure, "difference:float32")[1] == pytest.approx(difference)


# ----- training ----------------------------------------------------------------------------


def test_training_figure_plots_both_runs_and_their_gap(drawn):
    record = training_record()
    figure = drawn["training.png"][0]
    for grad in ("manual", "autodiff"):
        history = record["histories"][grad]
        x, y = line_data(figure, f"train:{grad}")
        assert list(x) == history["epoch"] and y == pytest.approx(history["train_loss"])
    gap = [0.0, 2e-7, 3e-4]  # |0.7 - 0.7|, |0.5 - 0.5000002|, |0.4 - 0.4003|
    assert figures.training_data(record)["gap"]["y"] == pytest.approx(gap, abs=1e-12)
    # The exact tie is drawn a decade below the smallest positive gap's decade (1e-7).
    assert line_data(figure, "gap")[1] == pytest.approx([1e-8, 2e-7, 3e-4], rel=1e-6)


# ----- the verification suite --------------------------------------------------------------


def test_agreement_figure_plots_each_cases_worst_ratio(drawn):
    figure = drawn["agreement.png"][0]
    record = suite_record()
    for case in record["cases"]:
        worst = case["worst_ratio"]
        gid = f"ratio{'' if case['ok'] else '-failed'}:{case['dtype']}"
        y = np.ma.getdata(artist(figure, gid).get_offsets())[:, 1]
        # The ratios on that axis are 0.2, 0, 5 and NaN: the exact 0 is drawn a decade below
        # the decade of 0.2 (at 0.01), NaN a decade above that of 5 (at 100).
        assert y == pytest.approx([100.0 if worst is None else worst or 0.01])


def test_heatmap_shows_log10_ratio_per_case_and_layer(drawn):
    record = suite_record()
    data = figures.heatmap_data(record)
    low, high = figures.HEATMAP_RANGE
    for row, case in enumerate(record["cases"]):
        for layer in case["layers"]:
            ratio = layer["worst_ratio"]
            expected = high if ratio is None else low if ratio == 0 else np.log10(ratio)
            assert data["values"][row, layer["layer"] - 1] == pytest.approx(expected)
        missing = range(len(case["layers"]), data["values"].shape[1])
        assert all(np.isnan(data["values"][row, col]) for col in missing)
    figure = drawn["layer_errors.png"][0]
    shown = np.asarray(artist(figure, "heatmap:0").get_array())
    np.testing.assert_array_equal(np.isnan(shown), np.isnan(data["values"]))
    assert shown[~np.isnan(shown)] == pytest.approx(data["values"][~np.isnan(data["values"])])
    axis = figure.axes[0]
    assert [t.get_text() for t in axis.get_yticklabels()] == ["c1", "c2", "c3", "c4"]


def test_a_large_heatmap_is_split_into_panels_that_keep_every_row():
    record = suite_record()
    record["cases"] = [{**record["cases"][i % 4], "id": f"case-{i}"} for i in range(100)]
    data = figures.heatmap_data(record)
    figure = figures.layer_error_heatmap(record)
    panels = [np.asarray(artist(figure, f"heatmap:{p}").get_array()) for p in range(5)]
    np.testing.assert_array_equal(np.vstack(panels), data["values"])
    labels = [t.get_text() for axis in figure.axes[:5] for t in axis.get_yticklabels()]
    assert labels == [f"c{i:03d}" for i in range(1, 101)]


# ----- the kill matrix ----------------------------------------------------------------------


def test_kill_matrix_colours_follow_the_record(drawn):
    # Independent: each cell's state from the raw record (columns in the order of the
    # control cases; k1 = tanh-case-1, k2 = relu-case-2).
    record = kill_record()
    columns = [c["id"] for c in record["control"]]
    expected = [["n/a"] * len(columns) for _ in range(len(record["mutants"]) + 1)]
    for case in record["control"]:
        expected[0][columns.index(case["id"])] = "localised" if case["ok"] else "survived"
    for row, mutant in enumerate(record["mutants"], start=1):
        for case in mutant["cases"]:
            state = "survived"
            if case["killed"]:
                state = "localised" if case["named_layer"] == case["expected_layer"] else "killed"
            expected[row][columns.index(case["id"])] = state
    assert expected == [["localised", "survived"], ["localised", "n/a"], ["killed", "survived"]]
    assert figures.kill_data(record)["states"] == expected
    figure = drawn["kill_matrix.png"][0]
    image = artist(figure, "kill")
    rgba = image.to_rgba(image.get_array())[:, :, :3]
    for row, states in enumerate(expected):
        for col, state in enumerate(states):
            assert tuple(rgba[row, col]) == pytest.approx(to_rgb(figures.KILL_COLORS[state]))
    axis = figure.axes[0]
    assert [t.get_text() for t in axis.get_xticklabels()] == ["k1", "k2"]
    assert [t.get_text() for t in axis.get_yticklabels()] == [
        "correct code",
        "slide_sign",
        "no_g_prime",
    ]


def test_kill_matrix_has_a_legend_for_every_colour(drawn):
    figure = drawn["kill_matrix.png"][0]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.texts] == list(figures.KILL_MEANING.values())
    colours = [to_rgb(h.get_facecolor()) for h in legend.legend_handles]
    assert colours == [to_rgb(c) for c in figures.KILL_COLORS.values()]
    assert "false alarm" in figures.KILL_MEANING["survived"]


# ----- detection power ----------------------------------------------------------------------


def test_detection_power_plots_the_detected_fractions(drawn):
    record = power_record()
    figure = drawn["detection_power.png"][0]
    entry = record["dtypes"][1]
    assert entry["dtype"] == "float32"
    for mutation in ("element", "layer"):
        for mode in ("both", "precision"):
            x, y = line_data(figure, f"{mutation}/{mode}:float32")
            assert x == pytest.approx(record["epsilons"])
            assert y == pytest.approx(entry["mutations"][mutation][mode]["detected_fraction"])
        x, y = line_data(figure, f"{mutation}/check_grads:float32")
        assert x == pytest.approx(record["check_grads_epsilons"])
        assert y == pytest.approx(entry["check_grads"][mutation]["detected_fraction"])
    labels = [t.get_text() for t in figure.legends[0].texts]
    assert "netcheck float32 (0/4 false alarms)" in labels
    assert "check_grads float32 (1/2 false alarms)" in labels


def test_verifier_cost_plots_each_checks_ratio_against_model_size(drawn):
    record = verifier_cost_record()
    figure = drawn["verifier_cost.png"][0]
    rows = sorted(record["results"], key=lambda row: row["n_params"])
    for method in ("check_gradient", "verify", "check_grads"):
        x, y = line_data(figure, method)
        assert x == pytest.approx([row["n_params"] for row in rows])
        assert y == pytest.approx([row["ratios"][method]["median"] for row in rows])
    goals = sorted(line.get_ydata()[0] for line in figure.axes[0].lines if line.get_gid() is None)
    assert goals == pytest.approx([10.0, 15.0])


# ----- files ---------------------------------------------------------------------------------


def test_png_encoding_is_deterministic(bench_record):
    first = figures.png_bytes(figures.memory_figure(bench_record))
    second = figures.png_bytes(figures.memory_figure(bench_record))
    assert first == second


def test_every_figure_has_a_unique_png_file_and_a_caption():
    names = [spec.filename for spec in figures.FIGURES]
    assert len(names) == len(set(names))
    assert all(
        name.endswith(".png") and spec.caption
        for name, spec in zip(names, figures.FIGURES, strict=True)
    )
