"""Tests of netcheck.report: the page opens with the verdict, which is recomputed here from
the records; the rendered numbers are those of results.json; the training comparison uses
the gradients it names; every referenced figure is a valid PNG; --from reproduces the
report; bad records are refused clearly; a failed run leaves no directory behind; progress
does not fill a log."""

from __future__ import annotations

import html.parser
import io
import json
import re
import statistics
from pathlib import Path

import jax
import matplotlib.image
import numpy as np
import pytest
from test_bench import recomputed_verdict

# Records in the suite's and the verifier bench's documented layouts.
from test_figures import kill_record, power_record, verifier_cost_record

from netcheck import report
from netcheck.bench import step
from netcheck.report import figures, render, tables
from netcheck.training import trainer

TINY_GRID = step.Grid(
    "test",
    widths=(4, 8),
    depths=(2,),
    batches=(2,),
    rounds=3,
    min_measure_s=0.0,
    budget_s=0.0,
    methods=("manual", "autodiff", "numpy_loop"),  # one slow method, with nothing to compile
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
    # plain records in their documented layout (with a surviving bug and a false alarm).
    return {
        "verification": report.verification_stage(max_cases=3),
        "kill_matrix": lambda progress: kill_record(),
        "detection_power": lambda progress: power_record(),
        "bench": report.bench_stage(TINY_GRID),
        "verifier_cost": lambda progress: verifier_cost_record(),
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


class _Page(html.parser.HTMLParser):
    """Collects every table row (cell text, the text with its <sup>/<sub> marks, class), image
    src, checklist line, and the order of the headings."""

    def __init__(self):
        super().__init__()
        self.rows, self.classes, self.images, self.headings = [], [], [], []
        self.checklist, self.marked_rows = [], []
        self._row = self._cell = self._heading = self._item = None
        self._in_checklist = False
        self._cell_raw = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row, self._classes, self._marked = [], [], []
        elif tag in ("td", "th"):
            self._cell, self._cell_raw = "", ""
            self._classes.append(attrs.get("class", ""))
        elif tag in ("sup", "sub") and self._cell is not None:
            self._cell_raw += f"<{tag}>"
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag in ("h2", "h3"):
            self._heading = ""
        elif tag == "ul" and "checklist" in attrs.get("class", ""):
            self._in_checklist = True
        elif tag == "li" and self._in_checklist:
            self._item = ["", attrs.get("class", "")]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._marked.append(self._cell_raw)
            self._cell = None
        elif tag in ("sup", "sub") and self._cell is not None:
            self._cell_raw += f"</{tag}>"
        elif tag == "tr":
            self.rows.append(self._row)
            self.marked_rows.append(self._marked)
            self.classes.append(self._classes)
            self._row = None
        elif tag in ("h2", "h3") and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None
        elif tag == "li" and self._item is not None:
            self.checklist.append(tuple(self._item))
            self._item = None
        elif tag == "ul":
            self._in_checklist = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
            self._cell_raw += data
        if self._heading is not None:
            self._heading += data
        if self._item is not None:
            self._item[0] += data


def parse_page(path: Path) -> _Page:
    parser = _Page()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def markdown_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not re.fullmatch(r"\|( :?-+:? \|)+", line):
            rows.append([cell.strip() for cell in line[2:-2].split(" | ")])
    return rows


# ----- the verdict ---------------------------------------------------------------------


def expected_checks(saved: dict) -> list[tuple[str, bool | None]]:
    # Recomputed from the stages' raw records, not from the report's own summary fields.
    stages = {name: entry["record"] for name, entry in saved["stages"].items()}
    suite, kill, power = stages["verification"], stages["kill_matrix"], stages["detection_power"]
    cases_ok = [case["ok"] for case in suite["cases"]]
    kill_cases = [c for m in kill["mutants"] for c in m["cases"]]
    expected = [
        ("verification: every case agrees with the float64 truth", all(cases_ok)),
        ("kill matrix: every planted bug caught", all(c["killed"] for c in kill_cases)),
        (
            "kill matrix: every planted bug named at its layer",
            all(c["named_layer"] == c["expected_layer"] for c in kill_cases),
        ),
        ("kill matrix: the correct code passes", all(c["ok"] for c in kill["control"])),
        (
            "detection power: no false alarm on correct gradients",
            sum(e["false_alarms"] for e in power["dtypes"]) == 0,
        ),
    ]
    for goal in stages["bench"]["goals"]:
        expected.append((goal["name"], recomputed_verdict(goal)))
    for row in (r for r in stages["verifier_cost"]["results"] if r["goal"]):
        for method, target in (("check_gradient", 10.0), ("verify", 15.0)):
            expected.append(
                (
                    f"{method} / one float64 jax.grad, warm",
                    row["ratios"][method]["interval"][0] <= target,
                )
            )
            limit = max(5.0, 10 * row["cold_s"]["grad64"])
            expected.append(
                (f"{method}, first call (compilation included)", row["cold_s"][method] <= limit)
            )
    return expected


def test_the_checklist_is_recomputed_from_the_records(record):
    checks = report.checklist(record)
    assert [(c.name, c.ok) for c in checks] == expected_checks(record)
    # The kill record has a surviving mutant, a mislocalised one and a false alarm.
    assert [c.ok for c in checks[1:4]] == [False, False, False]
    assert [c.kind for c in checks] == ["correctness"] * 5 + ["performance"] * (len(checks) - 5)
    for check in checks[5:]:
        assert check.line.startswith("[target met]" if check.ok else "[target missed]")
        assert "FAIL" not in check.line
    assert (
        checks[1].line
        == "[FAIL] kill matrix: every planted bug caught: 1 of 2 caught on every case"
    )


def test_the_goals_are_judged_by_their_intervals(record):
    bench_record = record["stages"]["bench"]["record"]
    for goal in bench_record["goals"]:
        assert goal["met"] is recomputed_verdict(goal)
    median_goal = bench_record["goals"][0]
    per_shape = [
        np.median(np.divide(r["methods"]["manual"]["times_s"], r["methods"]["autodiff"]["times_s"]))
        for r in bench_record["results"]
    ]
    assert median_goal["measured"] == pytest.approx(statistics.median(per_shape))


def test_the_page_opens_with_the_verdict_the_terminal_prints(record, written):
    page = parse_page(written / "index.html")
    assert page.headings[0] == "Verdict"
    assert page.headings.index("Verdict") < page.headings.index("Verification suite")
    checks = report.checklist(record)
    assert [line for line, _ in page.checklist] == [c.line for c in checks]
    classes = dict(page.checklist)
    for check in checks:
        expected = {True: "pass", None: "na"}.get(check.ok)
        if check.ok is False:
            expected = "fail" if check.kind == "correctness" else "missed"
        assert classes[check.line] == expected
    text = (written / "index.html").read_text()
    assert "Correctness: FAIL (3 of 5 checks failed)" in text
    met = sum(c.ok is True for c in checks[5:])
    assert f"Performance: {met} of {len(checks) - 5} targets met" in text
    markdown = (written / "report.md").read_text()
    assert all(c.line in markdown for c in checks)
    assert markdown.index("## Verdict") < markdown.index("## Verification suite")


# ----- the numbers ---------------------------------------------------------------------


def expected_bench_rows(saved: dict) -> list[list[str]]:
    # Recomputed here from results.json alone, in the report's number format.
    fmt, rows = report.fmt, []
    for row in saved["stages"]["bench"]["record"]["results"]:
        m = row["methods"]
        label = f"w{row['width']} L{row['depth']} n{row['batch']} {row['dtype']}"
        low, high = row["manual_over_autodiff_interval"]
        roof_low, roof_high = m["manual"]["time_over_roofline_interval"]
        rows.append(
            [
                label,
                fmt(row["flops"]),
                fmt(statistics.median(m["manual"]["times_s"]) * 1e3),
                fmt(statistics.median(m["autodiff"]["times_s"]) * 1e3),
                fmt(statistics.median(m["roofline"]["times_s"]) * 1e3),
                fmt(statistics.median(np.divide(m["manual"]["times_s"], m["autodiff"]["times_s"]))),
                f"{fmt(low)} to {fmt(high)}",
                fmt(statistics.median(np.divide(m["manual"]["times_s"], m["roofline"]["times_s"]))),
                f"{fmt(roof_low)} to {fmt(roof_high)}",
            ]
        )
        rows.append(
            [
                label,
                *(
                    fmt(row["flops"] / statistics.median(m[k]["times_s"]) / 1e9)
                    for k in ("manual", "autodiff", "roofline")
                ),
                fmt(m["manual"]["temp_bytes"] / 1024),
                fmt(m["autodiff"]["temp_bytes"] / 1024),
                fmt(m["manual"]["xla_flops"] / m["autodiff"]["xla_flops"]),
            ]
        )
    return rows


def test_rendered_numbers_equal_results_json(written):
    saved = json.loads((written / "results.json").read_text())
    fmt = report.fmt
    expected = expected_bench_rows(saved)
    verdict = {True: "target met", False: "target missed", None: "n/a"}
    for g in saved["stages"]["bench"]["record"]["goals"]:
        interval = "–" if g["interval"] is None else " to ".join(map(fmt, g["interval"]))
        expected.append(
            [
                g["name"],
                g["target"],
                fmt(g["measured"]),
                interval,
                verdict[recomputed_verdict(g)],
                g["where"],
                g["detail"],
            ]
        )
    training = saved["stages"]["training"]["record"]
    expected += [
        [
            {"manual": "manual", "autodiff": "jax.grad"}[grad],
            fmt(history["train_loss"][-1]),
            fmt(history["validation_loss"][-1]),
            fmt(history["validation_accuracy"][-1]),
            fmt(training["elapsed_s"][grad]),
        ]
        for grad, history in training["histories"].items()
    ]
    suite = saved["stages"]["verification"]["record"]
    for dtype in sorted({c["dtype"] for c in suite["cases"]}):
        cases = [c for c in suite["cases"] if c["dtype"] == dtype]
        ratios = [max(layer["worst_ratio"] for layer in c["layers"]) for c in cases]
        expected.append(
            [
                dtype,
                str(len(cases)),
                str(sum(not c["ok"] for c in cases)),
                str(sum(c["kink"] for c in cases)),
                fmt(statistics.median(ratios)),
                fmt(max(ratios)),
            ]
        )
    kill_rows = [
        [
            mutant["name"],
            mutant["corrupts"],
            str(len(mutant["cases"])),
            str(sum(c["killed"] for c in mutant["cases"])),
            str(sum(c["localised"] for c in mutant["cases"])),
            mutant["description"],
        ]
        for mutant in saved["stages"]["kill_matrix"]["record"]["mutants"]
    ]
    # The detection-power record: 0 of 4 false alarms for netcheck, 1 of 2 for check_grads;
    # per mutation the smallest ε flagged in every case, read off the fractions.
    expected.append(
        [
            "float32",
            "4",
            "0 / 0",
            "0.01",
            "1",
            "0.1",
            "1",
            "2",
            "1",
            "no measure: 1 of 2 correct gradients already fail",
            "no measure: 1 of 2 correct gradients already fail",
        ]
    )
    md_rows = markdown_rows(written / "report.md")
    page = parse_page(written / "index.html")
    for row in expected:
        assert row in md_rows
        assert row in page.rows
    # The lecture's notation: as written in Markdown, with superscripts in HTML.
    assert kill_rows == [
        ["slide_sign", "δ^L", "1", "1", "1", "δ^L = G(L)(y - ŷ)"],
        ["no_g_prime", "δ^{L-1}", "2", "1", "0", "G(ℓ) dropped"],
    ]
    assert all(row in md_rows for row in kill_rows)
    assert ["slide_sign", "δ<sup>L</sup>", "1", "1", "1", "δ<sup>L</sup> = G(L)(y - ŷ)"] in (
        page.marked_rows
    )
    assert ["no_g_prime", "δ<sup>L-1</sup>", "2", "1", "0", "G(ℓ) dropped"] in page.marked_rows
    gap = fmt(training["max_abs_train_loss_difference"])
    manual = training["histories"]["manual"]["train_loss"]
    auto = training["histories"]["autodiff"]["train_loss"]
    assert gap == fmt(max(abs(a - b) for a, b in zip(manual, auto, strict=True)))
    assert f"train loss over the epochs: {gap}." in (written / "report.md").read_text()


def test_text_is_left_aligned_numbers_right_aligned_and_notation_is_html(written):
    page = parse_page(written / "index.html")
    index = next(i for i, row in enumerate(page.rows) if row and row[0] == "slide_sign")
    classes = page.classes[index]
    assert [c.split()[0] for c in classes] == ["text", "text", "num", "num", "num", "text"]
    header = page.rows.index(
        ["mutant", "corrupts", "cases", "caught", "right layer named", "the mistake"]
    )
    assert [c.split()[0] for c in page.classes[header]] == [
        "text",
        "text",
        "num",
        "num",
        "num",
        "text",
    ]
    html_text = (written / "index.html").read_text()
    assert "δ<sup>L</sup> = G(L)(y - ŷ)" in html_text
    assert "δ<sup>L-1</sup>" in html_text and "δ^{L-1}" not in html_text
    assert "<sup>" not in (written / "report.md").read_text()


def test_notation():
    assert render.notation("δ^{L-1} = G(L-1) W_{L-1}ᵀ δ^L") == (
        "δ<sup>L-1</sup> = G(L-1) W<sub>L-1</sub>ᵀ δ<sup>L</sup>"
    )
    assert render.notation("∂L/∂b_L, a^ℓ for a^{ℓ-1}, z^2 < 3") == (
        "∂L/∂b<sub>L</sub>, a<sup>ℓ</sup> for a<sup>ℓ-1</sup>, z<sup>2</sup> &lt; 3"
    )


def test_figure_case_ids_are_keyed_in_legend_tables(record, written):
    page = parse_page(written / "index.html")
    suite = record["stages"]["verification"]["record"]
    for index, case in enumerate(suite["cases"], start=1):
        spec = case["spec"]
        row = [
            f"c{index}",
            spec["activation"],
            spec["output_activation"],
            spec["loss"],
            "x".join(map(str, spec["sizes"])),
            str(spec["batch"]),
            "yes" if spec["bias"] else "no",
            spec["dtype"],
            str(spec["seed"]),
        ]
        assert row in page.rows
    assert ["k1", "tanh-case-1"] in page.rows and ["k2", "relu-case-2"] in page.rows


def test_every_referenced_figure_is_a_valid_png(written):
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (written / "report.md").read_text())
    html_images = parse_page(written / "index.html").images
    assert md_images == html_images
    assert set(md_images) == {spec.filename for spec in figures.FIGURES}
    for name in md_images:
        data = (written / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert image.shape[1] >= 1200


# ----- the training comparison ---------------------------------------------------------


def test_training_uses_the_gradient_it_names(record, monkeypatch):
    # Break only the manual gradient (scaled by 3): the "manual" run must change and the
    # "jax.grad" run must stay exactly as it was. A "jax.grad" run that used the manual
    # gradient, or a "manual" run that used jax.grad, fails here.
    real = trainer.GRADS["manual"]

    def tripled(net, params, x, y):
        loss, grads = real(net, params, x, y)
        return loss, jax.tree.map(lambda g: 3 * g, grads)

    monkeypatch.setitem(trainer.GRADS, "manual", tripled)
    broken = report.training_comparison(TINY_TRAINING)
    before = record["stages"]["training"]["record"]["histories"]
    assert broken["histories"]["autodiff"]["train_loss"] == before["autodiff"]["train_loss"]
    assert broken["histories"]["manual"]["train_loss"] != before["manual"]["train_loss"]
    assert broken["max_abs_train_loss_difference"] > 10 * (
        record["stages"]["training"]["record"]["max_abs_train_loss_difference"] + 1e-6
    )


# ----- files on disk -------------------------------------------------------------------


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


def test_a_record_with_a_stage_this_netcheck_does_not_know_still_renders(record, tmp_path):
    newer = only(record, "training")
    newer["stages"]["a_future_stage"] = {"elapsed_s": 1.0, "record": {"rows": []}}
    target = report.write_report(newer, tmp_path / "newer")
    text = (target / "index.html").read_text()
    assert "a_future_stage" in text and "its record is in results.json" in text


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", r"is not valid JSON: .* \(line 1, column 2\)"),
        ("[1, 2]", "is not a netcheck report"),
        (
            json.dumps({"kind": "netcheck.report", "schema_version": 1, "stages": {}}),
            "has schema_version 1; this netcheck reads schema_version 3",
        ),
        (json.dumps({"kind": "netcheck.report", "schema_version": 3}), "has no 'stages'"),
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

    # The training figure fails after the kill matrix's is already in the staging folder.
    patched = tuple(
        figures.FigureSpec(s.filename, s.stage, broken, s.caption) if s.stage == "training" else s
        for s in figures.FIGURES
    )
    monkeypatch.setattr(render, "FIGURES", patched)
    small = only(record, "kill_matrix", "training")
    with pytest.raises(RuntimeError, match="simulated crash while drawing"):
        report.write_report(small, written)
    with pytest.raises(RuntimeError, match="simulated crash while drawing"):
        report.write_report(small, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test"]
    assert [p.name for p in written.iterdir()] == ["index.html"]
    assert (written / "index.html").read_text() == "the previous report"


# ----- running -------------------------------------------------------------------------


def test_progress_off_a_terminal_is_one_line_per_stage(capsys):
    # stderr is captured here, not a terminal: no bars, one line per finished stage, and
    # the stages are told not to draw bars.
    told = []
    stages = {
        "kill_matrix": lambda progress: told.append(progress) or kill_record(),
        "detection_power": lambda progress: told.append(progress) or power_record(),
    }
    report.run_report(stages, progress=True)
    assert told == [False, False]
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("report: kill_matrix done in ")
    assert lines[1].startswith("report: detection_power done in ")


def test_the_run_states_the_load_at_its_start_and_end(record, written):
    start, end = record["environment"]["load_average"], record["load_average_after"]
    if start is None:
        pytest.skip("no load average on this platform")
    text = (written / "index.html").read_text()
    assert f"at the start: {report.fmt(start)}, at the end: {report.fmt(end)}" in text


def test_every_stage_has_a_section():
    assert tuple(tables.SECTIONS) == report.STAGES


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
