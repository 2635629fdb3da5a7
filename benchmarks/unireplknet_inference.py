from kernelkit.apps.bench import script_main; script_main("unireplknet_inference")  # noqa: E702,I001
