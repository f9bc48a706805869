"""Downloading a file: streamed with a progress bar, checked, and written atomically.

The one download path of the project: the third-party split lists (``depth_hints.splits``) and
the released models and predictions (``depth_hints.released_models``) come through
``download``. (ImageNet weights come through ``torch.hub``, which the networks use directly:
``networks`` imports nothing from this package.)

A download is streamed into a temporary file beside the target (``atomic_write``); its length
is checked against the server's Content-Length and its md5 / sha256 against the expected ones
before it is renamed into place. A failed, cut or corrupt download leaves no target behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request

from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError

CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 20.0


class DownloadError(DepthHintsError):
    """A download that failed or did not match its checksum; the message names the URL and
    how to place the file by hand."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest (``hashlib`` name, e.g. sha256 or md5) of a file."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    return file_digest(path, "sha256")


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def download(url: str, target: str | os.PathLike, *, md5: str | None = None,
             sha256: str | None = None, manual: str = "", error: type = DownloadError,
             timeout: float = DEFAULT_TIMEOUT_S, progress: bool = False, desc: str | None = None,
             opener=urllib.request.urlopen) -> str:
    """Download ``url`` to ``target`` atomically -> the file's sha256.

    ``md5`` / ``sha256``: expected hex digests (checked when given). ``manual``: how to place
    the file by hand, appended to the errors. ``error``: the DepthHintsError subclass raised
    (one line naming the URL) when offline, on an HTTP error, a cut transfer (fewer bytes than
    the Content-Length) or a checksum mismatch; the target is then left as it was.
    ``opener(url, timeout=...)``: returns a readable response (tests pass their own)."""
    hint = f" {manual}" if manual else ""
    try:
        with opener(url, timeout=timeout) as response, atomic_write(target, "wb") as f:
            total = _content_length(response)
            md5_hash, sha256_hash = hashlib.md5(), hashlib.sha256()
            received = 0
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=desc or os.path.basename(os.fspath(target)), leave=False)
            try:
                while True:
                    block = response.read(CHUNK_BYTES)
                    if not block:
                        break
                    f.write(block)
                    md5_hash.update(block)
                    sha256_hash.update(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and received != total:
                raise error(f"Download of {url} ended after {received} of {total} bytes (connection "
                            f"lost?); nothing was saved. Try again.{hint}")
            for name, expected, actual in (("md5", md5, md5_hash.hexdigest()),
                                           ("sha256", sha256, sha256_hash.hexdigest())):
                if expected is not None and actual != expected.lower():
                    raise error(f"{url}: {name} {actual} != expected {expected}; not saved "
                                f"(a corrupt or changed file).{hint}")
            return sha256_hash.hexdigest()
    except DepthHintsError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = " ".join(str(getattr(e, "reason", None) or e).split()) or type(e).__name__
        raise error(f"Could not download {url} ({reason}).{hint}") from None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """Hold an exclusive lock on ``path`` (created if needed) while the block runs: processes
    that download the same thing wait for each other. Where ``fcntl`` is missing (Windows) it
    does nothing; the temporary-file-and-rename writes still keep every reader safe."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing releases the lock
