"""CIFAR python pickles: generated files in the official format, safe unpickling, corrupt files."""

import os
import pickle
import struct

import numpy as np
import pytest

from kernelkit.data import DataFormatError, DataNotFoundError, load_cifar10, load_cifar100


def py2_dumps(obj) -> bytes:
    """Protocol-2 pickle as Python 2's cPickle wrote the official files: str as BINSTRING, and numpy
    arrays through ``numpy.core.multiarray._reconstruct`` with a raw-bytes state."""
    out = bytearray(b"\x80\x02")

    def s(b: bytes) -> None:
        out.extend(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b)

    def i(v: int) -> None:
        out.extend(b"J" + struct.pack("<i", v))

    def emit(o) -> None:
        if isinstance(o, bytes):
            s(o)
        elif isinstance(o, bool) or o is None:
            out.extend({True: b"\x88", False: b"\x89", None: b"N"}[o])
        elif isinstance(o, int):
            i(o)
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            i(0)
            out.extend(b"\x85")
            s(b"b")
            out.extend(b"\x87R(")
            i(1)
            out.extend(b"(")
            for d in o.shape:
                i(d)
            out.extend(b"tcnumpy\ndtype\n")
            s(b"u1")
            i(0)
            i(1)
            out.extend(b"\x87R(")
            i(3)
            s(b"|")
            out.extend(b"NNN")
            i(-1)
            i(-1)
            i(0)
            out.extend(b"tb\x89")
            s(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    emit(obj)
    return bytes(out + b".")


def dump(path, obj, protocol=2):
    """``protocol`` "py2" writes the files as the official Python 2 pickles; an int uses Python 3's pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_dumps(obj) if protocol == "py2" else pickle.dumps(obj, protocol=protocol))


def write_cifar10(root, per_batch=4, protocol="py2"):
    """The official layout: bytes keys, uint8 'data' N×3072, python list 'labels'."""
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for k, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(k + j) % 10 for j in range(per_batch)]
        batches[name] = (data, labels)
        dump(d / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                        b"filenames": [f"img{j}.png".encode() for j in range(per_batch)]}, protocol)
    label_names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
                   b"truck"]
    dump(d / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": label_names, b"num_vis": 3072},
         protocol)
    return batches


def write_cifar100(root, n=30, protocol="py2"):
    rng = np.random.default_rng(1)
    d = root / "cifar-100-python"
    fine_names = [f"fine{i:02d}".encode() for i in range(100)]
    coarse_names = [f"coarse{i:02d}".encode() for i in range(20)]
    out = {}
    for split in ("train", "test"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        coarse = [f // 5 for f in fine]
        out[split] = (data, fine, coarse)
        dump(d / split, {b"filenames": [b"x.png"] * n, b"batch_label": b"x", b"fine_labels": fine,
                         b"coarse_labels": coarse, b"data": data}, protocol)
    dump(d / "meta", {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}, protocol)
    return out


def test_python2_style_pickle_decodes_like_the_standard_unpickler():
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 300, 70000], b"name": b"x" * 300}
    ref = pickle.loads(py2_dumps(obj), encoding="bytes")  # the standard (unrestricted) unpickler
    assert ref[b"labels"] == [1, 300, 70000] and ref[b"name"] == b"x" * 300
    np.testing.assert_array_equal(ref[b"data"], obj[b"data"])


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_cifar10_generated_files(tmp_path, protocol):
    batches = write_cifar10(tmp_path, protocol=protocol)
    train = load_cifar10("train", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.classes[0] == "airplane" and len(train.classes) == 10
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    # Row layout: channel-major 3×32×32 (1024 red, then green, then blue values).
    n, c, h, w = 7, 2, 5, 30
    assert train.images[n, c, h, w].item() == data[n, c * 1024 + h * 32 + w]
    assert train.targets.tolist() == labels
    test = load_cifar10("test", root=tmp_path)
    np.testing.assert_array_equal(test.images.reshape(4, -1).numpy(), batches["test_batch"][0])


def test_cifar100_fine_labels_in_file_order(tmp_path):
    ref = write_cifar100(tmp_path)
    train = load_cifar100("train", root=tmp_path)
    data, fine, coarse = ref["train"]
    assert train.targets.tolist() == fine
    np.testing.assert_array_equal(train.images.reshape(30, -1).numpy(), data)
    assert train.classes == [f"fine{i:02d}" for i in range(100)]
    for f in set(fine):
        assert train.class_info["coarse"][f] == f"coarse{f // 5:02d}"
    assert load_cifar100("test", root=tmp_path).targets.tolist() == ref["test"][1]


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_arbitrary_globals_is_refused_and_not_run(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": Exploit(marker), b"labels": []})
    with pytest.raises(DataFormatError, match=r"refusing to load global (posix|os|nt)\.system"):
        load_cifar10("test", root=tmp_path)
    assert not marker.exists()


def test_truncated_pickle_is_a_clear_error(tmp_path):
    write_cifar10(tmp_path)
    p = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match=r"data_batch_3: truncated or corrupt pickle"):
        load_cifar10("train", root=tmp_path)


def test_wrong_shapes_and_keys_are_clear_errors(tmp_path):
    write_cifar10(tmp_path)
    d = tmp_path / "cifar-10-batches-py"
    dump(d / "test_batch", {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4})
    with pytest.raises(DataFormatError, match=r"uint8 array N×3072.*\(4, 3000\)"):
        load_cifar10("test", root=tmp_path)
    dump(d / "test_batch", {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]})
    with pytest.raises(DataFormatError, match="'labels' must be 4 integer labels"):
        load_cifar10("test", root=tmp_path)
    dump(d / "test_batch", {b"pixels": np.zeros((4, 3072), np.uint8)})
    with pytest.raises(DataFormatError, match="missing key 'data'"):
        load_cifar10("test", root=tmp_path)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"cifar-10-batches-py/batches.meta not found.*cifar-10-python"):
        load_cifar10(root=tmp_path)
    with pytest.raises(DataNotFoundError, match=r"cifar-100-python/meta not found.*cifar-100-python.tar.gz"):
        load_cifar100(root=tmp_path)
