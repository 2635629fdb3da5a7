from kernelkit.apps.bench import script_main; script_main("data_transforms")  # noqa: E702,I001
