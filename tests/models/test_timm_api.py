"""timm-style model methods on UniRepLKNet and MixNet: head/features split, classifier reset, gradient
checkpointing, ``features_only``/``out_indices``/``FeatureInfo``, ``drop_rate``/``drop_path_rate``, ``use_sync_bn``.

References are plain torch ops on the model's own modules (pooling, LayerNorm, the stage outputs seen by
forward hooks) and the same computation without the option under test.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.models import create_model, reparameterize
from kernelkit.models.features import FeatureInfo, resolve_out_indices
from kernelkit.models.unireplknet import DropPath

FAMILIES = ["unireplknet_a", "mixnet_s"]
SIZE = 64
TF_REF = json.loads((Path(__file__).parent / "test_tf_mixnet_timm_reference.json").read_text())


def _x(batch: int = 2, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _pooled(model: nn.Module, fmap: torch.Tensor) -> torch.Tensor:
    """The pre-logits features by hand: global average pool (then UniRepLKNet's LayerNorm)."""
    pooled = fmap.mean((2, 3))
    if hasattr(model, "norm"):
        norm = model.norm
        return F.layer_norm(pooled, (pooled.shape[1],), norm.weight, norm.bias, norm.eps)
    return pooled


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_is_forward_head_of_forward_features(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).eval()
    x = _x()
    with torch.no_grad():
        fmap = model.forward_features(x)
        logits = model(x)
        pre = model.forward_head(fmap, pre_logits=True)
    assert fmap.shape == (2, model.num_features, SIZE // 32, SIZE // 32)
    assert model.num_classes == 7
    torch.testing.assert_close(model.forward_head(fmap), logits, rtol=0, atol=0)
    assert pre.shape == (2, model.num_features)
    torch.testing.assert_close(pre, _pooled(model, fmap), rtol=1e-6, atol=1e-6)
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head.out_features == 7
    torch.testing.assert_close(pre @ head.weight.T + head.bias, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_reset_classifier(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = _x(seed=1)
    model.reset_classifier(5)
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (model.num_features, 5)
    assert model.num_classes == 5
    assert torch.count_nonzero(head.bias) == 0
    w = head.weight.detach()
    if name.startswith("unireplknet"):  # trunc_normal(std=0.02) as the model's _init_weights
        assert 0.015 < w.std() < 0.025 and w.mean().abs() < 0.005
    else:  # MixNet reference init: U(±1/sqrt(out_features))
        bound = 1 / math.sqrt(5)
        assert w.abs().max() <= bound and w.std() > bound / 3
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
        torch.testing.assert_close(model(x), pre)  # no head: the pre-logits features
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


def _loss_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(123)  # the same drop-path masks in both runs
    loss = model(x).square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", FAMILIES)
def test_grad_checkpointing_gives_the_same_loss_and_grads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module = importlib.import_module(f"kernelkit.models.{name.split('_')[0]}")
    calls = []
    original = module.checkpoint

    def counting(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs.get("use_reentrant"))
        return original(fn, *args, **kwargs)

    monkeypatch.setattr(module, "checkpoint", counting)
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, drop_path_rate=0.2, drop_rate=0.0).train()
    x = _x(batch=3, seed=2)
    state = copy.deepcopy(model.state_dict())
    loss, grads = _loss_and_grads(model, x)
    assert not calls
    model.load_state_dict(state)  # the same BN running statistics before the second run
    model.set_grad_checkpointing()
    loss_cp, grads_cp = _loss_and_grads(model, x)
    n_blocks = sum(len(stage) for stage in (model.stages if hasattr(model, "stages") else model.blocks))
    assert calls == [False] * n_blocks  # every block, non-reentrant
    torch.testing.assert_close(loss_cp, loss, rtol=1e-6, atol=0)
    assert grads_cp.keys() == grads.keys()
    for k, g in grads.items():
        torch.testing.assert_close(grads_cp[k], g, rtol=1e-5, atol=1e-7, msg=k)
    calls.clear()
    model.eval()  # not while evaluating
    with torch.no_grad():
        model(x)
    model.train()
    model.set_grad_checkpointing(False)
    _loss_and_grads(model, x)
    assert not calls


def _stage_outputs(model: nn.Module, stages: nn.ModuleList | nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's output, seen by a forward hook on its last block."""
    seen: list[torch.Tensor] = []
    hooks = [s[-1].register_forward_hook(lambda _m, _i, out: seen.append(out)) for s in stages]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("out_indices", [None, (1, 3), (-1,), (3, 0)])
def test_unireplknet_features_only(out_indices: tuple[int, ...] | None) -> None:
    torch.manual_seed(0)
    model = create_model("unireplknet_a", features_only=True, out_indices=out_indices).eval()
    indices = (0, 1, 2, 3) if out_indices is None else tuple(i % 4 for i in out_indices)
    info = model.feature_info
    assert isinstance(info, FeatureInfo) and info.out_indices == indices and len(info) == len(indices)
    assert info.channels() == [(40, 80, 160, 320)[i] for i in indices]
    assert info.reduction() == [4 * 2**i for i in indices]
    assert info.module_name() == [f"stages.{i}" for i in indices]
    assert [d["num_chs"] for d in info] == info.channels() and info[0]["reduction"] == info.reduction()[0]
    # the official dense-task norms exist for the returned stages only, and are applied to them
    assert sorted(k.split(".")[0] for k in model.state_dict() if k.startswith("norm")) == \
        sorted(f"norm{i}" for i in indices for _ in ("weight", "bias")) and not hasattr(model, "head")
    x = _x(batch=1)
    with torch.no_grad():
        maps = model(x)
    raw = _stage_outputs(model, model.stages, x)
    assert len(maps) == len(indices)
    for fmap, i, c, r in zip(maps, indices, info.channels(), info.reduction(), strict=True):
        assert fmap.shape == (1, c, SIZE // r, SIZE // r)
        norm = getattr(model, f"norm{i}")
        want = F.layer_norm(raw[i].permute(0, 2, 3, 1), (c,), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(fmap, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("out_indices", [None, (2, 4), (0,)])
def test_mixnet_features_only(out_indices: tuple[int, ...] | None) -> None:
    torch.manual_seed(0)
    model = create_model("mixnet_s", features_only=True, out_indices=out_indices).eval()
    indices = (0, 1, 2, 3, 4) if out_indices is None else out_indices
    info = model.feature_info
    assert info.out_indices == indices and len(info) == len(indices)
    assert info.channels() == [(16, 24, 40, 120, 200)[i] for i in indices]
    assert info.reduction() == [(2, 4, 8, 16, 32)[i] for i in indices]
    stage_of = (0, 1, 2, 4, 5)  # one map per resolution: the last stage at each reduction
    assert info.module_name() == [f"blocks.{stage_of[i]}" for i in indices]
    x = _x(batch=1)
    with torch.no_grad():
        maps = model(x)
    raw = _stage_outputs(model, model.blocks, x)
    for fmap, i, c, r in zip(maps, indices, info.channels(), info.reduction(), strict=True):
        assert fmap.shape == (1, c, SIZE // r, SIZE // r)
        torch.testing.assert_close(fmap, raw[stage_of[i]], rtol=0, atol=0)


@pytest.mark.parametrize("name,count", [("unireplknet_a", 4), ("mixnet_s", 5)])
def test_out_of_range_out_indices_raise(name: str, count: int) -> None:
    with pytest.raises(ValueError, match=rf"out_indices \[{count}, -{count + 1}\] out of range"):
        create_model(name, features_only=True, out_indices=(0, count, -count - 1))
    with pytest.raises(ValueError, match="features_only"):
        create_model(name, out_indices=(0,))
    with pytest.raises(RuntimeError, match="features_only"):
        create_model(name, features_only=True).forward_head(torch.zeros(1, 8, 2, 2))


def test_feature_info_object() -> None:
    sizes = ((8, 4), (16, 8), (32, 16))
    entries = [{"num_chs": c, "reduction": r, "module": f"s{i}"} for i, (c, r) in enumerate(sizes)]
    info = FeatureInfo(entries, (2, 0))
    assert info.channels() == [32, 8] and info.reduction() == [16, 4] and info.module_name() == ["s2", "s0"]
    assert info.channels(1) == 16  # one entry of the full list
    assert list(info) == [entries[2], entries[0]] and info[-1] == entries[0] and info[:1] == [entries[2]]
    assert info.get_dicts() == [entries[2], entries[0]] and len(info) == 2
    assert FeatureInfo(entries).out_indices == (0, 1, 2)
    assert resolve_out_indices((-1, 0), 3) == (2, 0)
    with pytest.raises(ValueError, match="twice"):
        resolve_out_indices((1, -2), 3)
    with pytest.raises(ValueError, match="empty"):
        resolve_out_indices((), 3)
    with pytest.raises(ValueError, match="lacks"):
        FeatureInfo([{"num_chs": 3}])


def _drop_paths(model: nn.Module) -> list[DropPath]:
    return [m for m in model.modules() if isinstance(m, DropPath)]


def test_mixnet_drop_path_rates_equal_timm_builder() -> None:
    """Per-block stochastic depth of timm's efficientnet builder (``rate * block_idx / num_blocks``, residual
    blocks only), recorded from ``timm.create_model("mixnet_s", drop_path_rate=0.2)``."""
    model = create_model("mixnet_s", drop_path_rate=0.2)
    blocks = [block for stage in model.blocks for block in stage]
    want = sum(TF_REF["mixnet_s_drop_path_0.2"], [])  # timm builds the module on every block, uses it on residual ones
    assert len(blocks) == len(want) and sum(b.has_skip for b in blocks) == 11
    for block, rate in zip(blocks, want, strict=True):
        if block.has_skip and rate > 0:
            assert isinstance(block.drop_path, DropPath) and block.drop_path.p == pytest.approx(rate, abs=1e-12)
        else:
            assert isinstance(block.drop_path, nn.Identity)
    assert not _drop_paths(create_model("mixnet_s"))


@pytest.mark.parametrize("name", FAMILIES)
def test_drop_path_and_drop_rate_active_in_train_identity_in_eval(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name, num_classes=6, drop_rate=0.0)
    dropping = create_model(name, num_classes=6, drop_rate=0.5, drop_path_rate=0.5)
    dropping.load_state_dict(plain.state_dict())
    assert _drop_paths(dropping) and not _drop_paths(plain)
    x = _x(batch=2, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(x), plain.eval()(x), rtol=0, atol=0)
        # train mode with BN in eval: only the drops differ between two calls
        for m in (plain, dropping):
            m.train()
            for bn in m.modules():
                if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                    bn.eval()
        torch.testing.assert_close(plain(x), plain(x), rtol=0, atol=0)
        torch.manual_seed(1)
        a = dropping(x)
        torch.manual_seed(2)
        b = dropping(x)
        assert not torch.allclose(a, b)
        # drop_rate alone: dropout on the pooled features before the classifier
        fmap = plain.forward_features(x)
        pre = dropping.forward_head(fmap, pre_logits=True)
        zeros = (pre == 0).float().mean().item()
        assert 0.3 < zeros < 0.7
        kept = pre != 0
        torch.testing.assert_close(pre[kept], 2 * _pooled(dropping, fmap)[kept], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["unireplknet_a", "mixnet_s", "tf_mixnet_s"])
def test_use_sync_bn(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name, num_classes=3)
    sync = create_model(name, num_classes=3, use_sync_bn=True)
    assert list(sync.state_dict()) == list(plain.state_dict())
    bns = [m for m in sync.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == len(bns)
    assert {m.eps for m in bns} == {m.eps for m in plain.modules() if isinstance(m, nn.BatchNorm2d)}
    sync.load_state_dict(plain.state_dict())
    x = _x(batch=1)
    with torch.no_grad():  # eval mode needs no process group
        want = plain.eval()(x)
        torch.testing.assert_close(sync.eval()(x), want, rtol=1e-6, atol=1e-6)
        if name.startswith("unireplknet"):  # the deploy conversion folds SyncBatchNorm as BatchNorm
            reparameterize(sync)
            assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in sync.modules())
            torch.testing.assert_close(sync(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["unireplknet_a", "mixnet_s", "tf_mixnet_s"])
def test_builders_accept_the_create_model_keywords(name: str) -> None:
    kw = {"num_classes": 3, "in_chans": 1, "drop_rate": 0.1, "drop_path_rate": 0.1, "use_sync_bn": False}
    model = create_model(name, features_only=False, out_indices=None, **kw).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)
    feats = create_model(name, features_only=True, out_indices=(1, 2), in_chans=1).eval()
    with torch.no_grad():
        maps = feats(torch.randn(1, 1, 32, 32))
    assert [m.shape[1] for m in maps] == feats.feature_info.channels()
