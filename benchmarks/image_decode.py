from kernelkit.apps.bench import script_main; script_main("image_decode")  # noqa: E702,I001
