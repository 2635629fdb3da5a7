from kernelkit.apps.cli import bench_script_main; bench_script_main("image_decode")  # noqa: E702,I001
