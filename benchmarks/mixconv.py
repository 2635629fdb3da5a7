from kernelkit.apps.bench import script_main; script_main("mixconv")  # noqa: E702,I001
