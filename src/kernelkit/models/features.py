"""``feature_info`` of a backbone: channels, reduction and module name of each feature map it can return.

:class:`FeatureInfo` follows timm's ``FeatureInfo``: ``.channels()``, ``.reduction()`` and ``.module_name()``
give the values of the maps selected by ``.out_indices`` (in that order), ``.channels(i)`` one entry of the
full list. Indexing, iteration and ``len`` go over the selected maps, in the order the model returns them,
so each item is the dict ``{"num_chs", "reduction", "module"}`` of the matching output (``zip(outputs,
model.feature_info)`` pairs them); ``.info`` is the full list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

__all__ = ["FeatureInfo", "resolve_out_indices"]


def resolve_out_indices(out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """``out_indices`` as non-negative indices into ``count`` feature maps (``None``: all of them).

    Negative indices count from the end. Raises ``ValueError`` naming the indices that are out of range
    or repeated.
    """
    if out_indices is None:
        return tuple(range(count))
    if isinstance(out_indices, int):
        out_indices = (out_indices,)
    wanted = tuple(out_indices)
    bad = [i for i in wanted if isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count]
    if bad:
        raise ValueError(f"out_indices {bad} out of range: this model has {count} feature maps "
                         f"(indices 0..{count - 1})")
    resolved = tuple(i % count for i in wanted)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"out_indices {list(wanted)} name a feature map twice")
    if not resolved:
        raise ValueError("out_indices is empty; name at least one feature map")
    return resolved


class FeatureInfo(Sequence[dict[str, Any]]):
    """The feature maps a model can return (``info``) and the ones it returns (``out_indices``).

    Args:
        info: one mapping per feature map with at least ``num_chs``, ``reduction`` and ``module``.
        out_indices: indices into ``info`` of the maps the model returns (``None``: all).
    """

    def __init__(self, info: Sequence[Mapping[str, Any]], out_indices: Sequence[int] | None = None):
        for i, entry in enumerate(info):
            missing = {"num_chs", "reduction", "module"} - set(entry)
            if missing:
                raise ValueError(f"feature_info entry {i} lacks {sorted(missing)}")
        self.info: list[dict[str, Any]] = [dict(entry) for entry in info]
        self.out_indices: tuple[int, ...] = resolve_out_indices(out_indices, len(self.info))

    def get(self, key: str, idx: int | None = None) -> Any:
        """``key`` of every selected map (a list), or of entry ``idx`` of the full list."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        return self.info[idx][key]

    def channels(self, idx: int | None = None) -> Any:
        """Channels of the selected maps (a list), or of entry ``idx`` of the full list."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> Any:
        """Input-to-map stride of the selected maps (a list), or of entry ``idx`` of the full list."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | None = None) -> Any:
        """Name of the module producing each selected map (a list), or entry ``idx`` of the full list."""
        return self.get("module", idx)

    def get_dicts(self) -> list[dict[str, Any]]:
        """Copies of the selected entries, in output order."""
        return [dict(self.info[i]) for i in self.out_indices]

    @overload
    def __getitem__(self, item: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, item: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, item: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(item, slice):
            return [self.info[i] for i in self.out_indices[item]]
        return self.info[self.out_indices[item]]

    def __len__(self) -> int:
        return len(self.out_indices)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.info[i] for i in self.out_indices)

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()}, out_indices={self.out_indices})"
