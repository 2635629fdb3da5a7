"""Every config dataclass of the applications: builds from its defaults, round-trips through JSON as config.json
does, and (for recipes) has a ``quick()`` preset of the same type that differs from the full run."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil

import pytest

import kernelkit.apps.configs as configs_pkg
from kernelkit.apps.configs.base import RunSettings


def _config_classes() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(configs_pkg.__path__, prefix="kernelkit.apps.configs."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, dataclasses.is_dataclass):
            if isinstance(obj, type) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


CLASSES = _config_classes()


def _buildable(cls: type) -> bool:
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(cls) if f.init)


def test_configs_found():
    assert len(CLASSES) >= 10
    assert RunSettings in CLASSES


@pytest.mark.parametrize("cls", [c for c in CLASSES if _buildable(c)], ids=lambda c: c.__name__)
def test_defaults_round_trip_through_json(cls):
    try:
        cfg = cls()
    except ValueError as exc:  # a config whose required input has no default refuses to build, naming the option
        assert str(exc).startswith("--"), exc
        return
    data = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert set(data) == {f.name for f in dataclasses.fields(cls)}


PRESETS = [c for c in CLASSES if isinstance(inspect.getattr_static(c, "quick", None), classmethod)]


@pytest.mark.parametrize("cls", PRESETS, ids=lambda c: c.__name__)
def test_quick_preset_is_the_same_type_and_smaller_than_the_full_run(cls):
    quick = cls.quick()
    assert type(quick) is cls
    assert dataclasses.asdict(quick) != dataclasses.asdict(cls())
