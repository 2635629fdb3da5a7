from kernelkit.apps.bench import script_main

script_main("ntk_analytic_cntk")
