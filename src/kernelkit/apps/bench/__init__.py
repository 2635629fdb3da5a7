"""Benchmark harness: time kernelkit against a named baseline side by side in one process."""

from kernelkit.apps.bench.harness import (
    BENCHMARKS,
    BenchContext,
    Comparison,
    register_benchmark,
    run_benchmarks,
)

__all__ = ["BENCHMARKS", "BenchContext", "Comparison", "register_benchmark", "run_benchmarks"]


def script_main(*names: str) -> None:
    """Entry point for ``benchmarks/<claim>.py`` scripts: ``kernelkit bench NAME ...`` with argv flags."""
    import sys

    from kernelkit.apps.cli import app

    sys.argv = ["kernelkit", "bench", *names, *sys.argv[1:]]
    app()
