"""Model zoo: ``create_model``, ``list_models``, ``reparameterize``, pretrained weights.

Each family is one module in this package: its blocks, the model class, a table of per-variant arguments
(e.g. ``unireplknet.UNIREPLKNET_VARIANTS``, ``mixnet.MIXNET_VARIANTS``) and one loop that registers a builder
per row with :func:`register_model`; ``create_model(name, **kwargs)`` builds any of them.

Pretrained weights are named by tags (``"unireplknet_a.in1k"``, ``"mixnet_s.ft_in1k"``; ``list_models(
pretrained=True)``): ``create_model(tag_or_arch, pretrained=True)`` loads them from the Hugging Face Hub (see
:mod:`kernelkit.models.pretrained`), and every model carries ``model.pretrained_cfg``.
"""

from kernelkit.models._registry import (
    MODELS,
    create_model,
    list_models,
    register_model,
    reparameterize,
)
from kernelkit.models.pretrained import (
    PretrainedCfg,
    get_pretrained_cfg,
    imagenet_class_names,
    list_pretrained,
    read_state_dict,
)

__all__ = [
    "MODELS", "PretrainedCfg", "create_model", "get_pretrained_cfg", "imagenet_class_names", "list_models",
    "list_pretrained", "read_state_dict", "register_model", "reparameterize",
]
