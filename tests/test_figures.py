"""Tests of netcheck.figures: every renderer draws a valid PNG from a plain record, without
running anything, and the encoding is deterministic."""

from __future__ import annotations

import io

import matplotlib.image
import pytest

from netcheck import bench, figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench_record():
    grid = bench.Grid(
        "test",
        widths=(4, 8),
        depths=(2,),
        batches=(2,),
        rounds=2,
        min_measure_s=0.0,
        budget_s=0.0,
        methods=("manual", "autodiff"),
    )
    return bench.run_bench(grid)


def training_record():
    # A plain record in the trainer's history layout (renderers never train).
    epochs = [1, 2, 3]
    manual = {"epoch": epochs, "train_loss": [0.7, 0.5, 0.4], "validation_loss": [0.72, 0.55, 0.45]}
    auto = {
        "epoch": epochs,
        "train_loss": [0.7, 0.5000001, 0.4],
        "validation_loss": [0.72, 0.55, 0.45],
    }
    return {"histories": {"manual": manual, "autodiff": auto}}


def decode(data: bytes):
    assert data.startswith(PNG_SIGNATURE)
    return matplotlib.image.imread(io.BytesIO(data), format="png")


@pytest.mark.parametrize(
    "spec", [s for s in figures.FIGURES if s.stage == "bench"], ids=lambda s: s.filename
)
def test_bench_figures_render_valid_pngs(spec, bench_record):
    image = decode(figures.png_bytes(spec.render(bench_record)))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_training_figure_renders_a_valid_png():
    image = decode(figures.png_bytes(figures.training_figure(training_record())))
    assert image.shape[0] > 100


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


def suite_record():
    # The documented layout of netcheck.suite.run_suite, with one failed case and one NaN.
    def case(case_id, dtype, ratios, ok=True):
        layers = [
            {
                "layer": i + 1,
                "worst_relative_error": None if r is None else r * 1e-7,
                "worst_ratio": r,
                "rows": {},
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
        case("b", "float64", [0.01, 0.3, 0.05]),
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
        {"id": "k1", "dtype": "float32", "ok": True, "reasons": []},
        {"id": "k2", "dtype": "float32", "ok": False, "reasons": ["false alarm"]},
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
                    "id": "k1",
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
            "corrupts": "δ^1",
            "killed": False,
            "localised": False,
            "cases": [
                {
                    "id": "k2",
                    "dtype": "float32",
                    "killed": False,
                    "named_layer": None,
                    "expected_layer": 1,
                    "localised": False,
                    "reason": None,
                }
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


def power_record():
    eps = [1.0, 0.1, 0.01]
    entry = {
        "dtype": "float32",
        "n_cases": 4,
        "false_alarms": 0,
        "kinks": 0,
        "detected_fraction": [1.0, 1.0, 0.5],
        "smallest_detected_all": 0.1,
        "median_threshold": 0.01,
        "check_grads": {
            "n_cases": 2,
            "false_alarms": 1,
            "detected_fraction": [1.0, 0.0],
            "smallest_detected_all": 1.0,
            "median_threshold": 1.0,
        },
    }
    return {
        "kind": "detection_power",
        "wall_s": 1.0,
        "epsilons": eps,
        "check_grads_epsilons": [1.0, 0.1],
        "dtypes": [entry],
    }


@pytest.mark.parametrize(
    ("render", "make"),
    [
        (figures.agreement_figure, suite_record),
        (figures.layer_error_heatmap, suite_record),
        (figures.kill_matrix_figure, kill_record),
        (figures.detection_power_figure, power_record),
    ],
    ids=["agreement", "heatmap", "kill", "power"],
)
def test_suite_figures_render_valid_pngs(render, make):
    image = decode(figures.png_bytes(render(make())))
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_kill_matrix_colours_follow_the_record():
    # Rendered at 1 pixel per cell, the colours can be read back: (correct code) row: k1
    # passes (green), k2 false alarm (red); slide_sign on k1 caught at its layer (green);
    # no_g_prime survives on k2 (red); cells where a mutant does not apply are grey.
    from matplotlib.colors import to_rgb

    figure = figures.kill_matrix_figure(kill_record())
    image = figure.axes[0].get_images()[0]
    rgba = image.to_rgba(image.get_array())[:, :, :3]
    colors = figures.KILL_COLORS
    expected = [
        [colors["localised"], colors["survived"]],
        [colors["localised"], colors["n/a"]],
        [colors["n/a"], colors["survived"]],
    ]
    for row, cells in enumerate(expected):
        for col, color in enumerate(cells):
            assert tuple(rgba[row, col]) == pytest.approx(to_rgb(color), abs=1e-6)
