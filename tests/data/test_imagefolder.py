"""ImageFolder from directories and zips: layout detection, decoding, caching, errors, the real CIFAR-10 JPEGs."""

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from kernelkit.data import DataFormatError, DataNotFoundError, load_cifar10_jpg, load_dataset, load_image_folder
from kernelkit.data.stats import CIFAR10_MEAN
from tests.conftest import needs_data

CLASSES = ("cat", "dog", "emu")


def png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_images(n_per_class=3, size=(6, 5), seed=0):
    rng = np.random.default_rng(seed)
    return {f"{c}/{i:03d}.png": rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            for c in CLASSES for i in range(n_per_class)}


def write_zip(path, files, prefix="split/"):
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in files.items():
            z.writestr(prefix + rel, data if isinstance(data, bytes) else png_bytes(data))
    return path


def write_dir(root, files):
    for rel, arr in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png_bytes(arr))
    return root


def check(ds, files):
    assert ds.classes == list(CLASSES)
    assert ds.images.shape == (9, 3, 6, 5) and ds.targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for k, rel in enumerate(sorted(files)):  # lossless PNG: exact pixels, sorted order
        np.testing.assert_array_equal(ds.images[k].permute(1, 2, 0).numpy(), files[rel])


def test_directory_and_zip_give_the_same_exact_pixels(tmp_path):
    files = make_images()
    check(load_image_folder(write_dir(tmp_path / "folder", files)), files)
    z = load_image_folder(write_zip(tmp_path / "f.zip", files))
    check(z, files)
    assert "folder 'split'" in z.source


def test_lazy_matches_eager_and_pickles(tmp_path):
    files = make_images()
    path = write_zip(tmp_path / "f.zip", files)
    eager = load_image_folder(path)
    lazy = load_image_folder(path, lazy=True)
    for i in (0, 4, 8):
        torch.testing.assert_close(lazy[i][0], eager[i][0])
    sub = pickle.loads(pickle.dumps(lazy.subset([8, 0])))
    torch.testing.assert_close(sub.uint8_images(), eager.images[[8, 0]])


def test_cache_written_atomically_and_reused(tmp_path):
    files = make_images()
    path = write_zip(tmp_path / "f.zip", files)
    first = load_image_folder(path, cache=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob(".*tmp"))
    again = load_image_folder(path, cache=tmp_path / "cache")
    assert "cached at" in again.source and torch.equal(again.images, first.images)
    cached[0].write_bytes(b"garbage")  # a broken cache is rebuilt, not trusted
    with pytest.warns(UserWarning, match="ignoring unreadable decoded-image cache"):
        rebuilt = load_image_folder(path, cache=tmp_path / "cache")
    assert torch.equal(rebuilt.images, first.images)


def test_grey_mode_and_resize(tmp_path):
    files = make_images(size=(8, 8))
    path = write_zip(tmp_path / "f.zip", files)
    grey = load_image_folder(path, mode="L")
    assert grey.images.shape == (9, 1, 8, 8)
    ref = np.asarray(Image.fromarray(files["cat/000.png"]).convert("L"))
    np.testing.assert_array_equal(grey.images[0, 0].numpy(), ref)
    assert load_image_folder(path, size=(4, 3)).images.shape == (9, 3, 4, 3)


def test_unreadable_jpeg_names_the_member(tmp_path):
    files = {**make_images(), "dog/bad.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg"}
    path = write_zip(tmp_path / "f.zip", files)
    with pytest.raises(DataFormatError, match=r"f\.zip:split/dog/bad\.jpg: cannot decode image"):
        load_image_folder(path)


def test_zip_without_image_folders(tmp_path):
    path = tmp_path / "flat.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.png", png_bytes(np.zeros((4, 4, 3), np.uint8)))
        z.writestr("notes/readme.txt", "hello")
    with pytest.raises(DataFormatError, match="no image folders found"):
        load_image_folder(path)


def test_ambiguous_roots_need_subdir(tmp_path):
    files = make_images()
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        for rel, arr in files.items():
            z.writestr("train/" + rel, png_bytes(arr))
            z.writestr("test/" + rel, png_bytes(arr))
    with pytest.raises(DataFormatError, match=r"several folder depths.*'test', 'train'.*subdir="):
        load_image_folder(path)
    check(load_image_folder(path, subdir="train"), files)


def test_mixed_sizes_and_bad_containers(tmp_path):
    files = make_images()
    files["emu/010.png"] = np.zeros((7, 7, 3), np.uint8)
    with pytest.raises(DataFormatError, match="images differ in size"):
        load_image_folder(write_zip(tmp_path / "m.zip", files))
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(write_zip(tmp_path / "ok.zip", make_images()).read_bytes()[:300])
    with pytest.raises(DataFormatError, match="not a zip file"):
        load_image_folder(truncated)
    with pytest.raises(DataNotFoundError, match="no such directory"):
        load_image_folder(tmp_path / "absent")
    with pytest.raises(DataNotFoundError, match=r"cifar10_jpg/cifar10_jpg_test.zip not found.*CIFAR-10-images"):
        load_cifar10_jpg(root=tmp_path)


@needs_data("cifar10_jpg/cifar10_jpg_test.zip")
def test_real_cifar10_jpg(shared_data):
    ds = load_dataset("cifar10_jpg", root=shared_data)
    assert ds.images.shape == (10000, 3, 32, 32)
    assert ds.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert ds.class_counts().tolist() == [1000] * 10
    x, _ = ds.tensors()
    mean = x.mean(dim=(0, 2, 3))
    assert (mean - torch.tensor(CIFAR10_MEAN)).abs().max() < 0.01  # test-set JPEGs vs training statistics
    lazy = load_cifar10_jpg(root=shared_data, lazy=True)
    for i in (0, 5555, 9999):
        assert torch.equal(lazy.images[i], ds.images[i])


def test_damaged_member_bytes_name_the_member(tmp_path):
    files = make_images()
    path = tmp_path / "stored.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for rel, arr in files.items():
            z.writestr("split/" + rel, png_bytes(arr))
    info = zipfile.ZipFile(path).getinfo("split/dog/001.png")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # flip a byte inside the member's data
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"cannot read 'split/dog/001.png' from the zip \(Bad CRC-32"):
        load_image_folder(path)


def test_lazy_zip_in_dataloader_workers(tmp_path):
    files = make_images()
    path = write_zip(tmp_path / "f.zip", files)
    lazy = load_image_folder(path, lazy=True)
    loader = torch.utils.data.DataLoader(lazy, batch_size=4, num_workers=2)
    xs = torch.cat([x for x, _ in loader])
    torch.testing.assert_close(xs, load_image_folder(path).tensors()[0])


def test_directory_cache_notices_changed_images(tmp_path):
    files = make_images()
    folder = write_dir(tmp_path / "folder", files)
    first = load_image_folder(folder, cache=tmp_path / "cache")
    changed = np.zeros((6, 5, 3), np.uint8)
    (folder / "dog/001.png").write_bytes(png_bytes(changed))
    second = load_image_folder(folder, cache=tmp_path / "cache")
    assert "cached at" not in second.source
    assert torch.equal(second.images[4], torch.from_numpy(changed).permute(2, 0, 1))
    assert not torch.equal(second.images, first.images)
