"""Model zoo: ``create_model``, ``list_models``, ``reparameterize``.

Each family is one module in this package that registers its variants with ``@register_model``.
"""

from kernelkit.models._registry import (
    MODELS,
    create_model,
    list_models,
    register_model,
    reparameterize,
)

__all__ = ["MODELS", "create_model", "list_models", "register_model", "reparameterize"]
