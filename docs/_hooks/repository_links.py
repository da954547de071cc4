"""MkDocs hook: links written between repository files also work on the site.

The lecture page and the notebooks link to each other as files of the repository
(``docs/lecture.md`` -> ``../notebooks/01_backprop_by_hand.ipynb#...`` and back), so the
links work on a code host and in Jupyter. On the site the notebooks live under
``notebooks/`` (``docs/notebooks`` links to ``../notebooks``) and ``docs/`` is the root.
This hook rewrites every relative link that reaches a repository path the site holds into
the URL of that page. A link into ``docs/`` or ``notebooks/`` that names no page, and an
anchor missing from the page built, are warnings (so ``mkdocs build --strict`` fails on
them). Links that stay inside the site, and external links, are left alone.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.repository_links")

_MARKDOWN_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HTML_LINK = re.compile(r'href="(?P<target>[^"]+)"')

_anchored_links: set[tuple[str, str, str, str]] = set()
"""This build's rewritten links with an anchor, checked at the end: ``(linking page, linked
page, its built HTML file, anchor)``."""


def _repository_path(site_path: str) -> str:
    """Where the file behind a site path lives in the repository."""
    if site_path.startswith("notebooks/"):
        return site_path
    return posixpath.join("docs", site_path)


def _site_path(repository_path: str) -> str | None:
    """The site path of a repository file, or None when the site does not hold it."""
    if repository_path.startswith("notebooks/"):
        return repository_path
    if repository_path.startswith("docs/"):
        return repository_path.removeprefix("docs/")
    return None


def _rewrite(target: str, page: Page, files: Files, *, to_url: bool) -> str:
    """``target`` as the page's author wrote it, made to work on the site.

    Args:
        target: the link's target, relative to the page's file in the repository.
        page: the page holding the link.
        files: the site's files.
        to_url: give the page's URL (in rendered HTML) instead of its source path (in
            Markdown, which MkDocs itself then turns into a URL and checks).
    """
    path, _, anchor = target.partition("#")
    if not path or "://" in path or path.startswith(("/", "mailto:", "data:")):
        return target
    page_dir = posixpath.dirname(page.file.src_uri)
    linked = files.get_file_from_path(posixpath.normpath(posixpath.join(page_dir, path)))
    if linked is None:  # not a link inside the site: read it as a repository path
        repository_dir = posixpath.dirname(_repository_path(page.file.src_uri))
        site_path = _site_path(posixpath.normpath(posixpath.join(repository_dir, path)))
        if site_path is None:
            return target
        linked = files.get_file_from_path(site_path)
        if linked is None:
            log.warning("%s links to %r, which is no page of the site", page.file.src_uri, target)
            return target
    elif not to_url:
        return target  # MkDocs resolves links inside the site itself
    if anchor:
        _anchored_links.add((page.file.src_uri, linked.src_uri, linked.abs_dest_path, anchor))
    if to_url:
        rewritten = linked.url_relative_to(page.file)
    else:
        rewritten = posixpath.relpath(linked.src_uri, page_dir or ".")
    return f"{rewritten}#{anchor}" if anchor else rewritten


def on_page_markdown(markdown: str, page: Page, config, files: Files) -> str:
    """Markdown pages: rewrite before MkDocs resolves and validates the links."""
    return _MARKDOWN_LINK.sub(
        lambda match: f"]({_rewrite(match['target'], page, files, to_url=False)})", markdown
    )


def on_page_content(html: str, page: Page, config, files: Files) -> str:
    """Notebook pages (rendered to HTML by mkdocs-jupyter, not by MkDocs): rewrite the HTML."""
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    return _HTML_LINK.sub(
        lambda match: f'href="{_rewrite(match["target"], page, files, to_url=True)}"', html
    )


def on_pre_build(config) -> None:
    _anchored_links.clear()


def on_post_build(config) -> None:
    """Every rewritten link's anchor names an element of the page built."""
    for source, linked, built, anchor in sorted(_anchored_links):
        if f'id="{anchor}"' not in Path(built).read_text(encoding="utf-8"):
            log.warning("%s links to #%s, which %s does not have", source, anchor, linked)
