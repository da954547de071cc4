"""The docs site builds with ``mkdocs build --strict``, and its examples run.

Strict mode turns every warning into a failure: a page missing from the nav, a link to a
page or anchor that does not exist (including the links between the lecture page and the
notebooks, checked by ``docs/_hooks/repository_links.py``, tested here too), and a docstring
that the API reference cannot parse.

Code fenced as ``python`` in a page runs, block after block in one namespace; ``py`` marks
a fragment that is shown, not run (a signature, or code that needs the reader's own model).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mkdocs.structure.files import File, Files
from mkdocs_jupyter.plugin import NotebookFile

ROOT = Path(__file__).resolve().parents[1]


def _load_hook() -> Any:
    path = ROOT / "docs" / "_hooks" / "repository_links.py"
    spec = importlib.util.spec_from_file_location("repository_links", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _load_hook()


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
    _assert_the_api_reference_has_no_raw_roles(site)
    _assert_the_site_loads_nothing_from_outside(site)


RAW_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|ref):`")


def _assert_the_api_reference_has_no_raw_roles(site: Path) -> None:
    """A Sphinx role (``:func:`x` ``) is not Markdown: mkdocstrings prints it as text."""
    for page in sorted((site / "api").rglob("*.html")):
        raw = RAW_ROLE.findall(page.read_text(encoding="utf-8"))
        assert not raw, f"{page.relative_to(site)} shows {len(raw)} raw Sphinx role(s)"


EXTERNAL_ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(https?:)?//", re.I)


def _assert_the_site_loads_nothing_from_outside(site: Path) -> None:
    """Scripts, styles, fonts and images come with the site: the maths renders offline."""
    assert (site / "javascripts/mathjax/tex-chtml.js").is_file()
    fonts = site / "javascripts/mathjax/output/chtml/fonts/woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    for page in sorted(site.rglob("*.html")):
        external = EXTERNAL_ASSET.findall(page.read_text(encoding="utf-8"))
        assert not external, f"{page.relative_to(site)} loads {len(external)} asset(s) from outside"


@pytest.fixture
def site(tmp_path: Path) -> SimpleNamespace:
    """Three pages of a site, as MkDocs and mkdocs-jupyter list them."""
    docs, built = str(tmp_path / "docs"), str(tmp_path / "site")
    paths = ("lecture.md", "api/index.md", "notebooks/01_a.ipynb")
    files = Files([File(path, docs, built, True) for path in paths[:2]])
    files.append(NotebookFile(File(paths[2], docs, built, True), True, built))
    page = {path: SimpleNamespace(file=files.get_file_from_path(path)) for path in paths}
    return SimpleNamespace(files=files, lecture=page["lecture.md"], notebook=page[paths[2]])


def test_repository_links_become_site_links(site: SimpleNamespace) -> None:
    # Markdown in docs/: MkDocs itself then resolves the site path and checks it.
    markdown = "[n](../notebooks/01_a.ipynb#s) [a](api/index.md) [w](https://x.org/a.md)"
    assert HOOK.on_page_markdown(markdown, site.lecture, None, site.files) == (
        "[n](notebooks/01_a.ipynb#s) [a](api/index.md) [w](https://x.org/a.md)"
    )
    # A notebook's HTML: the URL of the page, relative to the notebook's own URL.
    html = '<a href="../docs/lecture.md#1-x">l</a> <a href="#here">h</a>'
    assert HOOK.on_page_content(html, site.notebook, None, site.files) == (
        '<a href="../../lecture/#1-x">l</a> <a href="#here">h</a>'
    )


def test_repository_links_to_missing_pages_and_anchors_are_warnings(
    site: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    HOOK.on_pre_build(None)
    with caplog.at_level(logging.WARNING):
        HOOK.on_page_markdown("[x](../docs/nope.md)", site.lecture, None, site.files)
        HOOK.on_page_content('<a href="../docs/lecture.md#2-y">', site.notebook, None, site.files)
        built = Path(site.lecture.file.abs_dest_path)
        built.parent.mkdir(parents=True)
        built.write_text('<h2 id="1-x">1. X</h2>', encoding="utf-8")
        HOOK.on_post_build(None)
    assert [record.getMessage() for record in caplog.records] == [
        "lecture.md links to '../docs/nope.md', which is no page of the site",
        "notebooks/01_a.ipynb links to #2-y, which lecture.md does not have",
    ]


EXAMPLE_PAGES = {
    "getting-started.md": (),
    "own-backward-pass.md": (),
    "devices.md": ("getting-started.md",),  # it continues the getting-started example
}
"""Pages with Python examples, and the pages whose examples run before theirs."""


def _python_blocks(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_every_page_with_python_examples_is_listed() -> None:
    pages = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert {page for page in pages if _python_blocks(page)} == set(EXAMPLE_PAGES)


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_the_python_examples_run(page: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for source in (*EXAMPLE_PAGES[page], page):
        for block in _python_blocks(source):
            exec(compile(block, str(ROOT / "docs" / source), "exec"), namespace)
    if page == "own-backward-pass.md":
        assert namespace["verdict"].ok
    if page == "devices.md":
        assert namespace["history"]["train_accuracy"][-1] > 0.9


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
