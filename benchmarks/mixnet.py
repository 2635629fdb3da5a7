from kernelkit.apps.bench import script_main; script_main("mixnet")  # noqa: E702,I001
