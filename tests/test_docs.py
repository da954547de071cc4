"""The docs site builds with ``mkdocs build --strict``: every page, link, anchor and API entry.

Strict mode turns every warning into a failure: a page missing from the nav, a link to a
page or anchor that does not exist (including the links between the lecture page and the
notebooks, checked by ``docs/_hooks/repository_links.py``), and a docstring that the API
reference cannot parse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    pages = [
        "index.html",
        "lecture/index.html",
        "notebooks/01_backprop_by_hand/index.html",
        "api/network/index.html",
    ]
    for page in pages:
        assert (site / page).is_file(), page
    # The API reference is generated from the docstrings, not left empty.
    assert "manual_grad" in (site / "api/network/index.html").read_text(encoding="utf-8")
    # The notebooks are rendered with their outputs (a figure is an inline PNG).
    notebook = (site / "notebooks/01_backprop_by_hand/index.html").read_text(encoding="utf-8")
    assert "data:image/png;base64" in notebook


def test_nothing_in_the_repository_points_outside_it() -> None:
    """No tracked file names the folder of notes that lived beside the repository."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    this_test = Path(__file__).resolve().relative_to(ROOT).as_posix()
    offenders = [
        name
        for name in listed.stdout.split()
        if name != this_test
        and (ROOT / name).is_file()
        and not (ROOT / name).is_symlink()
        and "shared/" in (ROOT / name).read_text(encoding="utf-8", errors="replace")
    ]
    assert offenders == []
