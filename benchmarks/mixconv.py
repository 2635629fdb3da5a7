from kernelkit.apps.cli import bench_script_main; bench_script_main("mixconv")  # noqa: E702,I001
