from kernelkit.apps.cli import bench_script_main

bench_script_main("ntk_dataset_scale")
