"""Model-level benchmarks of the ConvNet systems (run by ``kernelkit bench``)."""
