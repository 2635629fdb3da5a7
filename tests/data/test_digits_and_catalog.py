"""Embedded digits, the dataset catalog, and `kernelkit info --json` on the real data root."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from kernelkit.data import load_dataset
from kernelkit.data.catalog import DATASETS
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
    for name in ("mnist", "cifar10_jpg", "omniglot", "omniglot_zip", "digits"):
        assert found[name] is True, name
    assert found["cifar10"] is False and found["cifar100"] is False  # not in the shared folder
