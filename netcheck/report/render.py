"""Rendering a report: a record in, ``reports/<name>/`` out, through Jinja2 templates.

``write_report`` writes ``results.json``, the PNG figures of
``netcheck.report.figures``, ``report.md`` and ``index.html`` (self-contained apart from
the PNGs beside it, which it links; no server needed). The page and the Markdown are the
templates ``templates/index.html`` and ``templates/report.md`` filled with the same
``Page``: the verdict (``netcheck.report.tables.checklist``), the run, and one
``Shown`` section per stage of the record (its tables, figures and legend tables).
Nothing here runs a stage.

Writing is atomic: the directory is built under a temporary name beside its destination and
renamed into place, so a failed or interrupted run leaves the previous report (or nothing)
behind, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from netcheck._io import make_temporary_directory, write_bytes_atomic
from netcheck.report.figures import FIGURES, png_bytes
from netcheck.report.tables import (
    SECTIONS,
    Check,
    Table,
    checklist,
    closing_lines,
    headline,
    run_lines,
)

Record = dict[str, Any]


def write_report(record: Record, directory: str | os.PathLike[str]) -> Path:
    """Render ``record`` into ``directory``, atomically.

    Everything is first written into a temporary directory beside ``directory``; only
    when every file is complete is it renamed into place (replacing an older report).
    On any error the temporary directory is removed and ``directory`` is left untouched.

    Args:
        record: a report record (from ``run_report`` or
            ``load_record``).
        directory: where the report goes, e.g. ``reports/latest``.

    Returns:
        ``directory`` as a ``Path``.
    """
    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    # The folder and its files get the user's umask, as any folder and file they make.
    staging = make_temporary_directory(parent, prefix=f".{directory.name}.tmp-")
    try:
        render_into(record, staging)
        _replace_directory(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is swapped out, then removed."""
    if not target.exists():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.rename(target, old / target.name)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def render_into(record: Record, directory: Path) -> list[str]:
    """Write ``results.json``, the figures, ``report.md`` and ``index.html`` into a folder.

    Returns:
        The figure file names written, in display order.
    """
    # Compact: the record of a default report is ~40% smaller without indentation.
    text = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    write_bytes_atomic(directory / "results.json", text.encode("utf-8"))
    figures = []
    for spec in FIGURES:
        stage = record["stages"].get(spec.stage)
        if stage is None:
            continue
        write_bytes_atomic(directory / spec.filename, png_bytes(spec.render(stage["record"])))
        figures.append(spec.filename)
    page = build_page(record, figures)
    write_bytes_atomic(directory / "report.md", render_markdown(page).encode("utf-8"))
    write_bytes_atomic(directory / "index.html", render_html(page).encode("utf-8"))
    return figures


# ----- what the templates are given ----------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One section as drawn: heading, tables, figures ``(file, caption)``, legend tables."""

    stage: str
    title: str
    tables: list[Table]
    figures: list[tuple[str, str]]
    legends: list[Table]


@dataclass(frozen=True)
class Page:
    """Everything both templates draw, in order."""

    name: str
    headline: list[tuple[str, bool | None]]
    checks: list[Check]
    run: list[str]
    sections: list[Shown]
    closing: list[str]


def build_page(record: Record, figures: Sequence[str]) -> Page:
    """The page of a record whose figures ``figures`` (file names) were written.

    Stages this netcheck has no section for are shown by name with a pointer to
    ``results.json``, so a record with newer stages still renders.
    """
    checks = checklist(record)
    shown = []
    known = [stage for stage in SECTIONS if stage in record["stages"]]
    unknown = [stage for stage in record["stages"] if stage not in SECTIONS]
    for stage in known:
        tables = SECTIONS[stage].tables(record["stages"][stage]["record"])
        shown.append(
            Shown(
                stage,
                SECTIONS[stage].title,
                [t for t in tables if not t.legend],
                [
                    (spec.filename, spec.caption)
                    for spec in FIGURES
                    if spec.stage == stage and spec.filename in figures
                ],
                [t for t in tables if t.legend],
            )
        )
    for stage in unknown:
        note = Table(
            f"Stage {stage!r}",
            [],
            [],
            note="This netcheck has no tables for this stage; its record is in results.json.",
        )
        shown.append(Shown(stage, stage, [note], [], []))
    return Page(
        name=record["name"],
        headline=headline(checks),
        checks=checks,
        run=run_lines(record),
        sections=shown,
        closing=closing_lines(record),
    )


# ----- the templates -------------------------------------------------------------------

_SCRIPT = re.compile(r"([\^_])(?:\{([^{}]*)\}|([A-Za-z0-9ℓ]))")


def notation(text: str) -> Markup:
    """The lecture's notation as HTML: ``δ^{L-1}`` -> ``δ<sup>L-1</sup>``, ``W_ℓ`` ->
    ``W<sub>ℓ</sub>`` (a braced group, or one letter or digit); the rest escaped."""

    def script(match: re.Match[str]) -> str:
        tag = "sup" if match.group(1) == "^" else "sub"
        return f"<{tag}>{match.group(2) if match.group(2) is not None else match.group(3)}</{tag}>"

    return Markup(_SCRIPT.sub(script, str(escape(text))))


def markdown_cell(text: str) -> str:
    """A table cell for Markdown: ``|`` escaped."""
    return str(text).replace("|", "\\|")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("netcheck.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["notation"] = notation
    environment.filters["md"] = markdown_cell
    return environment


_ENVIRONMENT = _environment()


def render_html(page: Page) -> str:
    """The report as one HTML page; the PNG figures beside it are linked (no server needed)."""
    return _ENVIRONMENT.get_template("index.html").render(page=page)


def render_markdown(page: Page) -> str:
    """The report as Markdown, figures linked beside it."""
    return _ENVIRONMENT.get_template("report.md").render(page=page)


def markdown_table(table: Table) -> str:
    """One table as Markdown (a ``###`` heading, the pipe table, its note), as in report.md."""
    return str(_ENVIRONMENT.get_template("table.md").module.table(table))
