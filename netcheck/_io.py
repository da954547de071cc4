"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Every file netcheck writes (``--json`` records, checkpoints, reports, datasets) goes through
``write_bytes_atomic``: the bytes land in a temporary file beside the target, are flushed
to disk, and replace the target in one ``os.replace``. The temporary file is created with mode
``0o666`` filtered by the process umask, as ``open()`` would create the target itself (0644
under umask 022), not with ``tempfile.mkstemp``'s private 0600.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

_CREATE_MODE = 0o666
"""The mode asked of ``os.open``; the kernel removes the umask's bits, as for ``open()``."""

_NAME_ATTEMPTS = 100


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a target that ``write_bytes_atomic`` could not write.

    Raises:
        FileNotFoundError: the folder does not exist.
        IsADirectoryError: ``path`` is a folder.
        PermissionError: the folder cannot be written to.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} does not exist (writing {path})")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a file name")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"folder {str(path.parent)!r} is not writable (writing {path})")
    return path


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions a plain ``open(path, "wb")`` would give it (``0o666`` less
    the umask). On any error the temporary file is removed and the old ``path`` is untouched.

    Raises:
        FileNotFoundError / IsADirectoryError / PermissionError: see ``check_writable``.
    """
    path = check_writable(path)
    descriptor, temporary = _create_temporary(path)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, exclusive ``.<name>.<random>.tmp`` beside ``path``: ``(descriptor, its path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_NAME_ATTEMPTS):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, flags, _CREATE_MODE), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name beside {path}")


def make_temporary_directory(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new, empty folder ``<prefix><random>`` in ``parent``, with the umask's permissions.

    Unlike ``tempfile.mkdtemp`` (always 0700), the folder gets ``0o777`` less the umask, as
    ``mkdir`` gives: a folder that is renamed into place is one the user reads like any other.
    """
    parent = Path(parent)
    for _ in range(_NAME_ATTEMPTS):
        directory = parent / f"{prefix}{secrets.token_hex(6)}"
        try:
            directory.mkdir(mode=0o777)
            return directory
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary folder name in {parent}")


def write_json_atomic(path: str | os.PathLike[str], record: Any) -> Path:
    """Write a JSON-able ``record`` to ``path`` atomically (indented, UTF-8, trailing newline)."""
    text = json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))
