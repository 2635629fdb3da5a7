"""Pretrained tags, safe checkpoint reading and ``create_model(..., pretrained=True)``, all without a network.

The Hub tests build a Hugging Face cache in the Hub's own layout (``tests/hub_cache.py``), put official-format
files with random weights in it, point ``HF_HUB_CACHE`` at it with ``HF_HUB_OFFLINE=1`` and compare the
loaded model with one whose state dict was loaded by hand.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from kernelkit.models import create_model, list_models
from kernelkit.models.pretrained import (
    CheckpointError,
    PretrainedCfg,
    adapt_input_conv,
    default_cfg,
    get_pretrained_cfg,
    imagenet_class_names,
    imagenet_synsets,
    list_pretrained,
    read_state_dict,
)
from tests.hub_cache import write_hub_file

UNIREPLKNET_FILE = "unireplknet_a_in1k_224_acc77.03.pth"

# The official files of DingXiaoH/UniRepLKNet, spelled out (not generated) so the table is checked against them.
OFFICIAL_FILES = {
    "unireplknet_a.in1k": "unireplknet_a_in1k_224_acc77.03.pth",
    "unireplknet_f.in1k": "unireplknet_f_in1k_224_acc78.58.pth",
    "unireplknet_p.in1k": "unireplknet_p_in1k_224_acc80.23.pth",
    "unireplknet_n.in1k": "unireplknet_n_in1k_224_acc81.64.pth",
    "unireplknet_t.in1k": "unireplknet_t_in1k_224_acc83.21.pth",
    "unireplknet_s.in1k": "unireplknet_s_in1k_224_acc83.91.pth",
    "unireplknet_s.in22k": "unireplknet_s_in22k_pretrain.pth",
    "unireplknet_b.in22k": "unireplknet_b_in22k_pretrain.pth",
    "unireplknet_l.in22k": "unireplknet_l_in22k_pretrain.pth",
    "unireplknet_xl.in22k": "unireplknet_xl_in22k_pretrain.pth",
    "unireplknet_s.in22k_ft_in1k_384": "unireplknet_s_in22k_to_in1k_384_acc86.44.pth",
    "unireplknet_b.in22k_ft_in1k_384": "unireplknet_b_in22k_to_in1k_384_acc87.40.pth",
    "unireplknet_l.in22k_ft_in1k_384": "unireplknet_l_in22k_to_in1k_384_acc87.88.pth",
    "unireplknet_xl.in22k_ft_in1k_384": "unireplknet_xl_in22k_to_in1k_384_acc87.96.pth",
}
TIMM_TOP1 = {"mixnet_s.ft_in1k": 76.000, "mixnet_m.ft_in1k": 77.268, "mixnet_l.ft_in1k": 78.970,
             "mixnet_xl.ra_in1k": 80.494, "tf_mixnet_s.in1k": 75.656, "tf_mixnet_m.in1k": 76.952,
             "tf_mixnet_l.in1k": 78.774}


# ---- the table ---------------------------------------------------------------------------------


def test_every_official_unireplknet_file_has_its_tag():
    assert {t: get_pretrained_cfg(t).hf_hub_filename for t in list_pretrained("unireplknet_*")} == OFFICIAL_FILES
    for tag in OFFICIAL_FILES:
        cfg = get_pretrained_cfg(tag)
        assert cfg.hf_hub_id == "DingXiaoH/UniRepLKNet" and cfg.architecture == tag.split(".")[0]
        assert (cfg.classifier, cfg.first_conv) == ("head", "downsample_layers.0.0")
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
        assert cfg.interpolation == "bicubic"


def test_unireplknet_tags_carry_the_official_evaluation_settings():
    a = get_pretrained_cfg("unireplknet_a.in1k")
    assert (a.input_size, a.crop_pct, a.crop_mode, a.num_classes, a.label_names, a.top1) == (
        (3, 224, 224), 0.875, "center", 1000, "imagenet-1k", 77.03)
    xl = get_pretrained_cfg("unireplknet_xl.in22k_ft_in1k_384")
    assert (xl.input_size, xl.crop_pct, xl.crop_mode, xl.top1) == ((3, 384, 384), 1.0, "squash", 87.96)
    sizes = {v: get_pretrained_cfg(f"unireplknet_{v}.in22k").input_size for v in ("s", "b", "l", "xl")}
    assert sizes == {"s": (3, 224, 224), "b": (3, 224, 224), "l": (3, 192, 192), "xl": (3, 192, 192)}
    s22k = get_pretrained_cfg("unireplknet_s.in22k")
    assert (s22k.num_classes, s22k.label_names, s22k.top1) == (21841, None, None)


def test_timm_mixnet_tags():
    assert list_pretrained("*mixnet_*") == sorted(TIMM_TOP1)
    for tag, top1 in TIMM_TOP1.items():
        cfg = get_pretrained_cfg(tag)
        assert (cfg.hf_hub_id, cfg.hf_hub_filename, cfg.top1) == (f"timm/{tag}", "model.safetensors", top1)
        assert (cfg.input_size, cfg.crop_pct, cfg.interpolation) == ((3, 224, 224), 0.875, "bicubic")
        assert (cfg.classifier, cfg.first_conv, cfg.num_classes) == ("classifier", "conv_stem", 1000)


def test_bare_architecture_resolves_to_its_first_tag():
    assert get_pretrained_cfg("unireplknet_a").tag == "unireplknet_a.in1k"
    assert get_pretrained_cfg("unireplknet_xl").tag == "unireplknet_xl.in22k_ft_in1k_384"  # a 1K head first
    assert get_pretrained_cfg("mixnet_xl").tag == "mixnet_xl.ra_in1k"


def test_list_models_with_pretrained_lists_tags_of_registered_models():
    tags = list_models(pretrained=True)
    assert {"unireplknet_a.in1k", "unireplknet_s.in22k_ft_in1k_384", "mixnet_s.ft_in1k"} <= set(tags)
    assert tags == sorted(t for t in list_pretrained() if t.split(".")[0] in list_models())
    assert list_models("mixnet_s*", pretrained=True) == ["mixnet_s.ft_in1k"]
    assert all("." not in name for name in list_models())  # without pretrained: architectures only
    assert list_models("unireplknet_a") == ["unireplknet_a"]


def test_tf_mixnet_tags_are_listed_once_the_architectures_exist():
    if "tf_mixnet_s" not in list_models():
        pytest.skip("tf_mixnet_s is not registered")
    assert list_models("tf_mixnet_*", pretrained=True) == ["tf_mixnet_l.in1k", "tf_mixnet_m.in1k", "tf_mixnet_s.in1k"]
    assert create_model("tf_mixnet_s.in1k").pretrained_cfg["tag"] == "tf_mixnet_s.in1k"


def test_unknown_tags_and_models_name_close_matches():
    with pytest.raises(KeyError, match=r"unknown pretrained tag 'unireplknet_a\.in22k'.*unireplknet_a has "
                                       r"unireplknet_a\.in1k"):
        create_model("unireplknet_a.in22k")
    with pytest.raises(KeyError, match=r"unknown model 'unireplknet-a'; did you mean 'unireplknet_a'"):
        create_model("unireplknet-a", pretrained=True)
    with pytest.raises(KeyError, match=r"unknown pretrained tag 'mixnet_s\.in1k'; did you mean .*'mixnet_s\.ft_in1k'"):
        get_pretrained_cfg("mixnet_s.in1k")
    with pytest.raises(ValueError, match="resnet18 has no pretrained weights.*checkpoint_path"):
        create_model("resnet18", pretrained=True)


def test_every_model_gets_a_pretrained_cfg():
    assert create_model("mixnet_s").pretrained_cfg == default_cfg("mixnet_s").to_dict()
    cfg = create_model("unireplknet_a", num_classes=10).pretrained_cfg
    assert (cfg["tag"], cfg["num_classes"], cfg["hf_hub_id"], cfg["crop_pct"]) == ("", 10, "", 0.875)
    assert set(PretrainedCfg.__dataclass_fields__) == set(cfg)
    tagged = create_model("mixnet_xl.ra_in1k")  # a tag without weights: random weights, the tag's configuration
    assert tagged.pretrained_cfg == get_pretrained_cfg("mixnet_xl.ra_in1k").to_dict()


def test_a_tag_sets_the_default_number_of_classes(monkeypatch):
    from kernelkit.models import _registry

    built: list[dict] = []

    def record(name, kwargs):  # stands in for building UniRepLKNet-S with a 21841-class head
        built.append({"name": name, **kwargs})
        return nn.Linear(1, kwargs.get("num_classes", 1))

    monkeypatch.setattr(_registry, "_build", record)
    assert create_model("unireplknet_s.in22k").pretrained_cfg["num_classes"] == 21841
    assert create_model("unireplknet_s.in22k", num_classes=5).pretrained_cfg["label_names"] is None
    assert create_model("unireplknet_s").pretrained_cfg["num_classes"] == 1000
    assert built == [{"name": "unireplknet_s", "num_classes": 21841}, {"name": "unireplknet_s", "num_classes": 5},
                     {"name": "unireplknet_s"}]


# ---- ImageNet-1K labels ------------------------------------------------------------------------


def test_imagenet_labels_shipped_with_the_package():
    synsets, names = imagenet_synsets(), imagenet_class_names()
    assert len(synsets) == len(set(synsets)) == 1000 and synsets == sorted(synsets)
    assert all(s.startswith("n") and len(s) == 9 and s[1:].isdigit() for s in synsets)
    assert synsets[:2] == ["n01440764", "n01443537"]
    assert len(names) == 1000 and names[:3] == ["tench", "goldfish", "great white shark"]
    assert names[-1] == "toilet tissue"


# ---- reading checkpoints -----------------------------------------------------------------------


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_read_state_dict_skips_the_args_namespace_and_epoch_of_an_official_checkpoint(tmp_path):
    sd = _tensors()
    path = tmp_path / "official.pth"
    torch.save({"model": sd, "args": argparse.Namespace(lr=4e-3, model="unireplknet_a", input_size=224),
                "epoch": 3}, path)
    tensors, notes = read_state_dict(path)
    _assert_same(tensors, sd)
    assert notes == ["skipped non-tensor entry 'args' (Namespace)", "skipped non-tensor entry 'epoch' (int)"]


def test_read_state_dict_unwraps_state_dict_and_module_prefix(tmp_path):
    sd = _tensors()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()} | {"step": 7}}, tmp_path / "a.pt")
    tensors, notes = read_state_dict(tmp_path / "a.pt")
    _assert_same(tensors, sd)
    assert notes == ["skipped non-tensor entry 'step' (int)"]
    (tmp_path / "b.safetensors").write_bytes(save_safetensors(sd))
    tensors, notes = read_state_dict(tmp_path / "b.safetensors")
    _assert_same(tensors, sd)
    assert notes == []


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize("zip_format", [True, False])
def test_read_state_dict_refuses_pickled_code_without_running_it(tmp_path, zip_format):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": _tensors(), "payload": _RunsCode(marker)}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused by the weights-only loader") as info:
        read_state_dict(path)
    assert not marker.exists()
    assert str(info.value) == (f"{path}: refused by the weights-only loader (it refers to {os.system.__module__}"
                               ".system); only tensors, plain containers and argparse.Namespace are read, "
                               "pickled code is never run")


def test_read_state_dict_names_damaged_files(tmp_path):
    for name, data in (("cut.pth", b"PK\x03\x04 not a zip"), ("cut.safetensors", b"\x10\x00\x00"), ("empty.pt", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            read_state_dict(tmp_path / name)
    with pytest.raises(CheckpointError, match="missing.pth: checkpoint not found"):
        read_state_dict(tmp_path / "missing.pth")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pth")
    with pytest.raises(CheckpointError, match="holds no tensors"):
        read_state_dict(tmp_path / "no_tensors.pth")


def test_adapt_input_conv_matches_timm_closed_form():
    w = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(1, w), w[:, 0:1] + w[:, 1:2] + w[:, 2:3])
    torch.testing.assert_close(adapt_input_conv(5, w), w[:, [0, 1, 2, 0, 1]] * (3 / 5))
    assert adapt_input_conv(3, w) is w
    with pytest.raises(ValueError, match="4 input channels"):
        adapt_input_conv(1, torch.randn(8, 4, 3, 3))


# ---- create_model with Hub files (offline) -----------------------------------------------------


def _randomized(name: str, seed: int) -> nn.Module:
    """A freshly built model with every float tensor moved away from its initialisation (so a tensor that
    is not loaded changes the output)."""
    torch.manual_seed(seed)
    model = create_model(name).eval()
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1 if "running_var" in key else torch.randn_like(t) * 0.05)
    return model


def _hand_loaded(name: str, sd: dict[str, torch.Tensor], **kwargs) -> nn.Module:
    model = create_model(name, **kwargs).eval()
    model.load_state_dict(sd)
    return model


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty offline Hugging Face cache that ``hf_hub_download`` reads.

    ``huggingface_hub`` reads the environment once, at import, into ``constants`` (and, before 1.0, a copy of
    the cache path into ``file_download``); those are patched next to the environment.
    """
    from huggingface_hub import constants, file_download

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    if hasattr(file_download, "HF_HUB_CACHE"):
        monkeypatch.setattr(file_download, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def unireplknet_a_weights() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _randomized("unireplknet_a", seed=1).state_dict().items()}


@pytest.fixture
def unireplknet_hub(hub, unireplknet_a_weights):
    buf = io.BytesIO()
    torch.save({"model": unireplknet_a_weights, "args": argparse.Namespace(model="unireplknet_a", lr=4e-3),
                "epoch": 3}, buf)
    write_hub_file(hub, "DingXiaoH/UniRepLKNet", UNIREPLKNET_FILE, buf.getvalue())
    return hub


def test_unireplknet_pretrained_equals_the_state_dict_loaded_by_hand(unireplknet_hub, unireplknet_a_weights, caplog):
    x = torch.randn(2, 3, 32, 32)
    ref = _hand_loaded("unireplknet_a", unireplknet_a_weights)
    with caplog.at_level(logging.INFO, logger="kernelkit.models"):
        model = create_model("unireplknet_a", pretrained=True).eval()
    assert "skipped non-tensor entry 'args' (Namespace)" in caplog.text
    _assert_same(model.state_dict(), unireplknet_a_weights)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
        assert not torch.allclose(create_model("unireplknet_a").eval()(x), ref(x))  # the weights matter
    assert model.pretrained_cfg == get_pretrained_cfg("unireplknet_a.in1k").to_dict()
    tagged = create_model("unireplknet_a.in1k", pretrained=True)
    _assert_same(tagged.state_dict(), unireplknet_a_weights)


@pytest.mark.parametrize("tag", ["mixnet_s.ft_in1k", "tf_mixnet_s.in1k"])
def test_mixnet_pretrained_reads_the_timm_safetensors(hub, tag):
    arch = tag.split(".")[0]
    if arch not in list_models():
        pytest.skip(f"{arch} is not registered")
    weights = {k: v.clone() for k, v in _randomized(arch, seed=2).state_dict().items()}
    write_hub_file(hub, f"timm/{tag}", "model.safetensors", save_safetensors(weights))
    model = create_model(arch, pretrained=True).eval()
    ref = _hand_loaded(arch, weights)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert model.pretrained_cfg == get_pretrained_cfg(tag).to_dict() and model.pretrained_cfg["top1"] == TIMM_TOP1[tag]
    backbone = create_model(tag, pretrained=True, features_only=True)  # no conv_head, bn2, classifier
    assert torch.equal(backbone.state_dict()["conv_stem.weight"], weights["conv_stem.weight"])


def test_other_num_classes_keeps_the_backbone_and_reinitialises_the_head(unireplknet_hub, unireplknet_a_weights):
    model = create_model("unireplknet_a", pretrained=True, num_classes=10)
    sd = model.state_dict()
    assert sd["head.weight"].shape == (10, 320) and sd["head.bias"].shape == (10,)
    _assert_same({k: v for k, v in sd.items() if not k.startswith("head.")},
                 {k: v for k, v in unireplknet_a_weights.items() if not k.startswith("head.")})
    assert (model.pretrained_cfg["num_classes"], model.pretrained_cfg["label_names"]) == (10, None)
    pooled = create_model("unireplknet_a", pretrained=True, num_classes=0)  # no classifier at all
    assert not any(k.startswith("head.") for k in pooled.state_dict())


def test_one_input_channel_sums_the_stem_over_rgb(unireplknet_hub, unireplknet_a_weights):
    gray = create_model("unireplknet_a", pretrained=True, in_chans=1).eval()
    stem = "downsample_layers.0.0.weight"
    torch.testing.assert_close(gray.state_dict()[stem], unireplknet_a_weights[stem].sum(1, keepdim=True))
    assert gray.pretrained_cfg["input_size"] == (1, 224, 224)
    rgb = _hand_loaded("unireplknet_a", unireplknet_a_weights)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():  # a gray image is an RGB image with three equal channels
        torch.testing.assert_close(gray(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_features_only_drops_the_head(unireplknet_hub, unireplknet_a_weights):
    model = create_model("unireplknet_a", pretrained=True, features_only=True)
    sd = model.state_dict()
    assert not any(k.startswith(("head.", "norm.")) for k in sd)
    shared = [k for k in sd if k in unireplknet_a_weights]
    assert len(shared) == len(unireplknet_a_weights) - 4  # all but head.{weight,bias}, norm.{weight,bias}
    for k in shared:
        assert torch.equal(sd[k], unireplknet_a_weights[k]), k


def test_deploy_loads_the_training_form_then_converts(unireplknet_hub, unireplknet_a_weights):
    deploy = create_model("unireplknet_a", pretrained=True, deploy=True).eval()
    ref = _hand_loaded("unireplknet_a", unireplknet_a_weights)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), ref(x), rtol=1e-4, atol=1e-4)
    assert set(deploy.state_dict()) != set(ref.state_dict())  # it was converted


def test_checkpoint_path_loads_a_local_file(tmp_path, unireplknet_a_weights):
    path = tmp_path / "local.pth"
    torch.save({"model": unireplknet_a_weights, "epoch": 1}, path)
    model = create_model("unireplknet_a", checkpoint_path=path)
    _assert_same(model.state_dict(), unireplknet_a_weights)
    assert model.pretrained_cfg["tag"] == ""


def test_a_local_file_sets_the_number_of_classes_and_input_channels(tmp_path):
    torch.manual_seed(3)
    fine_tuned = create_model("mixnet_s", num_classes=10, in_chans=1).state_dict()
    path = tmp_path / "fine_tuned.safetensors"
    path.write_bytes(save_safetensors(fine_tuned))
    model = create_model("mixnet_s", checkpoint_path=path)
    _assert_same(model.state_dict(), fine_tuned)  # the file's own 10-class head, not a re-initialised one
    assert model.pretrained_cfg["num_classes"] == 10 and model.pretrained_cfg["input_size"] == (1, 224, 224)


def test_not_cached_offline_names_the_tag_the_file_and_the_fix(hub):
    with pytest.raises(RuntimeError) as info:
        create_model("unireplknet_a", pretrained=True)
    msg = str(info.value)
    assert "\n" not in msg
    for part in ("unireplknet_a.in1k", "DingXiaoH/UniRepLKNet/" + UNIREPLKNET_FILE, "HF_HUB_OFFLINE",
                 "checkpoint_path=FILE", str(hub)):
        assert part in msg


def test_an_unreachable_hub_names_the_file_and_the_fix(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    def unreachable(repo_id, filename, **kwargs):
        raise ConnectionError(f"Cannot reach https://huggingface.co/{repo_id}\nretry later")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(RuntimeError) as info:
        create_model("mixnet_s.ft_in1k", pretrained=True)
    assert str(info.value) == ("mixnet_s.ft_in1k: cannot download timm/mixnet_s.ft_in1k/model.safetensors "
                               "(ConnectionError: Cannot reach https://huggingface.co/timm/mixnet_s.ft_in1k); "
                               "check the connection and HF_ENDPOINT, or pass checkpoint_path=FILE")


def test_a_checkpoint_of_another_model_lists_the_mismatching_keys(tmp_path):
    path = tmp_path / "mixnet.safetensors"
    path.write_bytes(save_safetensors(create_model("mixnet_s").state_dict()))
    with pytest.raises(CheckpointError) as info:
        create_model("unireplknet_a", checkpoint_path=path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: does not fit unireplknet_a") and "\n" not in msg
    n_missing = sum(not k.endswith("num_batches_tracked") for k in create_model("unireplknet_a").state_dict())
    n_unexpected = len(read_state_dict(path)[0])
    assert f"{n_missing} missing (downsample_layers.0.0.bias, downsample_layers.0.0.weight," in msg
    assert f"{n_unexpected} unexpected (blocks.0.0.bn1.bias," in msg
