import pytest

from kernelkit.registry import Registry, RegistryError


def test_register_get_list_and_pattern():
    reg: Registry = Registry("widget")

    @reg.register("alpha_small", size=1)
    def alpha_small():
        return 1

    @reg.register()
    def alpha_large():
        return 2

    assert reg.get("alpha_small") is alpha_small
    assert reg.entry("alpha_small").meta == {"size": 1}
    assert reg.names() == ["alpha_large", "alpha_small"]
    assert reg.names("*_large") == ["alpha_large"]
    assert "alpha_large" in reg and len(reg) == 2


def test_duplicate_name_raises():
    reg: Registry = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(RegistryError, match="duplicate widget name 'a'"):
        reg.register("a")(lambda: 2)


def test_unknown_name_suggests_close_matches():
    reg: Registry = Registry("model")
    reg.register("unireplknet_a")(lambda: 1)
    reg.register("unireplknet_b")(lambda: 1)
    with pytest.raises(RegistryError) as info:
        reg.get("unireplknet-a")
    msg = str(info.value)
    assert "unknown model 'unireplknet-a'" in msg and "did you mean 'unireplknet_a'" in msg


def test_discovery_imports_modules_before_lookup(tmp_path, monkeypatch):
    pkg = tmp_path / "kkfake"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "experiments.py").write_text(
        "from tests.test_registry import REG\nREG.register('found')(lambda: 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    global REG
    REG = Registry("experiment", discover=("kkfake.*.experiments",))
    assert REG.names() == ["found"]


def test_missing_optional_dependency_is_recorded_not_fatal():
    reg: Registry = Registry("backend", discover=("module_that_does_not_exist_xyz",))
    assert reg.names() == []
    assert "module_that_does_not_exist_xyz" in reg.skipped


REG: Registry = Registry("experiment")
