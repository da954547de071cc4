"""``netcheck``: the command line. ``netcheck verify | train | bench | report``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers
the subcommand with ``handler=run``, and ``run(args) -> int``. Exit codes: 0 all good,
1 a check failed, 2 bad usage or input, a missing optional dependency included (one line
on stderr, no traceback; set ``NETCHECK_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2

SUBCOMMANDS = ("verify", "train", "bench", "report")


class UsageError(Exception):
    """Bad usage or input at the command line: reported in one line, exit code 2."""


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: ``"16,16"`` -> ``(16, 16)``, with a one-line error otherwise.

    Every item must be an integer: an empty list (``""``) or an empty item (``"16,,16"``,
    ``"16,"``) is refused rather than silently dropped.
    """
    parts = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise argparse.ArgumentTypeError("expected comma-separated integers, got nothing")
    if "" in parts:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r} (item {parts.index('') + 1} is empty)"
        )
    try:
        return tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``netcheck`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="netcheck",
        description="Backpropagation by hand in JAX, verified against jax.grad.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        import_module(f"netcheck.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``netcheck`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on bad usage
    try:
        return args.handler(args)
    except (UsageError, ValueError, TypeError, OSError, ImportError) as error:
        if os.environ.get("NETCHECK_DEBUG"):
            raise
        print(f"netcheck {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"netcheck {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
