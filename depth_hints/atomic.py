"""Atomic file writes: the one way the project writes a file.

The data goes to a uniquely named temporary file in the target's folder (so parallel writers
never share one, and the rename stays on one file system), is flushed and fsync'd, then renamed
over the target: a reader sees the old file or the new one, never half of one. The temporary
name is ``<name>.tmp<random>``: it never ends like the target (``.npy``, ``.png`` ...), so a
killed run leaves nothing a reader could take for a result.
"""
from __future__ import annotations

import contextlib
import os
import secrets


def temporary_prefix(path: str | os.PathLike) -> str:
    """The prefix of ``path``'s temporary files: ``<basename>.tmp``."""
    return os.path.basename(os.fspath(path)) + ".tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """``with atomic_write(path, "w") as f: ...`` writes ``path`` atomically (creating its
    folder). On an exception the temporary file is removed and the target left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    while True:  # a fresh name; O_EXCL: never another writer's file. 0o666: the umask applies
        tmp = os.path.join(folder, temporary_prefix(path) + secrets.token_hex(6))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
