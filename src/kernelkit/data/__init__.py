"""Datasets: data root resolution, loaders for real files, embedded defaults, tensor transforms."""

from kernelkit.data.root import DataNotFoundError, data_root, find, require, set_data_root

__all__ = ["DataNotFoundError", "data_root", "find", "require", "set_data_root"]
