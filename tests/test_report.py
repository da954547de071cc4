"""Tests of netcheck.report: the rendered numbers are those of results.json, every figure
referenced is a valid PNG, --from reproduces the report, bad records are refused clearly,
and a failed run leaves no directory behind."""

from __future__ import annotations

import html.parser
import io
import json
import re
from pathlib import Path

import matplotlib.image
import pytest
from test_figures import kill_record, power_record  # records in the suite's documented layout

from netcheck import bench, figures, report

TINY_GRID = bench.Grid(
    "test", widths=(4, 8), depths=(2,), batches=(2,), rounds=2, min_measure_s=0.0, budget_s=0.0
)
TINY_TRAINING = {
    **report.TRAINING,
    "n_samples": 48,
    "sizes": (2, 4, 1),
    "epochs": 3,
    "batch_size": 8,
}


def tiny_stages():
    # Real runs of the verification suite (3 cases), the benchmark (2 shapes) and training
    # (3 epochs); the kill matrix and detection power, tens of seconds even when tiny, are
    # plain records in their documented layout.
    return {
        "verification": report.verification_stage(max_cases=3),
        "kill_matrix": lambda progress: kill_record(),
        "detection_power": lambda progress: power_record(),
        "bench": report.bench_stage(TINY_GRID),
        "training": lambda progress: report.training_comparison(TINY_TRAINING, progress),
    }


@pytest.fixture(scope="module")
def record():
    return report.run_report(tiny_stages(), name="test", progress=False)


@pytest.fixture(scope="module")
def written(record, tmp_path_factory):
    # Written once, read by the tests below; tests that write make their own folders.
    return report.write_report(record, tmp_path_factory.mktemp("reports") / "test")


def only(record, *stages):
    """The record with only some stages: quicker to render."""
    return {**record, "stages": {s: record["stages"][s] for s in stages}}


class _Cells(html.parser.HTMLParser):
    """Collects the text of every table row and the src of every image."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self._row, self._cell = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def html_cells(path: Path) -> _Cells:
    parser = _Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def markdown_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def expected_bench_rows(saved: dict) -> list[list[str]]:
    # Recomputed here from results.json alone, in the report's number format.
    rows = []
    for row in saved["stages"]["bench"]["record"]["results"]:
        m = row["methods"]
        rows.append(
            [
                f"w{row['width']} L{row['depth']} n{row['batch']} {row['dtype']}",
                report.fmt(row["flops"]),
                report.fmt(m["manual"]["median_s"] * 1e3),
                report.fmt(m["autodiff"]["median_s"] * 1e3),
                report.fmt(m["roofline"]["median_s"] * 1e3),
                report.fmt(row["manual_over_autodiff"]),
                report.fmt(m["manual"]["time_over_roofline"]),
                report.fmt(m["manual"]["flops_per_s"] / 1e9),
                report.fmt(m["roofline"]["flops_per_s"] / 1e9),
                report.fmt(m["manual"]["temp_bytes"] / 1024),
                report.fmt(m["autodiff"]["temp_bytes"] / 1024),
                report.fmt(m["manual"]["xla_flops"] / m["autodiff"]["xla_flops"]),
            ]
        )
    return rows


def expected_goal_rows(saved: dict) -> list[list[str]]:
    goals = saved["stages"]["bench"]["record"]["goals"]
    verdict = {True: "pass", False: "FAIL", None: "n/a"}
    return [
        [g["name"], g["target"], report.fmt(g["measured"]), verdict[g["passed"]], g["detail"]]
        for g in goals
    ]


def test_rendered_numbers_equal_results_json(written):
    saved = json.loads((written / "results.json").read_text())
    expected = expected_bench_rows(saved) + expected_goal_rows(saved)
    training = saved["stages"]["training"]["record"]
    expected += [
        [
            grad,
            report.fmt(f["train_loss"]),
            report.fmt(f["validation_loss"]),
            report.fmt(f["validation_accuracy"]),
            report.fmt(training["elapsed_s"][grad]),
        ]
        for grad, f in training["final"].items()
    ]
    suite = saved["stages"]["verification"]["record"]
    for dtype in sorted({c["dtype"] for c in suite["cases"]}):
        cases = [c for c in suite["cases"] if c["dtype"] == dtype]
        ratios = sorted(c["worst_ratio"] for c in cases)
        median = (
            ratios[len(ratios) // 2]
            if len(ratios) % 2
            else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
        )
        expected.append(
            [
                dtype,
                str(len(cases)),
                str(sum(not c["ok"] for c in cases)),
                str(sum(c["kink"] for c in cases)),
                report.fmt(median),
                report.fmt(max(ratios)),
            ]
        )
    for mutant in saved["stages"]["kill_matrix"]["record"]["mutants"]:
        expected.append(
            [
                mutant["name"],
                mutant["corrupts"],
                str(len(mutant["cases"])),
                str(sum(c["killed"] for c in mutant["cases"])),
                str(sum(c["localised"] for c in mutant["cases"])),
                mutant["description"],
            ]
        )
    for entry in saved["stages"]["detection_power"]["record"]["dtypes"]:
        theirs = entry["check_grads"]
        expected.append(
            [
                entry["dtype"],
                str(entry["n_cases"]),
                str(entry["false_alarms"]),
                str(entry["kinks"]),
                report.fmt(entry["smallest_detected_all"])
                + (" (also flags correct ones)" if entry["false_alarms"] else ""),
                report.fmt(entry["median_threshold"]),
                str(theirs["n_cases"]),
                str(theirs["false_alarms"]),
                report.fmt(theirs["smallest_detected_all"])
                + (" (also flags correct ones)" if theirs["false_alarms"] else ""),
            ]
        )
    md_rows = markdown_rows(written / "report.md")
    html_rows = html_cells(written / "index.html").rows
    for row in expected:
        assert row in md_rows
        assert row in html_rows
    gap = report.fmt(training["max_abs_train_loss_difference"])
    assert f"train loss over the epochs: {gap}." in (written / "report.md").read_text()


def test_every_referenced_figure_is_a_valid_png(written):
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (written / "report.md").read_text())
    html_images = html_cells(written / "index.html").images
    assert md_images == html_images
    assert set(md_images) == {spec.filename for spec in figures.FIGURES}
    for name in md_images:
        data = (written / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100


def test_from_results_json_reproduces_the_report(written, tmp_path):
    again = report.write_report(report.load_record(written / "results.json"), tmp_path / "again")
    for name in ("results.json", "report.md", "index.html"):
        assert (again / name).read_bytes() == (written / name).read_bytes()
    for spec in figures.FIGURES:
        assert (again / spec.filename).read_bytes() == (written / spec.filename).read_bytes()


def test_rewriting_replaces_the_old_report_and_leaves_no_temporaries(record, tmp_path):
    small = only(record, "training")
    target = report.write_report(small, tmp_path / "test")
    (target / "stale.txt").write_text("from an older report")
    report.write_report(small, target)
    assert not (target / "stale.txt").exists()
    assert (target / "training.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", r"is not valid JSON: .* \(line 1, column 2\)"),
        ("[1, 2]", "is not a netcheck report"),
        (
            json.dumps({"kind": "netcheck.report", "schema_version": 0, "stages": {}}),
            "has schema_version 0; this netcheck reads schema_version 1",
        ),
        (json.dumps({"kind": "netcheck.report", "schema_version": 1}), "has no 'stages'"),
    ],
    ids=["malformed", "not-a-report", "wrong-version", "no-stages"],
)
def test_bad_results_files_are_refused_clearly(tmp_path, content, match):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        report.load_record(path)


def test_missing_results_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.load_record(tmp_path / "nowhere.json")


def test_a_failing_stage_leaves_no_directory(tmp_path):
    def broken(progress):
        raise RuntimeError("simulated crash in a stage")

    stages = {"bench": report.bench_stage(TINY_GRID), "training": broken}
    with pytest.raises(RuntimeError, match="simulated crash"):
        record = report.run_report(stages, progress=False)
        report.write_report(record, tmp_path / "out" / "latest")
    assert not (tmp_path / "out").exists()


def test_a_failing_render_leaves_no_partial_directory_and_keeps_the_old(
    record, tmp_path, monkeypatch
):
    written = tmp_path / "test"
    written.mkdir()
    (written / "index.html").write_text("the previous report")

    def broken(_record):
        raise RuntimeError("simulated crash while drawing")

    # The training figure fails after the bench figures are already in the staging folder.
    patched = tuple(
        figures.FigureSpec(s.filename, s.stage, broken, s.caption) if s.stage == "training" else s
        for s in figures.FIGURES
    )
    monkeypatch.setattr(report, "FIGURES", patched)
    small = only(record, "bench", "training")
    with pytest.raises(RuntimeError, match="simulated crash while drawing"):
        report.write_report(small, written)
    with pytest.raises(RuntimeError, match="simulated crash while drawing"):
        report.write_report(small, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test"]
    assert [p.name for p in written.iterdir()] == ["index.html"]
    assert (written / "index.html").read_text() == "the previous report"


def test_check_outcomes_follow_the_records(record):
    outcomes = report.check_outcomes(record)
    suite = record["stages"]["verification"]["record"]
    assert outcomes["verification: every case agrees with the float64 truth"] is suite["ok"]
    # The kill record above has a surviving mutant and a false alarm on the correct code.
    assert outcomes["kill matrix: every planted bug caught"] is False
    assert outcomes["kill matrix: the correct code passes"] is False
    assert outcomes["detection power: no false alarm on correct gradients"] is True
    goals = record["stages"]["bench"]["record"]["goals"]
    assert [outcomes[f"goal: {g['name']}"] for g in goals] == [g["passed"] for g in goals]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown report stage"):
        report.run_report({"nonsense": lambda p: {}}, progress=False)
    with pytest.raises(ValueError, match="plain folder name"):
        report.run_report({}, name="../x", progress=False)
    with pytest.raises(ValueError, match="unknown grid 'huge'"):
        report.bench_stage("huge")
    with pytest.raises(ValueError, match=r"training settings: missing keys \['epochs'\]"):
        report.training_comparison({k: v for k, v in report.TRAINING.items() if k != "epochs"})


def test_fmt():
    assert report.fmt(1.23456789) == "1.235"
    assert report.fmt(12) == "12"
    assert report.fmt(None) == "–"
    assert report.fmt(True) == "pass" and report.fmt(False) == "FAIL"
    assert report.fmt(float("nan")) == "nan"
