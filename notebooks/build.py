"""Execute the notebooks' text sources and write each paired ``.ipynb`` with its outputs.

Each notebook's source is a jupytext percent file beside it (``01_backprop_by_hand.py`` for
``01_backprop_by_hand.ipynb``); the pair is declared in the file's header
(``formats: ipynb,py:percent``), so Jupyter with jupytext keeps both in step while you edit.
From the repository root::

    python notebooks/build.py                             # all notebooks
    python notebooks/build.py notebooks/02_training.py    # the ones named

Cells run top to bottom in a fresh kernel of this interpreter (the environment where netcheck
is installed), in ``notebooks/``. No timestamps are recorded and cell ids come from the
cells' text, so a rebuild diffs cleanly.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("[0-9][0-9]_*.py"))
"""The notebook sources: ``NN_name.py``."""

CELL_TIMEOUT_S = 300
"""Per-cell limit; each notebook as a whole runs in well under a minute on a CPU."""


def set_ids_from_text(notebook: nbformat.NotebookNode) -> None:
    """Give each cell an id made from its text (jupytext draws random ones): stable rebuilds."""
    taken: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        cell.id = hashlib.sha1(cell.source.encode()).hexdigest()[:8]
        if cell.id in taken:  # two cells with the same text
            cell.id += f"-{index}"
        taken.add(cell.id)


def build(source: Path) -> Path:
    """Execute ``source`` (a percent-format ``.py``) and write the ``.ipynb`` paired with it."""
    notebook = jupytext.read(source)
    set_ids_from_text(notebook)
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
        record_timing=False,
    ).execute()
    target = source.with_suffix(".ipynb")
    jupytext.write(notebook, target)
    return target


def main(argv: list[str]) -> int:
    for source in [Path(arg).resolve() for arg in argv] or SOURCES:
        print(f"wrote {build(source)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
