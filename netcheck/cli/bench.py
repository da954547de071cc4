"""``netcheck bench``: manual backprop beside jax.grad and the roofline, over a grid of shapes.

Prints one line per shape (median step times, ratios, compiled memory) and the performance
goals, each "target met" or "target missed" (judged by the 95% bootstrap interval of the
paired per-round ratios, see ``netcheck.bench.step.performance_goals``); ``--json PATH``
saves the whole record (every timing round, the device, platform, JAX version and matmul
precision). Exit 0 when done, also when a target is missed; 1 with ``--strict`` when a
target is missed; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from netcheck._io import write_json_atomic
from netcheck.bench import step, verifier_cost
from netcheck.cli import EXIT_CHECK_FAILED, EXIT_OK, UsageError, int_list
from netcheck.report.tables import goal_line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``netcheck bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="time manual backprop vs jax.grad vs the matmuls alone",
        description="Time the manual gradient, jax.grad and the roofline (the step's matrix "
        "products alone), interleaved per shape, with compiled temporary memory. Each "
        "performance goal is reported as 'target met' or 'target missed', judged by the 95%% "
        "bootstrap interval of the paired per-round ratios (missed only when the whole "
        "interval lies beyond the target).",
        epilog="Exit codes: 0 done (also when a target is missed); 1 a target missed, with "
        "--strict only; 2 bad usage or input.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few small shapes (seconds)")
    size.add_argument(
        "--large", action="store_true", help="widths up to 8192, float32 and bfloat16 (GPUs)"
    )
    parser.add_argument(
        "--verifier",
        action="store_true",
        help="time the verifier instead: check_gradient, verify and check_grads as multiples "
        "of one float64 jax.grad, over depths 2-64 and widths 64-2048 (with --quick: two "
        "tiny models); the grid overrides below do not apply",
    )
    parser.add_argument("--widths", type=int_list, help="override the grid's widths, e.g. 64,256")
    parser.add_argument("--depths", type=int_list, help="override the depths, e.g. 2,5")
    parser.add_argument("--batches", type=int_list, help="override the batch sizes, e.g. 1,1024")
    parser.add_argument(
        "--dtypes", type=_str_list, help=f"override the dtypes ({', '.join(step.DTYPES)})"
    )
    parser.add_argument(
        "--methods", type=_str_list, help=f"methods to run ({', '.join(step.METHODS)})"
    )
    parser.add_argument("--rounds", type=int, help="least number of interleaved rounds per shape")
    parser.add_argument(
        "--matmul-precision",
        choices=("default", "high", "highest"),
        help="jax.default_matmul_precision for the run (recorded either way)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the full record as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a performance target is missed (without it, missed targets are "
        "reported and the exit code stays 0)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )
    parser.set_defaults(handler=run)


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def grid_from_args(args: argparse.Namespace) -> step.Grid:
    """The grid named by ``--quick``/``--large`` (else ``default``) with any overrides."""
    base = step.GRIDS["quick" if args.quick else "large" if args.large else "default"]
    overrides: dict[str, Any] = {
        field: getattr(args, field)
        for field in ("widths", "depths", "batches", "dtypes", "methods", "rounds")
        if getattr(args, field) is not None
    }
    if not overrides:
        return base
    return dataclasses.replace(base, name=f"{base.name}+custom", **overrides)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print a table and the goals; save ``--json``."""
    if args.json:
        _check_writable(args.json)
    if args.verifier:
        if args.large:
            raise UsageError("--verifier has its own grid: use it alone or with --quick")
        grid_name = "quick" if args.quick else "default"
        rounds = args.rounds if args.rounds is not None else 5
        record = verifier_cost.run_verifier_bench(grid_name, rounds, not args.no_progress)
        print(verifier_cost.format_table(record))
    else:
        record = step.run_bench(
            grid_from_args(args),
            progress=not args.no_progress,
            matmul_precision=args.matmul_precision,
        )
        print(format_table(record))
    if args.json:
        write_json_atomic(args.json, record)
        print(f"wrote {args.json}")
    missed = [goal for goal in record["goals"] if goal["met"] is False]
    return EXIT_CHECK_FAILED if args.strict and missed else EXIT_OK


def _check_writable(path: str) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        raise UsageError(f"--json: folder {str(folder)!r} does not exist")


def format_table(record: dict[str, Any]) -> str:
    """The record as plain text: environment, one line per shape, the goals."""
    env = record["environment"]
    lines = [
        f"device {env['device']} ({env['platform']}), jax {env['jax_version']}, "
        f"matmul precision {env['matmul_precision']}, grid {record['grid']['name']}",
        f"{'shape':<26}{'manual ms':>11}{'jax.grad ms':>13}{'roofline ms':>13}"
        f"{'man/grad':>10}{'man/roof':>10}{'GFLOP/s':>10}{'temp KiB m/g':>16}",
    ]
    for row in record["results"]:
        m = row["methods"]
        manual, auto, roof = m.get("manual"), m.get("autodiff"), m["roofline"]
        temp = "–"
        if manual and auto and manual["temp_bytes"] is not None and auto["temp_bytes"] is not None:
            temp = f"{manual['temp_bytes'] / 1024:g}/{auto['temp_bytes'] / 1024:g}"
        lines.append(
            f"{step.row_label(row):<26}{_ms(manual):>11}{_ms(auto):>13}{_ms(roof):>13}"
            f"{_num(row.get('manual_over_autodiff')):>10}"
            f"{_num(manual and manual['time_over_roofline']):>10}"
            f"{_num(manual and manual['flops_per_s'] / 1e9):>10}{temp:>16}"
        )
    lines.append("performance goals (judged by the 95% interval of paired per-round ratios):")
    lines += [f"  {goal_line(goal)}" for goal in record["goals"]]
    return "\n".join(lines)


def _ms(stats: dict[str, Any] | None) -> str:
    return "–" if not stats else f"{stats['median_s'] * 1e3:.4g}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
