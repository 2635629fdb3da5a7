"""ImageDataset record: item contract, stratified seeded splits, class subsets, arrays."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kernelkit.data import ImageDataset, stratified_split, train_val_split
from kernelkit.data.transforms import RandomHorizontalFlip


def make(n_per_class=(10, 7, 3), c=1, hw=4):
    targets = torch.cat([torch.full((n,), k) for k, n in enumerate(n_per_class)])
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(targets), c, hw, hw), generator=g, dtype=torch.uint8)
    return ImageDataset(images, targets, [f"c{k}" for k in range(len(n_per_class))], "generated",
                        class_info={"group": ["a", "b", "a"][: len(n_per_class)]})


def test_item_is_float_in_unit_range_and_int_label():
    ds = make()
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (1, 4, 4) and isinstance(y, int)
    torch.testing.assert_close(x, ds.images[3].float() / 255)
    assert x.min() >= 0.0 and x.max() <= 1.0
    flipped = ds.with_transform(RandomHorizontalFlip(p=1.0))
    torch.testing.assert_close(flipped[3][0], x.flip(-1))
    assert flipped.images is ds.images  # shared storage


def test_dataloader_batches():
    xb, yb = next(iter(DataLoader(make(), batch_size=8)))
    assert xb.shape == (8, 1, 4, 4) and yb.tolist() == [0] * 8


def test_stratified_split_is_disjoint_complete_reproducible_and_balanced():
    ds = make((40, 20, 10))
    train, val = train_val_split(ds, 0.25, seed=3)
    assert len(train) + len(val) == len(ds)
    assert val.class_counts().tolist() == [10, 5, 2]  # round(0.25·n) per class
    a, b = stratified_split(ds.targets, 0.25, seed=3)
    assert set(a.tolist()).isdisjoint(b.tolist()) and sorted(a.tolist() + b.tolist()) == list(range(len(ds)))
    a2, b2 = stratified_split(ds.targets, 0.25, seed=3)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(b, stratified_split(ds.targets, 0.25, seed=4)[1])
    torch.testing.assert_close(val.images, ds.images[b])
    assert "seed 3" in val.source


def test_split_keeps_one_sample_each_side_for_small_classes():
    ds = make((2, 2, 50))
    train, val = train_val_split(ds, 0.1, seed=0)
    assert val.class_counts().tolist()[:2] == [1, 1] and train.class_counts().tolist()[:2] == [1, 1]
    with pytest.raises(ValueError, match="fraction"):
        train_val_split(ds, 1.5)


def test_subset_classes_relabels_in_given_order():
    ds = make()
    sub = ds.subset_classes(["c2", 0])
    assert sub.classes == ["c2", "c0"] and sub.class_info["group"] == ["a", "a"]
    assert sub.class_counts().tolist() == [3, 10]
    keep = (ds.targets == 2) | (ds.targets == 0)
    torch.testing.assert_close(sub.images, ds.images[keep])
    assert sub.targets.tolist() == [1] * 10 + [0] * 3
    same = ds.subset_classes([1], relabel=False)
    assert same.classes == ds.classes and set(same.targets.tolist()) == {1}
    with pytest.raises(ValueError, match="out of range"):
        ds.subset_classes([5])


def test_arrays():
    ds = make()
    x, y = ds.tensors()
    assert x.shape == (20, 1, 4, 4) and x.dtype == torch.float32 and torch.equal(y, ds.targets)
    xn, yn = ds.numpy()
    assert xn.dtype == np.uint8 and yn.dtype == np.int64 and len(xn) == 20


def test_invalid_records_raise():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), ["a"], "x")
    with pytest.raises(ValueError, match="targets"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3), ["a"], "x")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["a"], "x")


def test_dataset_pickles_for_worker_processes():
    ds = make()
    again = pickle.loads(pickle.dumps(ds))
    assert torch.equal(again.images, ds.images) and again.classes == ds.classes
