"""Reading and writing IDX files (the format of MNIST), gzip-compressed or raw.

An IDX file is a big-endian header followed by a C-ordered payload:

* 4 bytes magic: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
  ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64) and the number of dimensions ``ndim``;
* ``ndim`` unsigned 32-bit sizes;
* ``prod(sizes)`` values of the type.

MNIST images have magic ``2051`` (uint8, 3 dims: example, row, column) and labels ``2049``
(uint8, 1 dim). Compression is detected from the gzip magic bytes ``1f 8b``, never from the file
name.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "IDXError",
    "read_idx_bytes",
    "parse_idx",
    "read_idx",
    "write_idx",
]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_GZIP_MAGIC = b"\x1f\x8b"
_TYPE_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """An IDX file (or its gzip wrapper) is malformed: bad magic, header, length or stream."""


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """Return the uncompressed content of an IDX file, gunzipping it if it starts with ``1f 8b``.

    Raises
    ------
    IDXError
        If the file looks like gzip but the stream is corrupt or truncated.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(
            f"{path}: corrupt gzip stream ({type(exc).__name__}: {exc}); the file is damaged or "
            "incompletely downloaded: delete it and fetch it again"
        ) from exc


def parse_idx(content: bytes, *, expected_magic: int | None = None, source: str = "<bytes>"
              ) -> np.ndarray:
    """Parse uncompressed IDX ``content`` into an array of shape ``sizes`` (native byte order).

    Parameters
    ----------
    content : bytes
        The uncompressed file content.
    expected_magic : int, optional
        Required magic number (e.g. :data:`IMAGES_MAGIC`); any valid IDX magic if ``None``.
    source : str
        Name used in error messages (the file path).

    Returns
    -------
    numpy.ndarray
        Read-only view of ``content`` when the type is a single byte, else a native-order copy.

    Raises
    ------
    IDXError
        On a wrong or unknown magic number, a header shorter than announced, a zero size, or a
        payload whose byte count differs from ``prod(sizes) * itemsize``.
    """
    if len(content) < 4:
        raise IDXError(f"{source}: {len(content)} bytes is too short for an IDX header (>= 4)")
    magic = int.from_bytes(content[:4], "big")
    zeros, type_code, ndim = content[:2], content[2], content[3]
    if expected_magic is not None and magic != expected_magic:
        raise IDXError(
            f"{source}: magic number {magic}, expected {expected_magic}; this is not the "
            "expected kind of IDX file (2051 = images, 2049 = labels)"
        )
    if zeros != b"\x00\x00" or type_code not in _TYPE_CODES or ndim == 0:
        raise IDXError(f"{source}: magic number {magic} (0x{magic:08x}) is not a valid IDX magic")
    header_bytes = 4 + 4 * ndim
    if len(content) < header_bytes:
        raise IDXError(
            f"{source}: truncated header: {ndim} dimensions need {header_bytes} bytes, "
            f"got {len(content)}"
        )
    sizes = tuple(int(s) for s in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    if min(sizes) == 0:
        raise IDXError(f"{source}: dimensions {sizes} contain a zero size")
    dtype = _TYPE_CODES[type_code]
    expected = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    actual = len(content) - header_bytes
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise IDXError(
            f"{source}: payload {problem}: dimensions {sizes} need {expected} bytes after the "
            f"{header_bytes}-byte header, got {actual}; the file is damaged: fetch it again"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(sizes)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into an array; see :func:`parse_idx` for the checks."""
    return parse_idx(read_idx_bytes(path), expected_magic=expected_magic, source=str(path))


def write_idx(path: str | os.PathLike, array, *, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed if ``compress``); return the path.

    The array's dtype must be one of the IDX types (uint8, int8, int16, int32, float32, float64)
    and it needs at least one dimension; values are stored big-endian.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _TYPE_CODES.items()}
    if array.dtype.newbyteorder("=") not in codes:
        raise TypeError(
            f"array has dtype {array.dtype}, which IDX cannot store; convert it to one of "
            "uint8, int8, int16, int32, float32, float64"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_TYPE_CODES[code]).tobytes()
    content = header + payload
    path = Path(path)
    path.write_bytes(gzip.compress(content) if compress else content)
    return path
