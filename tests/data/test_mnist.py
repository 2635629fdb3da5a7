"""MNIST IDX loader: generated files in the official format, corrupt files, and the real test set."""

import gzip
import struct

import numpy as np
import pytest

from kernelkit.data import DataFormatError, DataNotFoundError, load_dataset, load_mnist
from kernelkit.data.mnist import parse_idx
from kernelkit.data.stats import MNIST_MEAN, MNIST_STD
from tests.conftest import needs_data


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(root, n=12, split="t10k", gz=True, images=None, labels=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = rng.integers(0, 10, n, dtype=np.uint8) if labels is None else labels
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    for stem, arr in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        if gz:
            (root / "mnist" / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / "mnist" / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_generated_idx_round_trips(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    ds = load_mnist("test", root=tmp_path)
    assert ds.images.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(ds.targets.numpy(), labels)
    assert ds.classes == [str(d) for d in range(10)] and "t10k-images" in ds.source


def test_parse_idx_multibyte_types():
    arr = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    np.testing.assert_array_equal(parse_idx(idx_bytes(arr, 0x0C)), arr)
    f = np.linspace(0, 1, 4, dtype=np.float64)
    np.testing.assert_array_equal(parse_idx(idx_bytes(f, 0x0E)), f)


def test_train_split_absent_says_so(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DataNotFoundError) as err:
        load_mnist("train", root=tmp_path)
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz not found" in msg and "split='test'" in msg and "https://" in msg


def test_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"t10k-images-idx3-ubyte.gz not found.*ossci-datasets"):
        load_mnist(root=tmp_path)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("validation", root=tmp_path)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    write_mnist(tmp_path)
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-200])
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte.gz: truncated gzip"):
        load_mnist(root=tmp_path)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    write_mnist(tmp_path)
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(p.read_bytes())
    data[-6] ^= 0xFF  # damage the CRC/size trailer
    p.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="corrupt gzip"):
        load_mnist(root=tmp_path)


def test_truncated_idx_bad_magic_and_mismatched_counts(tmp_path):
    write_mnist(tmp_path, gz=False)
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    good = p.read_bytes()
    p.write_bytes(good[:-100])
    with pytest.raises(DataFormatError, match=r"IDX file truncated: header says shape \(12, 28, 28\)"):
        load_mnist(root=tmp_path)
    p.write_bytes(b"\x1a\x2b" + good[2:])
    with pytest.raises(DataFormatError, match="bad IDX magic number 0x1a2b0803"):
        load_mnist(root=tmp_path)
    write_mnist(tmp_path, gz=False, labels=np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="12 images but .* 11 labels"):
        load_mnist(root=tmp_path)


@needs_data("mnist/t10k-images-idx3-ubyte.gz")
def test_real_mnist_test_set(shared_data):
    ds = load_dataset("mnist", split="test", root=shared_data)
    assert ds.images.shape == (10000, 1, 28, 28)
    assert ds.targets[:5].tolist() == [7, 2, 1, 0, 4]
    # The published class histogram of the MNIST test set.
    assert ds.class_counts().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x, _ = ds.tensors()
    # Test-set pixel statistics are close to the training-set constants.
    assert abs(x.mean().item() - MNIST_MEAN[0]) < 0.005 and abs(x.std().item() - MNIST_STD[0]) < 0.005
    assert (x[:, :, 0, :] == 0).all()  # the top row of every MNIST digit is blank
