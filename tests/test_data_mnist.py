"""IDX parsing, MNIST loading (local files and a local HTTP mirror) and the paper's split."""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import threading

import numpy as np
import pytest

from problems.cnn.data import (
    ChecksumError,
    IDXError,
    load_idx_pair,
    load_mnist,
    mnist,
    read_idx,
    to_numpy,
    train_validation_split,
    write_idx,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_FILES = {"images": "t10k-images", "labels": "t10k-labels"}
SUFFIX = {"images": "idx3-ubyte", "labels": "idx1-ubyte"}


def _fake_pair(directory, n_images=5, n_labels=5, label_value=3, style="-", compress=False):
    """Write small MNIST-format test files named like the real ones; return their paths."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
    labels = np.full(n_labels, label_value, dtype=np.uint8)
    gz = ".gz" if compress else ""
    paths = {kind: directory / f"{TEST_FILES[kind]}{style}{SUFFIX[kind]}{gz}" for kind in SUFFIX}
    write_idx(paths["images"], images, compress=compress)
    write_idx(paths["labels"], labels, compress=compress)
    return paths


def _copy_test_files(mnist_dir, target, style, compress=True):
    """Copy the real MNIST test pair into ``target`` under ``style`` names, gzip or raw."""
    for kind in SUFFIX:
        source = next(mnist_dir.glob(f"{TEST_FILES[kind]}*"))
        name = f"{TEST_FILES[kind]}{style}{SUFFIX[kind]}"
        if compress:
            shutil.copyfile(source, target / f"{name}.gz")
        else:
            (target / name).write_bytes(gzip.decompress(source.read_bytes()))


@pytest.fixture(scope="module")
def mnist_train(mnist_dir):
    return load_mnist("train", mnist_dir)


# ----------------------------------------------------------------------------- IDX format
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_every_type(tmp_path, rng, dtype, compress):
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_gzip_is_detected_from_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)  # raw despite the name
    write_idx(tmp_path / "labels.raw", labels, compress=True)  # gzip despite the name
    for name in ("labels.gz", "labels.raw"):
        np.testing.assert_array_equal(read_idx(tmp_path / name, expected_magic=2049), labels)


def test_truncated_payload_names_file_and_byte_counts(tmp_path):
    path = write_idx(tmp_path / "images.idx", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IDXError, match=r"images\.idx.*truncated.*3136 bytes.*got 3036"):
        read_idx(path, expected_magic=2051)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(IDXError, match="truncated header"):
        read_idx(path)


def test_trailing_bytes_are_an_error(tmp_path):
    path = write_idx(tmp_path / "labels.idx", np.zeros(7, np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(IDXError, match="trailing bytes"):
        read_idx(path)


def test_corrupt_and_truncated_gzip(tmp_path):
    pixels = np.arange(4 * 28 * 28).reshape(4, 28, 28).astype(np.uint8)
    path = write_idx(tmp_path / "images.gz", pixels, compress=True)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(IDXError, match=r"images\.gz: corrupt gzip"):
        read_idx(path)
    damaged = bytearray(content)
    damaged[20:40] = bytes(20)
    path.write_bytes(bytes(damaged))
    with pytest.raises(IDXError, match="corrupt gzip"):
        read_idx(path)


def test_wrong_and_invalid_magic(tmp_path):
    path = write_idx(tmp_path / "labels.idx", np.zeros(3, np.uint8))
    with pytest.raises(IDXError, match="magic number 2049, expected 2051"):
        read_idx(path, expected_magic=2051)
    path.write_bytes(b"\x01\x02\x08\x01" + path.read_bytes()[4:])
    with pytest.raises(IDXError, match="not a valid IDX magic"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="IDX cannot store"):
        write_idx(tmp_path / "a.idx", np.zeros(3, np.uint16))


# ----------------------------------------------------------------------------- real MNIST
@pytest.mark.mnist
def test_train_set_shape_counts_and_layout(mnist_train):
    ds = mnist_train
    assert ds["images"].dims == ("example", "y", "x")
    assert ds["images"].shape == (60000, 28, 28) and ds["images"].dtype == np.float32
    assert ds["labels"].dtype == np.int64
    assert np.bincount(ds["labels"].values).tolist() == TRAIN_COUNTS
    images = ds["images"].values
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_allclose(ds["x"].values, np.arange(28) / 28, rtol=0, atol=1e-15)
    assert ds.attrs["h"] == 1 / 28 and ds.attrs["extent"] == 1.0 and ds.attrs["n_classes"] == 10
    assert ds.attrs["class_names"] == [str(d) for d in range(10)]


@pytest.mark.mnist
def test_train_set_matches_raw_bytes(mnist_train, mnist_dir):
    raw = gzip.decompress((mnist_dir / "train-images.idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, np.uint8, offset=16).reshape(60000, 28, 28)
    expected = pixels[:100] / np.float32(255)
    np.testing.assert_array_equal(mnist_train["images"].values[:100], expected)


@pytest.mark.mnist
@pytest.mark.parametrize("style", ["-", "."])
@pytest.mark.parametrize("compress", [True, False])
def test_test_set_in_both_name_styles_gzip_and_raw(tmp_path, mnist_dir, style, compress):
    _copy_test_files(mnist_dir, tmp_path, style, compress)
    ds = load_mnist("test", tmp_path, download=False, dtype=np.float64)
    assert ds["images"].shape == (10000, 28, 28) and ds["images"].dtype == np.float64
    assert np.bincount(ds["labels"].values).tolist() == TEST_COUNTS


@pytest.mark.mnist
def test_data_dir_from_environment(monkeypatch, mnist_dir):
    monkeypatch.setenv("PDECONTROL_DATA_DIR", str(mnist_dir))
    assert mnist.mnist_data_dir() == mnist_dir
    assert load_mnist("test")["labels"].shape == (10000,)


@pytest.mark.mnist
def test_verification_is_cached_per_file_version(tmp_path, mnist_dir, monkeypatch):
    _copy_test_files(mnist_dir, tmp_path, ".")
    calls = []

    def counting_sha256(data):
        calls.append(len(data))
        return hashlib.new("sha256", data)

    monkeypatch.setattr(mnist.hashlib, "sha256", counting_sha256)
    load_mnist("test", tmp_path, download=False)
    assert len(calls) == 2
    load_mnist("test", tmp_path, download=False)
    assert len(calls) == 2  # both files already verified
    labels = tmp_path / "t10k-labels.idx1-ubyte.gz"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    load_mnist("test", tmp_path, download=False)
    assert len(calls) == 3  # the touched file is hashed again


@pytest.mark.mnist
def test_paper_split_40000_20000(mnist_train):
    train, val = train_validation_split(mnist_train, 40000, 20000, seed=1703)
    assert train.sizes["example"] == 40000 and val.sizes["example"] == 20000
    indices = np.concatenate([train["example"].values, val["example"].values])
    assert np.unique(indices).size == 60000  # disjoint, covering all
    images, labels = to_numpy(val)
    np.testing.assert_array_equal(images, mnist_train["images"].values[val["example"].values])
    np.testing.assert_array_equal(labels, mnist_train["labels"].values[val["example"].values])
    again, _ = train_validation_split(mnist_train, 40000, 20000, seed=1703)
    np.testing.assert_array_equal(again["example"].values, train["example"].values)
    assert np.bincount(labels, minlength=10).min() > 1500  # every digit well represented


# ----------------------------------------------------------------------------- bad local files
def test_wrong_hash_names_file_and_remedy(tmp_path):
    paths = _fake_pair(tmp_path)
    with pytest.raises(ChecksumError, match=r"t10k-images-idx3-ubyte.*SHA-256.*delete it"):
        load_mnist("test", tmp_path, download=False)
    assert paths["images"].exists()  # a user's file is never deleted


def test_count_mismatch_and_bad_labels_are_mislabelled(tmp_path):
    paths = _fake_pair(tmp_path, n_images=5, n_labels=4)
    with pytest.raises(ValueError, match="mislabelled"):
        load_idx_pair(paths["images"], paths["labels"])
    paths = _fake_pair(tmp_path, label_value=10)
    with pytest.raises(ValueError, match=r"0\.\.9.*mislabelled"):
        load_idx_pair(paths["images"], paths["labels"])
    paths = _fake_pair(tmp_path, compress=True, style=".")
    ds = load_idx_pair(paths["images"], paths["labels"])
    assert ds["images"].shape == (5, 28, 28) and float(ds["images"].max()) <= 1.0


def test_missing_files_without_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="t10k-images.*not found.*download"):
        load_mnist("test", tmp_path, download=False)
    monkeypatch.setenv("PDECONTROL_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="downloading is off"):
        load_mnist("test", tmp_path)


def test_bad_arguments(tmp_path):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match="data_dir=.*is not a directory"):
        load_mnist("train", not_a_dir)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist("validation", tmp_path)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        load_mnist("test", tmp_path, dtype=np.int32)
    with pytest.raises(TypeError, match="download must be"):
        load_mnist("test", tmp_path, download="yes")


# ----------------------------------------------------------------------------- download path
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "mirror"``; yields (dir, url)."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.mnist
def test_download_from_mirror_then_reuse(mirror, tmp_path, mnist_dir):
    root, url = mirror
    _copy_test_files(mnist_dir, root, "-")  # mirrors use the '-' style names
    cache = tmp_path / "cache"
    ds = load_mnist("test", cache, download=True, base_url=url, timeout=10)
    assert np.bincount(ds["labels"].values).tolist() == TEST_COUNTS
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    ]
    for path in root.iterdir():
        path.unlink()  # the mirror is gone: the cached files must be used
    again = load_mnist("test", cache, download=True, base_url=url, timeout=10)
    np.testing.assert_array_equal(again["images"].values, ds["images"].values)


def test_download_with_wrong_content_is_deleted(mirror, tmp_path):
    root, url = mirror
    _fake_pair(root, compress=True)
    cache = tmp_path / "cache"
    message = r"SHA-256.*downloaded from http://127\.0\.0\.1.*deleted"
    with pytest.raises(ChecksumError, match=message):
        load_mnist("test", cache, download=True, base_url=url, timeout=10)
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()


def test_download_truncated_gzip_is_deleted(mirror, tmp_path):
    root, url = mirror
    paths = _fake_pair(root, compress=True)
    content = paths["images"].read_bytes()
    paths["images"].write_bytes(content[: len(content) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(IDXError, match="corrupt gzip.*deleted"):
        load_mnist("test", cache, download=True, base_url=url, timeout=10)
    assert not (cache / "t10k-images-idx3-ubyte.gz").exists()


def test_download_missing_on_mirror(mirror, tmp_path):
    _, url = mirror
    with pytest.raises(OSError, match=r"could not download .*t10k-images-idx3-ubyte\.gz"):
        load_mnist("test", tmp_path / "cache", download=True, base_url=url, timeout=10)

