from kernelkit.apps.bench import script_main

script_main("depthwise_conv")
