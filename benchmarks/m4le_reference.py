from kernelkit.apps.cli import bench_script_main; bench_script_main("m4le_reference")  # noqa: E702,I001
