from kernelkit.apps.cli import bench_script_main; bench_script_main("mixnet")  # noqa: E702,I001
