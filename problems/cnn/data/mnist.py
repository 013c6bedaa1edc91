"""MNIST: find, download (pooch), verify and load the four IDX files as labelled image sets.

The files are looked for in ``data_dir``, else in the directory named by the environment
variable ``PDECONTROL_DATA_DIR``, else in the pooch cache ``pooch.os_cache("pdecontrol")/mnist``.
Both file-name styles are accepted, gzip-compressed or raw: ``train-images-idx3-ubyte[.gz]``
and ``train-images.idx3-ubyte[.gz]`` (compression is detected from the content).

Every file is checked against the SHA-256 of its UNCOMPRESSED content (:data:`MNIST_SHA256`),
since mirrors compress differently; a verified file is remembered for the rest of the process
(keyed by path, size and modification time), so later loads only decompress and parse.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pooch
import xarray as xr

from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, parse_idx, read_idx, read_idx_bytes
from .images import _check_float_dtype, images_dataset

__all__ = [
    "MNIST_BASE_URL",
    "MNIST_SHA256",
    "ChecksumError",
    "mnist_data_dir",
    "load_mnist",
    "load_idx_pair",
]

logger = logging.getLogger(__name__)

#: Default download mirror (the gzip files; their compressed hashes differ between mirrors).
MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: SHA-256 of the uncompressed MNIST files.
MNIST_SHA256 = MappingProxyType({
    "train-images.idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels.idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images.idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels.idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
})

_PREFIX = {"train": "train", "test": "t10k"}
_KINDS = {"images": ("idx3-ubyte", IMAGES_MAGIC), "labels": ("idx1-ubyte", LABELS_MAGIC)}
_DIGITS = [str(d) for d in range(10)]
_TRUE = ("1", "true", "yes", "on")

# (resolved path, size, mtime_ns) of files whose uncompressed SHA-256 matched, this process.
_verified_files: set[tuple[str, int, int]] = set()


class ChecksumError(ValueError):
    """A file's uncompressed content does not have the known SHA-256."""


def mnist_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST directory: ``data_dir``, else ``$PDECONTROL_DATA_DIR``, else the pooch cache.

    Raises
    ------
    ValueError
        If the chosen path exists but is not a directory.
    """
    if data_dir is not None:
        name, path = "data_dir", Path(data_dir).expanduser()
    elif os.environ.get("PDECONTROL_DATA_DIR"):
        name, path = "PDECONTROL_DATA_DIR", Path(os.environ["PDECONTROL_DATA_DIR"]).expanduser()
    else:
        name, path = "the pooch cache", Path(pooch.os_cache("pdecontrol")) / "mnist"
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{name}={str(path)!r} is not a directory; point it at the directory holding (or to "
            "receive) the four MNIST IDX files"
        )
    return path


def _find_file(directory: Path, stem: str) -> Path | None:
    """The first of ``stem`` in both naming styles, raw or ``.gz``, that exists in ``directory``."""
    prefix, suffix = stem.split(".")
    for name in (f"{prefix}-{suffix}", f"{prefix}.{suffix}"):
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _read_verified(path: Path, stem: str) -> bytes:
    """Uncompressed content of ``path``, its SHA-256 checked against ``MNIST_SHA256[stem]``."""
    key = _file_key(path)
    content = read_idx_bytes(path)
    if key not in _verified_files:
        digest = hashlib.sha256(content).hexdigest()
        if digest != MNIST_SHA256[stem]:
            raise ChecksumError(
                f"{path}: the uncompressed content has SHA-256 {digest}, expected "
                f"{MNIST_SHA256[stem]} for {stem}; the file is corrupt or not the MNIST file: "
                "delete it and download it again (load_mnist(download=True)) or copy a good one"
            )
        _verified_files.add(key)
    return content


def _download_allowed(download: bool | None) -> bool:
    if download is None:
        return os.environ.get("PDECONTROL_OFFLINE", "").lower() not in _TRUE
    if not isinstance(download, bool):
        raise TypeError(f"download must be True, False or None, got {download!r}")
    return download


def _download(base_url: str, stem: str, directory: Path, timeout: float) -> Path:
    """Fetch ``<base_url><stem with '-' style>.gz`` into ``directory`` with pooch."""
    prefix, suffix = stem.split(".")
    name = f"{prefix}-{suffix}.gz"
    url = base_url.rstrip("/") + "/" + name
    logger.info("downloading %s into %s", url, directory)
    try:
        # known_hash=None: the .gz differs between mirrors; the caller checks the content hash.
        path = pooch.retrieve(
            url, known_hash=None, fname=name, path=directory,
            downloader=pooch.HTTPDownloader(progressbar=False, timeout=timeout),
        )
    except OSError as exc:  # requests' errors derive from OSError
        raise OSError(
            f"could not download {url} into {directory} ({type(exc).__name__}: {exc}); check "
            "the network or base_url, or copy the four MNIST files into that directory"
        ) from exc
    return Path(path)


def _dataset_from_arrays(images: np.ndarray, labels: np.ndarray, source: str, dtype
                         ) -> xr.Dataset:
    """Scale uint8 images to [0, 1] and wrap them with their labels (10 digit classes)."""
    dtype = _check_float_dtype(dtype)
    scaled = np.divide(images, dtype.type(255), dtype=dtype)
    return images_dataset(scaled, labels, class_names=_DIGITS, source=source, dtype=dtype)


def load_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike, *,
                  source: str | None = None, dtype=np.float32) -> xr.Dataset:
    """Load any MNIST-format pair of IDX files (10 classes) without hash checks.

    For MNIST itself use :func:`load_mnist`, which also verifies the files. Useful for
    drop-in variants with the same layout and for tests.

    Parameters
    ----------
    images_path, labels_path : path
        IDX files (gzip or raw) with magic 2051 (uint8 images, ``(n_examples, n, n)``) and
        2049 (uint8 labels, ``(n_examples,)``).
    source : str, optional
        ``attrs["source"]`` of the result (default: the images path).
    dtype : floating dtype
        dtype of the images, scaled to [0, 1] (default float32).

    Raises
    ------
    IDXError
        On malformed files (see :func:`~problems.cnn.data.idx.parse_idx`).
    ValueError
        If the counts of images and labels differ or a label is outside 0..9.
    """
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    return _dataset_from_arrays(images, labels, source or str(images_path), dtype)


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None,
               download: bool | None = None, dtype=np.float32, *,
               base_url: str = MNIST_BASE_URL, timeout: float = 60.0) -> xr.Dataset:
    """Load the MNIST training (60,000) or test (10,000) images, 28 x 28, scaled to [0, 1].

    Parameters
    ----------
    split : {"train", "test"}
        Which pair of files.
    data_dir : path, optional
        Directory of the files; default ``$PDECONTROL_DATA_DIR``, else
        ``pooch.os_cache("pdecontrol")/mnist`` (see :func:`mnist_data_dir`).
    download : bool, optional
        Whether missing files may be downloaded (from ``base_url``, into the directory).
        ``None`` (default): yes, unless the environment variable ``PDECONTROL_OFFLINE`` is true.
    dtype : floating dtype
        dtype of the images (default float32).
    base_url : str
        Mirror serving ``train-images-idx3-ubyte.gz`` etc.
    timeout : float
        Seconds to wait for the server during a download.

    Returns
    -------
    xarray.Dataset
        ``images`` ``(example, y, x)`` with node coordinates ``i / 28``, ``labels`` int64 in
        0..9, attrs ``h = 1/28``, ``extent = 1``, ``n_classes = 10``, ``class_names``, ``source``.

    Raises
    ------
    FileNotFoundError
        If a file is missing and downloading is not allowed.
    ChecksumError
        If a file's uncompressed SHA-256 is not the known one (a freshly downloaded bad file is
        deleted first).
    IDXError
        If a file is malformed (a freshly downloaded bad file is deleted first).
    OSError
        If a download fails.
    ValueError
        On a bad ``split`` or ``data_dir``, or mismatched image and label counts.
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dtype = _check_float_dtype(dtype)
    directory = mnist_data_dir(data_dir)
    contents = {}
    for kind, (suffix, _) in _KINDS.items():
        stem = f"{_PREFIX[split]}-{kind}.{suffix}"
        path = _find_file(directory, stem)
        downloaded = path is None
        if downloaded:
            if not _download_allowed(download):
                raise FileNotFoundError(
                    f"{stem}[.gz] (either naming style) not found in {directory} and downloading "
                    "is off; copy the MNIST files there, set PDECONTROL_DATA_DIR, or pass "
                    "download=True"
                )
            path = _download(base_url, stem, directory, timeout)
        try:
            contents[kind] = (path, _read_verified(path, stem))
        except (IDXError, ChecksumError) as exc:
            if not downloaded:
                raise
            path.unlink(missing_ok=True)
            raise type(exc)(
                f"{exc} [downloaded from {base_url}; the bad file was deleted: try again or use "
                "another mirror (base_url)]"
            ) from exc
    images_path, images = contents["images"]
    labels_path, labels = contents["labels"]
    return _dataset_from_arrays(
        parse_idx(images, expected_magic=IMAGES_MAGIC, source=str(images_path)),
        parse_idx(labels, expected_magic=LABELS_MAGIC, source=str(labels_path)),
        f"MNIST {split} ({images_path.name}, {labels_path.name})",
        dtype,
    )
