"""Applications on top of the kernelkit library: the command line, registered recipes, configs, benchmarks.

Nothing in the library (``kernelkit.*`` outside this package) imports from here; an import-linter
contract in the test suite checks it.
"""
