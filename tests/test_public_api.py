"""Every name that earlier releases, issues and the README promised is still importable from where it was promised.

The re-housing moved modules (``conv`` -> ``layers``, experiments -> ``apps.recipes``, ...); old public homes
re-export from the new ones.
"""

from __future__ import annotations

import importlib

import pytest

PROMISED: dict[str, list[str]] = {
    "kernelkit": ["__version__"],
    "kernelkit.conv": ["depthwise_conv2d", "DilatedReparamBlock", "MixConv2d", "split_channels"],
    "kernelkit.layers": ["depthwise_conv2d", "DilatedReparamBlock", "MixConv2d", "split_channels"],
    "kernelkit.models": ["create_model", "list_models", "reparameterize", "register_model", "MODELS"],
    "kernelkit.ntk": ["analytic", "empirical", "monte_carlo", "nn", "predict", "Kernels", "MonteCarloKernels"],
    "kernelkit.fscil": ["teen_calibrate", "TEEN", "PrototypeBaseline", "TeenConfig", "run_plan", "generate_plan",
                        "create_method", "list_methods"],
    "kernelkit.longctx": ["text_length", "metrics", "rope", "BUCKETS", "EXTENDED_BUCKETS"],
    "kernelkit.registry": ["Registry", "RegistryError"],
    "kernelkit.runs": ["Run"],
    "kernelkit.train": ["Trainer", "TrainConfig", "TrainResult", "ModelEma", "distributed"],
    "kernelkit.utils.allocator": ["retain_freed_memory"],
    "kernelkit.utils.cache": ["cache_root"],
}


@pytest.mark.parametrize("module", sorted(PROMISED))
def test_promised_names_import(module):
    mod = importlib.import_module(module)
    missing = [name for name in PROMISED[module] if not _importable(mod, name)]
    assert not missing, f"{module} lost {missing}"


def _importable(mod, name: str) -> bool:
    """``from mod import name`` works: an attribute, or a submodule of that name."""
    if hasattr(mod, name):
        return True
    try:
        importlib.import_module(f"{mod.__name__}.{name}")
    except ImportError:
        return False
    return True


def test_old_and_new_homes_are_the_same_objects():
    from kernelkit import conv, layers

    for name in ("depthwise_conv2d", "DilatedReparamBlock", "MixConv2d", "split_channels"):
        assert getattr(conv, name) is getattr(layers, name)


def test_longctx_submodules_are_modules():
    import types

    from kernelkit.longctx import metrics, rope

    assert isinstance(metrics, types.ModuleType) and isinstance(rope, types.ModuleType)
