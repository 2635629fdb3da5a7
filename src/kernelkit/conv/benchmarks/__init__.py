"""Benchmarks of the convolution building blocks (run by ``kernelkit bench``)."""
