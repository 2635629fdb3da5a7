"""Benchmark harness: time kernelkit against a named baseline side by side in one process."""

from kernelkit.apps.bench.harness import (
    BENCHMARKS,
    BenchContext,
    Comparison,
    register_benchmark,
    run_benchmarks,
)

__all__ = ["BENCHMARKS", "BenchContext", "Comparison", "register_benchmark", "run_benchmarks"]

