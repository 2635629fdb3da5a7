from kernelkit.apps.bench import script_main; script_main("m4le_reference")  # noqa: E702,I001
