"""``netcheck report``: run the stages and write ``reports/<name>/`` (or re-render one).

``netcheck report`` runs the verification suite, the planted-bug kill matrix, detection
power, a reduced benchmark and a short training comparison, then writes ``index.html``,
``report.md``, ``results.json`` and the PNG figures into ``reports/<name>/`` atomically.
``--from results.json`` re-renders a saved record without recomputing anything. It prints
the verdict, the same checklist the page opens with: correctness checks PASS/FAIL,
performance goals "target met" / "target missed". Exit 0 when every correctness check
passed (also when a performance target is missed), 1 when one failed (a disagreeing
layer, a surviving planted bug, a false alarm) or, with ``--strict``, when a performance
target is missed; 2 on bad usage or input.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netcheck import report
from netcheck._io import write_json_atomic
from netcheck.bench import step
from netcheck.cli import EXIT_CHECK_FAILED, EXIT_OK, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``netcheck report``."""
    parser = subparsers.add_parser(
        "report",
        help="run every stage and write an HTML/Markdown report with figures",
        description="Run the verification suite, kill matrix, detection power, benchmark "
        "and training comparison, and write reports/<name>/ (index.html, report.md, "
        "results.json, figures), atomically. Prints the verdict: correctness checks PASS or "
        "FAIL, performance goals 'target met' or 'target missed' (judged by the 95%% "
        "bootstrap interval of the paired per-round ratios).",
        epilog="Exit codes: 0 every correctness check passed (also when a performance target "
        "is missed); 1 a correctness check failed, or a performance target was missed with "
        "--strict; 2 bad usage or input.",
    )
    parser.add_argument("--name", default="latest", help="report folder name (default: latest)")
    parser.add_argument(
        "--out-dir", default="reports", help="folder that holds the reports (default: reports)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="RESULTS_JSON",
        help="re-render a saved results.json instead of running the stages",
    )
    parser.add_argument(
        "--stages",
        type=lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
        help=f"only these stages ({', '.join(report.STAGES)}); default: all",
    )
    parser.add_argument(
        "--bench-grid",
        choices=tuple(step.GRIDS),
        help="benchmark grid of the bench stage (default: report, a reduced default grid; "
        "with --full: default)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full stages (216-case suite, kill matrix in float32 and float64, 1000 "
        "detection-power cases per dtype, the default bench grid): tens of minutes on a CPU",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results record here")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when a performance target is missed (correctness failures exit 1 always)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress output (bars on a terminal, else one line per stage on stderr)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run (or load) the report record, write the report, print where it is."""
    report.check_name(args.name)
    directory = Path(args.out_dir) / args.name
    if args.json and not Path(args.json).parent.is_dir():
        raise UsageError(f"--json: folder {str(Path(args.json).parent)!r} does not exist")
    if args.source is not None:
        if args.stages is not None:
            raise UsageError("--stages cannot be combined with --from (nothing is run)")
        record = report.load_record(args.source)
        record = {**record, "name": args.name}
    else:
        settings = stage_settings(args)
        record = report.run_report(
            report.default_stages(settings),
            name=args.name,
            settings=settings,
            progress=not args.no_progress,
        )
    report.write_report(record, directory)
    if args.json:
        write_json_atomic(args.json, record)
    print(f"wrote {directory / 'index.html'}")
    checks = report.checklist(record)
    for check in checks:
        print(check.line)
    return exit_code(checks, args.strict)


FULL_SETTINGS: dict[str, dict[str, Any]] = {
    "verification": {"quick": False},
    "kill_matrix": {},
    "detection_power": {},
    "bench": {"grid": "default"},
    "verifier_cost": {"grid": "default"},
    "training": {},
}
"""``--full``: every stage at its own function's defaults."""


def stage_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-stage settings from ``--full``, ``--bench-grid`` and ``--stages``."""
    base = FULL_SETTINGS if args.full else report.REPORT_SETTINGS
    settings = {stage: dict(options) for stage, options in base.items()}
    if args.bench_grid is not None:
        settings["bench"]["grid"] = args.bench_grid
    if args.stages is not None:
        unknown = sorted(set(args.stages) - set(report.STAGES))
        if unknown:
            raise UsageError(
                f"--stages: unknown stage(s) {', '.join(unknown)}; "
                f"known: {', '.join(report.STAGES)}"
            )
        settings = {stage: options for stage, options in settings.items() if stage in args.stages}
    return settings


def exit_code(checks: Sequence[report.Check], strict: bool) -> int:
    """1 when a correctness check failed, or with ``strict`` a performance target was missed."""
    counted = ("correctness", "performance") if strict else ("correctness",)
    failed = [check for check in checks if check.kind in counted and check.ok is False]
    return EXIT_CHECK_FAILED if failed else EXIT_OK
