"""Model zoo: ``create_model``, ``list_models``, ``reparameterize``.

Each family is one module in this package: its blocks, the model class, a table of per-variant arguments
(e.g. ``unireplknet.UNIREPLKNET_VARIANTS``, ``mixnet.MIXNET_VARIANTS``) and one loop that registers a builder
per row with :func:`register_model`; ``create_model(name, **kwargs)`` builds any of them.
"""

from kernelkit.models._registry import (
    MODELS,
    create_model,
    list_models,
    register_model,
    reparameterize,
)

__all__ = ["MODELS", "create_model", "list_models", "register_model", "reparameterize"]
