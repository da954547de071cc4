"""``netcheck verify``: the verification suite, the mutant kill matrix, the detection power.

Exit codes: 0 every case passes (and, with ``--mutants``, every planted bug is killed
and localised and the correct code passes; with ``--power``, no false alarm); 1 a check
failed; 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from netcheck._io import write_json_atomic
from netcheck.bench import suite
from netcheck.cli import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from netcheck.nn.activations import HIDDEN_ACTIVATIONS
from netcheck.nn.losses import LOSSES
from netcheck.verifier.tolerance import NOISE_MULTIPLE, TIE_MULTIPLE, checked_constants


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``verify`` with its options."""
    parser = subparsers.add_parser(
        "verify",
        help="check the manual backprop against autodiff on the default suite",
        description=(
            "Verify the hand-written backprop layer by layer against float64 autodiff, with "
            "tolerances calibrated on autodiff's own error, on the default suite "
            f"({suite.SUITE_SPECS} specs x {suite.SUITE_SEEDS} seeds)."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="the quick selection (36 cases, no FD witness)"
    )
    parser.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, help="only this activation")
    parser.add_argument("--loss", choices=tuple(LOSSES), help="only this loss")
    parser.add_argument("--dtype", choices=suite.DTYPES, help="only this dtype")
    parser.add_argument(
        "--mutants",
        action="store_true",
        help=(
            "also run the planted bugs (kill matrix; float32 and float64, or --dtype; "
            "--activation/--loss select its specs too)"
        ),
    )
    parser.add_argument(
        "--power",
        type=int,
        metavar="N",
        help="also measure detection power on N correct cases per dtype, beside check_grads",
    )
    parser.add_argument(
        "--noise-multiple",
        type=float,
        default=NOISE_MULTIPLE,
        metavar="K",
        help=f"K: pass within K times autodiff's own error (default {NOISE_MULTIPLE:g})",
    )
    parser.add_argument(
        "--tie-multiple",
        type=float,
        default=TIE_MULTIPLE,
        metavar="T",
        help=f"T: the dtype floor, T roundings of the summed terms (default {TIE_MULTIPLE:g})",
    )
    parser.add_argument("--json", metavar="PATH", help="write every case's record here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the selected checks, print a summary, write ``--json``; return the exit code."""
    if args.json is not None and not Path(args.json).parent.is_dir():
        raise UsageError(f"--json: folder {str(Path(args.json).parent)!r} does not exist")
    if args.power is not None and args.power < 1:
        raise UsageError(f"--power must be a positive number of cases, got {args.power}")
    progress = not args.no_progress
    try:
        constants = checked_constants(args.noise_multiple, args.tie_multiple)
    except ValueError as error:
        raise UsageError(f"--noise-multiple/--tie-multiple: {error}") from None
    cases = suite.default_cases(args.quick, args.activation, args.loss, args.dtype)
    if not cases:
        raise UsageError("no case matches the filters")
    mutant_dtypes = (args.dtype,) if args.dtype else ("float32", "float64")
    if args.mutants:  # refuse filters the kill matrix cannot serve before any work
        suite.kill_cases(mutant_dtypes, activation=args.activation, loss=args.loss)
    # --quick leaves out the finite-difference witness (its compile time).
    record: dict[str, Any] = {
        "kind": "verify",
        "suite": suite.run_suite(cases, progress, witness=not args.quick, constants=constants),
    }
    print(suite_table(record["suite"]))
    ok = record["suite"]["ok"]
    if args.mutants:
        record["kill_matrix"] = suite.kill_matrix(
            mutant_dtypes,
            progress=progress,
            activation=args.activation,
            loss=args.loss,
            constants=constants,
        )
        print(kill_table(record["kill_matrix"]))
        matrix = record["kill_matrix"]
        ok = ok and matrix["all_killed"] and matrix["all_localised"] and matrix["control_ok"]
    if args.power is not None:
        dtypes = (args.dtype,) if args.dtype else suite.DTYPES
        record["detection_power"] = suite.detection_power(
            dtypes,
            args.power,
            check_grads_cases=min(args.power, 200),
            progress=progress,
            constants=constants,
        )
        print(power_table(record["detection_power"]))
        ok = ok and all(d["false_alarms"] == 0 for d in record["detection_power"]["dtypes"])
    record["ok"] = ok
    if args.json is not None:
        write_json_atomic(args.json, record)
    print("verify: OK" if ok else "verify: FAILED")
    sys.stdout.flush()
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )


def suite_table(record: dict[str, Any]) -> str:
    """Per dtype: cases, failures, worst distance/tolerance; then each failing case."""
    rows = []
    for dtype in suite.DTYPES:
        cases = [case for case in record["cases"] if case["dtype"] == dtype]
        if not cases:
            continue
        worst = max(
            float("inf") if case["worst_ratio"] is None else case["worst_ratio"] for case in cases
        )
        failed = sum(not case["ok"] for case in cases)
        kinks = sum(case["kink"] for case in cases)
        rows.append((dtype, str(len(cases)), str(failed), str(kinks), f"{worst:.3g}"))
    lines = [
        f"suite: {record['n_cases']} cases in {record['groups']} compiled groups, "
        f"{record['wall_s']:.1f} s",
        _table(("dtype", "cases", "failed", "kinks", "worst ratio"), rows),
    ]
    for case in record["cases"]:
        if not case["ok"]:
            lines.append(f"FAILED {case['id']} (layer {case['first_bad_layer']}):")
            lines += [f"  - {reason}" for reason in case["reasons"][:3]]
    return "\n".join(lines)


def kill_table(record: dict[str, Any]) -> str:
    """One line per mutant: cases run, killed, localised, what it corrupts."""
    rows = [
        (
            mutant["name"],
            str(len(mutant["cases"])),
            "yes" if mutant["killed"] else "NO",
            "yes" if mutant["localised"] else "NO",
            mutant["corrupts"],
        )
        for mutant in record["mutants"]
    ]
    control = "passes" if record["control_ok"] else "FAILS"
    lines = [
        f"kill matrix ({', '.join(record['dtypes'])}; correct code {control}):",
        _table(("mutant", "cases", "killed", "localised", "corrupts"), rows),
    ]
    if record["not_run"]:
        lines.append(f"not applicable to the selected specs: {', '.join(record['not_run'])}")
    return "\n".join(lines)


def power_table(record: dict[str, Any]) -> str:
    """Per dtype: false alarms and smallest detected ε, netcheck beside check_grads."""

    def eps(value: float | None) -> str:
        return "never" if value is None else f"{value:.2g}"

    rows = []
    for d in record["dtypes"]:
        theirs = d["check_grads"]
        rows.append(
            (
                d["dtype"],
                f"{d['false_alarms']}/{d['n_cases']}",
                eps(d["smallest_detected_all"]),
                eps(d["median_threshold"]),
                f"{theirs['false_alarms']}/{theirs['n_cases']}",
                eps(theirs["smallest_detected_all"]),
                eps(theirs["median_threshold"]),
            )
        )
    header = (
        "dtype",
        "false alarms",
        "ε caught always",
        "median ε",
        "check_grads FA",
        "check_grads ε always",
        "check_grads median",
    )
    return "detection power (one layer's gradient x (1+ε)):\n" + _table(header, rows)
