"""PFM (portable float map) files, the format of SceneFlow's disparity maps.

Layout: a text header of three whitespace-separated fields, then raw float32 samples.
  magic   ``Pf`` (one channel) or ``PF`` (three channels, interleaved RGB)
  size    ``<width> <height>``
  scale   a non-zero float whose sign gives the byte order (negative = little-endian); its
          magnitude is a nominal scale that carries no meaning for disparity and is ignored
One whitespace byte ends the header; the rows follow bottom row first. ``read_pfm`` returns
rows top-down, as images are indexed everywhere else.
"""
from __future__ import annotations

from depth_hints.atomic import atomic_write
from depth_hints.errors import DepthHintsError
import math
import os


import numpy as np

_MAGIC_CHANNELS = {b"Pf": 1, b"PF": 3}
_WHITESPACE = b" \t\r\n"
_MAX_HEADER_BYTES = 256


class PFMError(DepthHintsError, ValueError):
    """A malformed or truncated PFM file; the message names the file and what is wrong."""


def _header_fields(data: bytes, path: str):
    """The four header tokens (magic, width, height, scale) and the offset of the first sample."""
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos] in _WHITESPACE:
            pos += 1
        start = pos
        while pos < len(data) and data[pos] not in _WHITESPACE:
            pos += 1
        if pos == start or pos >= len(data):
            names = ("magic", "width", "height", "scale")
            raise PFMError(f"PFM file {path}: header incomplete at its {names[len(fields)]} "
                           f"field (truncated, or not a PFM file).")
        if pos > _MAX_HEADER_BYTES:
            raise PFMError(f"PFM file {path}: no valid header in its first {_MAX_HEADER_BYTES} "
                           f"bytes (not a PFM file).")
        fields.append(data[start:pos])
    return fields, pos + 1  # exactly one whitespace byte separates the header from the data


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file -> float32 [H, W] ('Pf') or [H, W, 3] ('PF'), rows top-down.

    Raises FileNotFoundError for a missing file and PFMError for a bad magic, size or scale, or
    fewer samples than the header announces."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PFM file {path} does not exist.")
    with open(path, "rb") as f:
        data = f.read()
    (magic, width, height, scale), offset = _header_fields(data[:_MAX_HEADER_BYTES + 1], path)
    if magic not in _MAGIC_CHANNELS:
        raise PFMError(f"PFM file {path}: bad magic {magic[:8]!r}; expected b'Pf' (1 channel) "
                       f"or b'PF' (3 channels).")
    channels = _MAGIC_CHANNELS[magic]
    try:
        width, height = int(width), int(height)
    except ValueError:
        raise PFMError(f"PFM file {path}: bad dimensions {width[:16]!r} x {height[:16]!r}; "
                       f"expected two positive integers.") from None
    if width <= 0 or height <= 0:
        raise PFMError(f"PFM file {path}: bad dimensions {width} x {height}; expected positive.")
    try:
        scale = float(scale)
    except ValueError:
        raise PFMError(f"PFM file {path}: bad scale {scale[:16]!r}; expected a non-zero float.") from None
    if scale == 0 or not math.isfinite(scale):
        raise PFMError(f"PFM file {path}: bad scale {scale}; expected a finite non-zero float "
                       f"(its sign gives the byte order).")
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    count = width * height * channels
    available = (len(data) - offset) // 4
    if available < count:
        raise PFMError(f"PFM file {path}: truncated, {available} of the {count} float32 samples "
                       f"of a {width} x {height} x {channels} map are present.")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    shape = (height, width) if channels == 1 else (height, width, 3)
    return np.ascontiguousarray(values.reshape(shape)[::-1], dtype=np.float32)


def write_pfm(path: str | os.PathLike, array: np.ndarray, little_endian: bool = True) -> None:
    """Write float [H, W], [H, W, 1] or [H, W, 3] to a PFM file, atomically (temp + rename).

    Rows are stored bottom row first, as the format requires; non-float32 input is cast."""
    path = os.fspath(path)
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        magic = b"Pf"
    elif array.ndim == 3 and array.shape[2] == 3:
        magic = b"PF"
    else:
        raise ValueError(f"write_pfm({path}): array of shape {array.shape}; expected [H, W], "
                         f"[H, W, 1] or [H, W, 3].")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"write_pfm({path}): empty array of shape {array.shape}.")
    dtype = np.dtype("<f4" if little_endian else ">f4")
    header = magic + b"\n" + f"{width} {height}\n{-1.0 if little_endian else 1.0}\n".encode("ascii")
    body = np.ascontiguousarray(array[::-1], dtype=dtype).tobytes()
    with atomic_write(path, "wb") as f:
        f.write(header)
        f.write(body)
