from kernelkit.apps.cli import bench_script_main; bench_script_main("data_transforms")  # noqa: E702,I001
