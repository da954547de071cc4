"""The comparison report: run the stages into one JSON record, then render that record.

Data flows one way, and running never mixes with rendering:

- ``stages`` runs the stages (verification suite, planted-bug kill
  matrix, detection power, benchmark, training comparison) through the lower layers and
  collects their plain-dict records into one *report record* (``run_report``);
  ``load_record`` reads one back from ``results.json``.
- ``tables`` turns a record into ``Table`` objects (strings,
  numbers through ``fmt``) and the ``checklist``: correctness checks (PASS/FAIL)
  and performance goals (target met / target missed, judged by intervals).
- ``figures`` turns a record into matplotlib figures, each from a
  pure ``*_data(record)`` function a test can call.
- ``render`` fills the Jinja2 templates (``templates/index.html``,
  ``templates/report.md``) with the verdict, the tables and the figures, and writes
  ``reports/<name>/`` atomically (``write_report``).

Nothing below ``stages`` runs training, timing or verification. A new section is one stage
function (``stages.py``: its runner, listed in ``STAGES``) and one entry in
``SECTIONS`` (its title and tables function); the templates
draw every section alike, in HTML and Markdown, and its figures are
``FigureSpec`` entries that name the stage.
"""

from netcheck.report.figures import FIGURES, FigureSpec, png_bytes
from netcheck.report.render import build_page, render_html, render_markdown, write_report
from netcheck.report.stages import (
    KIND,
    REPORT_SETTINGS,
    SCHEMA_VERSION,
    STAGES,
    TRAINING,
    bench_stage,
    check_name,
    default_stages,
    detection_power_stage,
    kill_matrix_stage,
    load_record,
    run_report,
    training_comparison,
    verification_stage,
)
from netcheck.report.tables import (
    SECTIONS,
    Check,
    Table,
    checklist,
    fmt,
    goal_line,
)

__all__ = [
    "FIGURES",
    "KIND",
    "REPORT_SETTINGS",
    "SCHEMA_VERSION",
    "SECTIONS",
    "STAGES",
    "TRAINING",
    "Check",
    "FigureSpec",
    "Table",
    "bench_stage",
    "build_page",
    "check_name",
    "checklist",
    "default_stages",
    "detection_power_stage",
    "fmt",
    "goal_line",
    "kill_matrix_stage",
    "load_record",
    "png_bytes",
    "render_html",
    "render_markdown",
    "run_report",
    "training_comparison",
    "verification_stage",
    "write_report",
]
