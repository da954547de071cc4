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
