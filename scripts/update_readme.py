"""Regenerate the measured tables of the README and the docs from the committed artifacts.

    python scripts/update_readme.py           # rewrite the generated blocks of DOCUMENTS
    python scripts/update_readme.py --check   # exit 1 if any block is stale

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``
and is drawn from ``reports/artifacts/<file>`` by the report's own table functions
(``netcheck.report.tables``), so the README, the report and the artifact say the same.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netcheck.bench import custom_rules, trainer_speed
from netcheck.report import render, tables

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "reports" / "artifacts"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "agreement.md")
"""The files whose generated blocks this script draws."""


def _provenance(record: dict[str, Any]) -> str:
    env = record.get("environment", {})
    where = f"{env['device']} ({env['platform']})" if "device" in env else "this machine"
    load = env.get("load_average")
    load_text = "" if load is None else f", load average {load:.1f} at the start"
    return (
        f"Measured by `{record['command']}` on {where}, {record['created'][:10]}"
        f"{load_text}; the record is `reports/artifacts/`."
    )


def _tables(draw: Callable[[dict[str, Any]], list[tables.Table]]) -> Callable[[dict], str]:
    """A block of the report's own tables, then where the record comes from."""

    def text(record: dict[str, Any]) -> str:
        parts = [render.markdown_table(table).strip() for table in draw(record)]
        return "\n\n".join([*parts, _provenance(record)])

    return text


BLOCKS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "detection_power": (
        "detection_power.json",
        _tables(lambda record: [tables.power_table(record)]),
    ),
    "verifier_cost": ("verifier_cost.json", _tables(tables.verifier_cost_tables)),
    "bench": ("bench.json", _tables(lambda record: [tables.goal_table(record["goals"])])),
    "custom_rules": ("custom_rules.json", _tables(custom_rules.tables_of)),
    "train_bench": (
        "trainer_speed.json",
        lambda record: trainer_speed.readme_section(record, "reports/artifacts/trainer_speed.json"),
    ),
}
"""Block name -> (artifact file, the Markdown drawn from its record)."""


def block_text(name: str) -> str:
    """The Markdown of one generated block, from its artifact."""
    filename, draw = BLOCKS[name]
    return draw(json.loads((ARTIFACTS / filename).read_text(encoding="utf-8"))).strip()


def updated(text: str) -> str:
    """``text`` with every generated block it holds redrawn from its artifact."""

    def redraw(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<!-- generated: {name} -->\n{block_text(name)}\n<!-- end generated: {name} -->"

    return re.sub(
        r"<!-- generated: (\w+) -->.*?<!-- end generated: \1 -->", redraw, text, flags=re.S
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a document is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        new = updated(text)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"stale generated tables in {names}: run scripts/update_readme.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
