"""Atomic writes: the user's umask decides the permissions; nothing half-written is left."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import netcheck._io
from netcheck._io import (
    check_writable,
    make_temporary_directory,
    write_bytes_atomic,
    write_json_atomic,
)


@pytest.fixture
def umask():
    """Set the process umask for one test; the previous one comes back afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_gets_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = write_bytes_atomic(tmp_path / "out.bin", b"abc")
    assert _mode(path) == expected
    assert path.read_bytes() == b"abc"


def test_overwriting_gives_the_umask_too_and_replaces_the_content(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "record.json"
    target.write_text("old")
    target.chmod(0o600)  # what the earlier writer left behind
    write_json_atomic(target, {"a": [1, 2]})
    assert _mode(target) == 0o644
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_temporary_folder_gets_the_umask(tmp_path, umask):
    umask(0o022)
    first = make_temporary_directory(tmp_path, ".report.tmp-")
    second = make_temporary_directory(tmp_path, ".report.tmp-")
    assert first != second and first.name.startswith(".report.tmp-")
    assert _mode(first) == 0o755
    umask(0o077)
    assert _mode(make_temporary_directory(tmp_path, "x-")) == 0o700


def test_a_crash_mid_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"good")

    def crash(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(netcheck._io.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_taken_temporary_name_is_skipped(tmp_path, monkeypatch):
    names = iter(["aaaaaaaaaaaa", "aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(netcheck._io.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".f.txt.aaaaaaaaaaaa.tmp").write_text("someone else's")
    write_bytes_atomic(tmp_path / "f.txt", b"mine")
    assert (tmp_path / "f.txt").read_bytes() == b"mine"
    assert (tmp_path / ".f.txt.aaaaaaaaaaaa.tmp").read_text() == "someone else's"


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        ("missing/out.json", FileNotFoundError, "folder .*missing.* does not exist"),
        ("a_folder", IsADirectoryError, "a_folder' is a folder"),
    ],
    ids=["missing-folder", "onto-a-folder"],
)
def test_unwritable_targets_are_refused_before_anything_is_written(tmp_path, target, error, match):
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(error, match=match):
        check_writable(tmp_path / target)
    with pytest.raises(error, match=match):
        write_bytes_atomic(tmp_path / target, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder"]
    assert list((tmp_path / "a_folder").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            check_writable(folder / "out.json")
    finally:
        folder.chmod(0o755)
