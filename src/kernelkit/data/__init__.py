"""Datasets: data root resolution, loaders for real files, embedded defaults, tensor transforms.

Every loader returns an :class:`ImageDataset` and is registered in the dataset catalog::

    from kernelkit.data import load_dataset, train_val_split
    test = load_dataset("mnist", split="test")          # real IDX files under the data root
    train, val = train_val_split(load_dataset("cifar10_jpg"), val_fraction=0.2, seed=0)
"""

from kernelkit.data.catalog import load_dataset, register_dataset
from kernelkit.data.cifar import load_cifar10, load_cifar100
from kernelkit.data.dataset import DataFormatError, ImageDataset, stratified_split, train_val_split
from kernelkit.data.digits import load_digits
from kernelkit.data.imagefolder import load_cifar10_jpg, load_image_folder
from kernelkit.data.mnist import load_mnist
from kernelkit.data.omniglot import load_omniglot, load_omniglot_zip
from kernelkit.data.root import DataNotFoundError, data_root, find, require, set_data_root

__all__ = [
    "DataFormatError", "DataNotFoundError", "ImageDataset", "data_root", "find", "load_cifar10",
    "load_cifar100", "load_cifar10_jpg", "load_dataset", "load_digits", "load_image_folder", "load_mnist",
    "load_omniglot", "load_omniglot_zip", "register_dataset", "require", "set_data_root", "stratified_split",
    "train_val_split",
]
