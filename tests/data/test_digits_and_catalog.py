"""Embedded digits, the dataset catalog, and `kernelkit info --json` on the real data root."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from kernelkit.data import load_dataset
from kernelkit.data.catalog import DATASETS, FSCIL_INDEX_LIST, check_file, scan, task_sources
from kernelkit.registry import RegistryError
from tests.conftest import SHARED_DATA, needs_data


def test_digits_match_scikit_learn():
    ds = load_dataset("digits")
    ref = sk_load_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.targets.numpy(), ref.target)
    x, _ = ds.tensors()
    np.testing.assert_allclose(x[:, 0].numpy(), ref.images / 16.0, atol=0.5 / 255 + 1e-7)
    assert x.max() == 1.0 and x.min() == 0.0


def test_catalog_names_and_unknown_name():
    expected = {"mnist", "cifar10", "cifar100", "cifar10_jpg", "omniglot", "omniglot_zip", "digits"}
    assert expected <= set(DATASETS.names())
    with pytest.raises(RegistryError, match="did you mean 'mnist'"):
        load_dataset("mnits")


@needs_data("mnist/t10k-images-idx3-ubyte.gz")
@needs_data("cifar10_jpg/cifar10_jpg_test.zip")
@needs_data("omniglot/full_npz/images_background.npz")
def test_kernelkit_info_json_finds_the_shared_datasets():
    env = {**os.environ, "KERNELKIT_DATA": str(SHARED_DATA)}
    r = subprocess.run([sys.executable, "-m", "kernelkit", "info", "--json"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    found = {row["name"]: row["found"] for row in json.loads(r.stdout)["datasets"]}
    for name in ("mnist", "cifar10_jpg", "omniglot", "omniglot_zip", "digits", "fscil_index_list", "m4le/c3",
                 "m4le/drcd", "m4le/qmsum", "m4le/nq_open_lost_in_the_middle"):
        assert found[name] is True, name
    assert found["m4le/cnn"] is False  # an M4LE source the shared folder does not hold
    assert found["cifar10"] is False and found["cifar100"] is False  # not in the shared folder


def test_check_file_refuses_a_text_file_named_like_an_archive(tmp_path):
    import gzip
    import zipfile

    for name in ("a.zip", "a.npz", "a.gz", "a.npy"):
        (tmp_path / name).write_text("not that format\n")
        problem = check_file(tmp_path / name)
        assert problem is not None and problem.startswith("invalid: ") and name in problem, problem
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as z:
        z.writestr("x.txt", "x")
    np.savez(tmp_path / "ok.npz", x=np.zeros(2))
    np.save(tmp_path / "ok.npy", np.zeros(2))
    (tmp_path / "ok.gz").write_bytes(gzip.compress(b"x"))
    (tmp_path / "ok.json").write_text("{}")
    for name in ("ok.zip", "ok.npz", "ok.npy", "ok.gz", "ok.json"):
        assert check_file(tmp_path / name) is None, name
    assert check_file(tmp_path / "none.zip") == f"missing: {tmp_path / 'none.zip'}"
    (tmp_path / "dir.zip").mkdir()
    assert check_file(tmp_path / "dir.zip").startswith("invalid: ")


def test_scan_says_invalid_for_a_text_file_named_like_the_zip(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELKIT_DATA", str(tmp_path))
    monkeypatch.setattr("kernelkit.data.root._override", None)
    (tmp_path / "cifar10_jpg").mkdir()
    (tmp_path / "cifar10_jpg" / "cifar10_jpg_test.zip").write_text("hello")
    rows = {r["name"]: r for r in scan()}
    assert rows["cifar10_jpg"]["found"] is False and rows["cifar10_jpg"]["status"] == "invalid"
    assert "cifar10_jpg_test.zip is not a zip archive" in rows["cifar10_jpg"]["detail"]
    assert rows["mnist"]["status"] == "missing" and rows["digits"]["status"] == "found"
    assert rows["fscil_index_list"]["status"] == "missing"
    for f in FSCIL_INDEX_LIST.files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("1\n2\n")
    assert {r["name"]: r for r in scan()}["fscil_index_list"]["status"] == "found"


def test_task_sources_group_tasks_by_their_files(tmp_path, monkeypatch):
    sources = task_sources("m4le", [("drcd_a", ("drcd/DRCD_test.json",)), ("c3", ("c3/c3-m-test.json",)),
                                    ("drcd_b", ("drcd/DRCD_test.json",)), ("synthetic", ())])
    assert [(s.name, s.files, s.used_by) for s in sources] == [
        ("m4le/c3", ("c3/c3-m-test.json",), "m4le: c3"),
        ("m4le/drcd", ("drcd/DRCD_test.json",), "m4le: drcd_a, drcd_b")]
    monkeypatch.setenv("KERNELKIT_DATA", str(tmp_path))
    monkeypatch.setattr("kernelkit.data.root._override", None)
    (tmp_path / "c3").mkdir()
    (tmp_path / "c3" / "c3-m-test.json").write_text("[]")
    rows = {r["name"]: r for r in scan(extra=sources)}
    assert rows["m4le/c3"]["found"] is True and "used by m4le: c3" in rows["m4le/c3"]["detail"]
    assert rows["m4le/drcd"]["status"] == "missing" and "DRCD_test.json" in rows["m4le/drcd"]["detail"]


def test_kernelkit_info_lists_the_m4le_sources_and_fscil_index_list(tmp_path):
    from kernelkit.longctx.tasks import TASKS

    env = {**os.environ, "KERNELKIT_DATA": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "kernelkit", "info", "--json"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    names = {row["name"] for row in json.loads(r.stdout)["datasets"]}
    wanted = {f"m4le/{f.split('/')[0]}" for e in TASKS.entries() for f in e.obj.data_files[:1]}
    assert "fscil_index_list" in names and wanted and wanted <= names
