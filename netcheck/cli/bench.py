"""`netcheck bench`: placeholder until its issue lands (replace this whole module)."""

from __future__ import annotations

import argparse

from netcheck.cli import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="(not built yet)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'netcheck bench' is not built yet")
