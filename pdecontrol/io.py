"""Writing files atomically and reading them back verified: the one place that does it.

* :func:`atomic_path` - write to a temporary name next to the target, flush it to disk, then
  rename it over the target, so that a reader (or a crash) never sees a half-written file;
* :func:`write_json` / :func:`read_json` - JSON documents (numpy scalars and arrays allowed);
* :func:`write_archive` / :func:`read_archive` - named float/int arrays plus a JSON document in
  one ``.npz`` file with a SHA-256 of its contents, refused on read when it does not match;
* :func:`write_netcdf` - an :class:`xarray.Dataset` (labelled results) as netCDF.

Every file :mod:`pdecontrol` writes goes through :func:`atomic_path`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_path",
    "write_json",
    "read_json",
    "write_archive",
    "read_archive",
    "write_netcdf",
    "CorruptFileError",
    "json_default",
]


class CorruptFileError(ValueError):
    """A file that cannot be read back as written: truncated, altered or not of its format."""


@contextmanager
def atomic_path(path):
    """``with atomic_path(path) as temporary:`` write ``temporary``; on success it replaces
    ``path`` (flushed to disk first); on an exception it is removed and ``path`` is untouched.

    The temporary file sits in the target's folder (same file system, so the rename is atomic)
    and is named after the target, so that writers which choose a format by extension work.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the folder {path.parent} does not exist; create it first"
        )
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_netcdf(path, dataset) -> Path:
    """Write an :class:`xarray.Dataset` to a netCDF-4 file, atomically. Returns the path."""
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary, mode="w", engine="netcdf4")
    return Path(path)


def json_default(value):
    """``default=`` of :func:`json.dumps` for numpy scalars and arrays and paths."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path, document) -> Path:
    """Write ``document`` as indented JSON (keys sorted), atomically. Returns the path."""
    text = json.dumps(document, indent=2, sort_keys=True, default=json_default) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def read_json(path) -> object:
    """The JSON document in ``path``; :class:`CorruptFileError` if it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{path} is not valid JSON ({error}); the file is damaged") from None


_METADATA = "__metadata__"
_CHECKSUM = "__sha256__"


def _digest(arrays: dict, metadata_text: str) -> str:
    digest = hashlib.sha256(metadata_text.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_archive(path, arrays: dict, metadata: dict, *, format: str) -> Path:
    """Write numeric ``arrays`` (name -> ndarray) and a JSON ``metadata`` dict to an ``.npz``
    file, atomically, with the SHA-256 of both and the ``format`` name inside."""
    for name, array in arrays.items():
        if name.startswith("__") or not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
            raise TypeError(f"archive entry {name!r} must be a numeric ndarray named without a "
                            f"leading '__', got {type(array).__name__}")
    text = json.dumps({"format": format, "metadata": metadata}, sort_keys=True,
                      default=json_default)
    entries = dict(arrays)
    entries[_METADATA] = np.array(text)
    entries[_CHECKSUM] = np.array(_digest(arrays, text))
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **entries)
    return Path(path)


def read_archive(path, *, format: str) -> tuple[dict, dict]:
    """``(arrays, metadata)`` of a file written by :func:`write_archive` with this ``format``.

    Raises :class:`CorruptFileError` naming the file when it is not such an archive, is of
    another format, or its contents do not match their SHA-256 (truncated or altered);
    ``FileNotFoundError`` when there is no file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise CorruptFileError(f"{path} cannot be read ({type(error).__name__}: {error}); the file "
                               "is damaged or not a pdecontrol archive") from None
    if _METADATA not in entries or _CHECKSUM not in entries:
        raise CorruptFileError(f"{path} is not a pdecontrol archive (no metadata or checksum)")
    text, checksum = str(entries.pop(_METADATA)), str(entries.pop(_CHECKSUM))
    if _digest(entries, text) != checksum:
        raise CorruptFileError(f"{path} is damaged: its contents do not match the SHA-256 written "
                               "with them")
    document = json.loads(text)
    if document.get("format") != format:
        raise CorruptFileError(f"{path} holds a {document.get('format')!r} archive, not "
                               f"{format!r}")
    return entries, document["metadata"]
