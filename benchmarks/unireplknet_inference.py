from kernelkit.apps.cli import bench_script_main; bench_script_main("unireplknet_inference")  # noqa: E702,I001
