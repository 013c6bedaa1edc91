"""Writing files atomically and reading them back verified: the one place that does it.

* :func:`atomic_path` - write to a temporary name next to the target, flush it to disk, then
  rename it over the target, so that a reader (or a crash) never sees a half-written file;
* :func:`write_json` / :func:`read_json` - JSON documents (numpy scalars and arrays allowed);
* :func:`write_archive` / :func:`read_archive` - named float/int arrays plus a JSON document in
  one ``.npz`` file with a SHA-256 of its contents, refused on read when it does not match;
* :func:`write_netcdf` / :func:`read_netcdf` / :func:`read_netcdf_groups` - labelled results
  (:class:`xarray.Dataset`, optionally with named groups) as netCDF-4, every group with a format
  name and the SHA-256 of its arrays and attributes, refused on read when they do not match;
* :func:`make_folder` - a folder, or an error naming it;
* :func:`call_outside_file_operations` - for signal handlers: act now, or as soon as the file
  operation in progress has ended (see below);
* :func:`remove_partial_files` - the temporaries a killed process left behind.

Every file :mod:`pdecontrol` writes goes through :func:`atomic_path`.

**Interrupts.** An exception raised inside xarray's netCDF writer (a ``KeyboardInterrupt`` from
Ctrl-C) can leave its file lock held, and the process then hangs for good in the writer's
``close`` (measured: 1 to 3 of 15 Ctrl-C during a write hung, with ``mode="w"`` as with
``mode="a"`` or a ``DataTree``). Every read and write here therefore runs as one *file
operation*, and a signal handler that reacts through :func:`call_outside_file_operations` (those
of the ``pdecontrol`` command do) lets the operation finish first. Library code installs no
handler.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_path",
    "make_folder",
    "write_json",
    "read_json",
    "write_archive",
    "read_archive",
    "write_netcdf",
    "read_netcdf",
    "read_netcdf_groups",
    "CorruptFileError",
    "json_default",
    "call_outside_file_operations",
    "remove_partial_files",
]


class CorruptFileError(ValueError):
    """A file that cannot be read back as written: truncated, altered or not of its format.

    ``where`` (the file), ``reason`` (what is wrong with it) and ``fix`` (what to do) make the
    one-line message; :meth:`with_fix` gives the same error with the fix a caller knows better.
    """

    def __init__(self, where, reason: str, fix: str = "restore it from a copy or write it again"):
        self.where, self.reason, self.fix = str(where), reason, fix
        super().__init__(f"{where} {reason}; {fix}")

    def with_fix(self, fix: str) -> CorruptFileError:
        return CorruptFileError(self.where, self.reason, fix)


# ---------------------------------------------------------------------- file operations
_operations = 0  # file operations in progress (nested: an atomic write inside another)
_deferred: list = []  # what call_outside_file_operations was asked to do meanwhile


@contextmanager
def _file_operation():
    """Mark a read or a write; on leaving the outermost one, run what was deferred."""
    global _operations
    _operations += 1
    try:
        yield
    finally:
        _operations -= 1
        if not _operations and _deferred:
            action = _deferred.pop()
            action()


def call_outside_file_operations(action) -> None:
    """``action()`` now or, while a file is read or written here, as soon as that has ended
    (once, however often it was asked meanwhile). For signal handlers: a ``KeyboardInterrupt``
    raised by ``action`` stops the program between two file operations, never inside one."""
    if _operations:
        if not _deferred:
            _deferred.append(action)
        return
    action()


# ---------------------------------------------------------------------- atomic writes
_PARTIAL = re.compile(r"^\..*\.(?P<pid>\d+)\.partial[^/]*$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive: someone else's process
        pass
    return True


def remove_partial_files(folder) -> list:
    """Remove the temporaries of :func:`atomic_path` under ``folder`` whose process has ended
    (left by a process killed while writing; those of a live process are kept). Returns the
    paths removed."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.partial*")):
        match = _PARTIAL.match(path.name)
        if match and path.is_file() and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def atomic_path(path):
    """``with atomic_path(path) as temporary:`` write ``temporary``; on success it replaces
    ``path`` (flushed to disk first); on an exception it is removed and ``path`` is untouched.

    The temporary file sits in the target's folder (same file system, so the rename is atomic)
    and is named after the target and the process, ``.NAME.PID.partial.SUFFIX`` (writers that
    choose a format by extension work; :func:`remove_partial_files` tells a killed writer's
    leftovers). The write is one file operation (module docstring). A missing folder is a
    ``FileNotFoundError``, a folder at ``path`` an ``IsADirectoryError``, one that cannot be
    written an ``OSError``, all naming ``path`` without the errno noise.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the folder {path.parent} does not exist; create it first"
        )
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    with _file_operation():
        try:
            open(temporary, "wb").close()
        except OSError as error:
            raise type(error)(f"cannot write {path}: {error.strerror or error}; choose a folder "
                              "you can write to") from None
        try:
            yield temporary
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def make_folder(path, *, exist_ok: bool = True) -> Path:
    """Create the folder ``path`` and its parents; an ``OSError`` naming it (without the errno
    noise) when that fails. Returns the path."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except OSError as error:
        raise type(error)(f"cannot create the folder {path}: {error.strerror or error}; choose a "
                          "folder you can write to") from None
    return path


# ---------------------------------------------------------------------- JSON
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
        with _file_operation():
            return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CorruptFileError(path, f"is not valid JSON ({error.msg}, line {error.lineno})") \
            from None
    except UnicodeDecodeError:
        raise CorruptFileError(path, "is not text") from None


# ---------------------------------------------------------------------- archives
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
        numeric = isinstance(array, np.ndarray) and array.dtype.kind in "fiub"
        if name.startswith("__") or not numeric:
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
        with _file_operation(), np.load(path, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise CorruptFileError(path, f"cannot be read ({type(error).__name__}): it is damaged or "
                               "not a pdecontrol archive") from None
    if _METADATA not in entries or _CHECKSUM not in entries:
        raise CorruptFileError(path, "is not a pdecontrol archive (no metadata or checksum)")
    text, checksum = str(entries.pop(_METADATA)), str(entries.pop(_CHECKSUM))
    if _digest(entries, text) != checksum:
        raise CorruptFileError(path, "is damaged: its contents do not match the SHA-256 written "
                               "with them")
    document = json.loads(text)
    if document.get("format") != format:
        raise CorruptFileError(path, f"holds a {document.get('format')!r} archive, not {format!r}",
                               "give the file of that kind")
    return entries, document["metadata"]


# ---------------------------------------------------------------------- netCDF
_FORMAT_ATTRIBUTE = "pdecontrol_format"
_SHA256_ATTRIBUTE = "pdecontrol_sha256"


def _canonical_attribute(value):
    """An attribute as it reads back from netCDF: text as ``str``, numbers as a list."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return np.atleast_1d(np.asarray(value)).tolist()


def _dataset_digest(dataset) -> str:
    """SHA-256 of a Dataset's attributes and variables (name, role, dims, dtype, shape,
    attributes, values), the same before writing and after reading back."""
    digest = hashlib.sha256()

    def update(header, attrs):
        canonical = {str(k): _canonical_attribute(v) for k, v in attrs.items()
                     if k not in (_FORMAT_ATTRIBUTE, _SHA256_ATTRIBUTE)}
        digest.update(json.dumps([header, canonical], sort_keys=True).encode())

    update("dataset", dataset.attrs)
    for name in sorted(dataset.variables, key=str):
        variable = dataset.variables[name]
        values = np.asarray(variable.values)
        role = "coordinate" if name in dataset.coords else "data"
        text = values.dtype.kind in "OUS"
        update([str(name), role, list(variable.dims), "text" if text else values.dtype.str,
                list(values.shape)], variable.attrs)
        if text:
            items = [v.decode() if isinstance(v, bytes) else str(v)
                     for v in values.ravel().tolist()]
            digest.update(json.dumps(items).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def write_netcdf(path, dataset, *, format: str, groups: dict | None = None) -> Path:
    """Write an :class:`xarray.Dataset`, and ``groups`` (name -> Dataset) as netCDF groups, to
    one netCDF-4 file, atomically, in one go; every group carries the ``format`` name and the
    SHA-256 of its contents as attributes. Returns the path."""
    import xarray as xr

    def stamped(data):
        if not isinstance(data, xr.Dataset):
            raise TypeError(f"write_netcdf writes xarray.Datasets, got {type(data).__name__}")
        return data.assign_attrs({_FORMAT_ATTRIBUTE: format,
                                  _SHA256_ATTRIBUTE: _dataset_digest(data)})

    nodes = {"/": stamped(dataset)}
    nodes.update({f"/{name}": stamped(group) for name, group in (groups or {}).items()})
    with atomic_path(path) as temporary:
        xr.DataTree.from_dict(nodes).to_netcdf(temporary, mode="w", engine="netcdf4")
    return Path(path)


def read_netcdf_groups(path, *, format: str) -> dict:
    """``name -> Dataset`` (``"/"`` the root, then its groups by name) of a file written by
    :func:`write_netcdf` with this ``format``, loaded and verified, without the two attributes
    :func:`write_netcdf` added.

    Raises :class:`CorruptFileError` naming the file when it cannot be read as netCDF, carries
    no SHA-256 (not written by pdecontrol), is of another format, or a group's contents do not
    match their SHA-256 (truncated or altered); ``FileNotFoundError`` when there is no file.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with _file_operation(), xr.open_datatree(path, engine="netcdf4") as tree:
            groups = {node.path.strip("/") or "/": node.to_dataset(inherit=False).load()
                      for node in tree.subtree}
    except Exception as error:  # netCDF4 and HDF5 report damage as any of several types
        raise CorruptFileError(path, f"cannot be read as netCDF ({type(error).__name__}): it is "
                               "damaged or not a pdecontrol file") from None
    for name, dataset in groups.items():
        where = str(path) if name == "/" else f"{path} (group {name})"
        if _SHA256_ATTRIBUTE not in dataset.attrs:
            raise CorruptFileError(where, "carries no SHA-256 of its contents: it was not written "
                                   "by this version of pdecontrol", "write it again with it")
        if dataset.attrs.get(_FORMAT_ATTRIBUTE) != format:
            raise CorruptFileError(where, f"is a {dataset.attrs.get(_FORMAT_ATTRIBUTE)!r} file, "
                                   f"not {format!r}", "give the file of that kind")
        if _dataset_digest(dataset) != dataset.attrs[_SHA256_ATTRIBUTE]:
            raise CorruptFileError(where, "is damaged: its contents do not match the SHA-256 "
                                   "written with them")
        for attribute in (_FORMAT_ATTRIBUTE, _SHA256_ATTRIBUTE):
            del dataset.attrs[attribute]
    return groups


def read_netcdf(path, *, format: str):
    """The root Dataset of a file written by :func:`write_netcdf` with this ``format`` (every
    group verified, see :func:`read_netcdf_groups`)."""
    return read_netcdf_groups(path, format=format)["/"]
