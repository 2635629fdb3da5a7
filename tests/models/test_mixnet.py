"""MixNet-S/M/L/XL against timm's ``mixnet_*`` builders and the spec's published counts.

Independent reference: ``test_mixnet_timm_reference.json`` was produced by running timm's own
``efficientnet.py`` builders (huggingface/pytorch-image-models @ aa4b585, commit recorded in the file)
in a throwaway environment outside this repository (torchvision / huggingface_hub import-stubbed; they
are not used by the model code), recording for each variant: parameter counts, state-dict key → shape,
``kernelkit.utils.counting.count_macs`` at 224², ``feature_info``, blocks per stage, and the logits of
the model with every state-dict tensor filled by the closed-form rule in ``deterministic_fill`` below.

``test_tf_mixnet_timm_reference.json`` was made the same way from timm's ``tf_mixnet_s/m/l`` builders (the
TensorFlow ports: BN eps 1e-3, TF "SAME" padding; same commit, recorded in the file): parameter counts,
state-dict key → shape, BN eps, blocks per stage, the ``features_only`` ``feature_info``, and the logits
under ``deterministic_fill`` at 224² and 225² (tf_mixnet_s, all 1000) and at 64² and 65² (first 16 and the
sum; 224 and 64 pad asymmetrically at every stride-2 conv, 225 and 65 never do). It also holds the per-block
stochastic-depth rates of ``timm.create_model("mixnet_s", drop_path_rate=0.2)`` (tests/models/test_timm_api.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kernelkit.layers.mixconv import use_impl
from kernelkit.models import create_model, list_models
from kernelkit.models.mixnet import MIXNET_M, load_timm_state_dict, round_width, scale_depths, scale_spec
from kernelkit.utils.counting import count_macs, count_params

REF = json.loads((Path(__file__).parent / "test_mixnet_timm_reference.json").read_text())
TF_REF = json.loads((Path(__file__).parent / "test_tf_mixnet_timm_reference.json").read_text())
MODELS = ["mixnet_s", "mixnet_m", "mixnet_l", "mixnet_xl"]
TF_MODELS = ["tf_mixnet_s", "tf_mixnet_m", "tf_mixnet_l"]

# spec §4 (exact, agreeing with an independent calculator, timm and osmr/imgclsmob)
SPEC_PARAMS = {"mixnet_s": (4_134_606, 2_597_606, 4_166_798), "mixnet_m": (5_014_382, 3_477_382, 5_056_094)}


def test_registered() -> None:
    assert set(MODELS) <= set(list_models("mixnet_*"))
    assert set(TF_MODELS) <= set(list_models("tf_mixnet_*"))


@pytest.mark.parametrize("name", ["mixnet_s", "mixnet_m"])
def test_param_counts_equal_spec(name: str) -> None:
    total, headless, with_stats = SPEC_PARAMS[name]
    m = create_model(name)
    assert count_params(m) == total
    assert count_params(create_model(name, num_classes=0)) == headless
    stats = sum(b.numel() for n, b in m.named_buffers() if "running" in n)
    assert count_params(m) + stats == with_stats


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_names_and_shapes_equal_timm(name: str) -> None:
    ref = REF["models"][name]
    m = create_model(name)
    assert count_params(m) == ref["params"]
    assert count_params(create_model(name, num_classes=0)) == ref["params_num_classes_0"]
    shapes = {k: list(v.shape) for k, v in m.state_dict().items()}
    assert shapes == ref["state_dict_shapes"]
    # a state dict with timm's names and shapes loads strictly
    sd = {k: torch.full(s, 0.5) if k.endswith(("weight", "bias", "running_mean", "running_var")) else torch.tensor(3)
          for k, s in ref["state_dict_shapes"].items()}
    load_timm_state_dict(m, {"module." + k: v for k, v in sd.items()})
    assert torch.equal(m.conv_stem.weight, torch.full_like(m.conv_stem.weight, 0.5))
    assert [len(stage) for stage in m.blocks] == ref["blocks_per_stage"]
    assert [(f["num_chs"], f["reduction"], f["module"]) for f in m.feature_info] == [
        (f["num_chs"], f["reduction"], f["module"]) for f in ref["feature_info"]]


def test_paper_and_timm_param_counts_for_l_and_xl() -> None:
    # spec: L ≈ 7.33M (paper 7.3M), XL ≈ 11.9M; exact values from the timm reference run
    assert count_params(create_model("mixnet_l")) == REF["models"]["mixnet_l"]["params"] == 7_329_252
    assert count_params(create_model("mixnet_xl")) == REF["models"]["mixnet_xl"]["params"] == 11_896_768


def test_width_and_depth_rules() -> None:
    assert [round_width(c, 1.3) for c in (24, 32, 40, 80, 120, 200)] == [32, 40, 56, 104, 160, 264]  # spec §2
    spec_l = scale_spec(MIXNET_M, width=1.3)
    assert spec_l.stem == 32 and spec_l.head == 1536
    assert [s[-1].out for s in spec_l.stages] == [32, 40, 56, 104, 160, 264]
    assert round_width(3, 1.3) == 8  # never below the divisor
    assert round_width(10, 1.0) == 10
    # XL: depth 1.2 with round truncation → 1, 2, 5, 5, 5, 5 blocks (23)
    assert [sum(scale_depths([b.repeats for b in s], 1.2)) for s in MIXNET_M.stages] == [1, 2, 5, 5, 5, 5]
    assert scale_depths([1, 3], 1.2) == [1, 4]


def closed_form_macs(name: str, size: int = 224) -> int:
    """Conv + linear MACs summed from the block tables by hand: out_pixels x weights per output pixel."""
    m = create_model(name)
    from kernelkit.models.mixnet import MixNet

    assert isinstance(m, MixNet)
    spec = m.spec
    res = size // 2
    macs = res * res * 27 * spec.stem
    cin = spec.stem
    for stage in spec.stages:
        for b in stage:
            for r in range(b.repeats):
                s = b.stride if r == 0 else 1
                mid = cin * b.expansion
                if b.kind == "ir":
                    macs += res * res * cin * mid // b.expand_groups  # grouped 1x1 expand
                out_res = res // s
                g = len(b.kernels)
                base = mid // g
                chans = [base + (mid - base * g if i == 0 else 0) for i in range(g)]
                macs += out_res * out_res * sum(c * k * k for c, k in zip(chans, b.kernels, strict=True))
                if b.se:
                    rd = max(1, int(cin * b.se))
                    macs += 2 * mid * rd
                macs += out_res * out_res * mid * b.out // b.project_groups
                res, cin = out_res, b.out
    macs += res * res * cin * spec.head + spec.head * 1000
    return macs


@pytest.mark.parametrize("name", MODELS)
def test_macs_at_224(name: str) -> None:
    m = create_model(name)
    with use_impl("split"):  # the nominal arithmetic (padded paths also multiply the zero taps)
        macs = count_macs(m, (1, 3, 224, 224))
    assert macs == REF["models"][name]["macs_224"] == closed_form_macs(name)
    # the paper's MAdds (256M / 360M / 565M) are 2-7% higher: elementwise work is not counted here
    paper = {"mixnet_s": 256e6, "mixnet_m": 360e6, "mixnet_l": 565e6}.get(name)
    if paper:
        assert 0.9 < macs / paper < 1.0


def deterministic_fill(model: torch.nn.Module) -> None:
    """The fill rule used for the reference logits (see ``deterministic_fill_doc`` in the JSON)."""
    sd = model.state_dict()
    for i, k in enumerate(sorted(sd)):
        t = sd[k]
        if not t.is_floating_point():
            continue
        v = torch.sin(torch.arange(t.numel(), dtype=torch.float64) * 0.7311 + i * 1.37)
        if k.endswith("running_var"):
            v = 1.0 + 0.5 * v
        elif k.endswith(("running_mean", "bias")):
            v = 0.1 * v
        elif k.endswith(("bn1.weight", "bn2.weight", "bn3.weight")):
            v = 1.0 + 0.2 * v
        else:
            v = v * math.sqrt(3.0 / (t[0].numel() if t.dim() > 1 else 1))
        t.copy_(v.view_as(t))


@pytest.mark.parametrize("name", ["mixnet_s", "mixnet_xl"])  # M and L share XL's layout (keys/shapes above)
def test_logits_equal_timm_with_same_weights(name: str) -> None:
    m = create_model(name).double().eval()
    with torch.no_grad(), use_impl("padded"):  # timm runs split-concat; check the fast path against it
        deterministic_fill(m)
        x = torch.cos(torch.arange(2 * 3 * 64 * 64, dtype=torch.float64) * 0.013).view(2, 3, 64, 64)
        y = m(x)
    ref = REF["models"][name]
    torch.testing.assert_close(y[:, :16], torch.tensor(ref["deterministic_logits_first16"], dtype=torch.float64),
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y.sum(1), torch.tensor(ref["deterministic_logits_sum"], dtype=torch.float64),
                               rtol=1e-9, atol=1e-8)


@use_impl("split")
def test_headless_features_only_and_in_chans() -> None:
    x = torch.randn(2, 1, 64, 64)
    m = create_model("mixnet_s", num_classes=0, in_chans=1).eval()
    assert m.num_features == 1536
    with torch.no_grad():
        assert m(x).shape == (2, 1536)
    f = create_model("mixnet_s", features_only=True, in_chans=1).eval()
    assert not hasattr(f, "classifier") and not hasattr(f, "conv_head")
    with torch.no_grad():
        feats = f(x)
    assert [t.shape[1] for t in feats] == [16, 24, 40, 120, 200]
    assert [64 // t.shape[-1] for t in feats] == [2, 4, 8, 16, 32]
    c = create_model("mixnet_m", num_classes=7).eval()
    with torch.no_grad():
        assert c(torch.randn(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize("impl", ["padded", "padded_cl"])  # every path in float64: tests/convnets/test_mixconv.py
def test_network_gradients_equal_split_concat(impl: str) -> None:
    """Whole-network gradients through a fast path equal those of split-concat (eval-mode BN: batch
    statistics of a 1x1 map with batch 2 would amplify float32 rounding)."""
    torch.manual_seed(0)
    m = create_model("mixnet_s", num_classes=3, drop_rate=0.0).eval()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    grads = {}
    for mode in ("split", impl):
        m.zero_grad()
        with use_impl(mode):
            torch.nn.functional.cross_entropy(m(x), y).backward()
        grads[mode] = {n: p.grad.clone() for n, p in m.named_parameters()}
    for n, g in grads["split"].items():
        torch.testing.assert_close(grads[impl][n], g, rtol=1e-3, atol=1e-5, msg=n)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_model("mixnet_s", num_classes=-1)
    with pytest.raises(TypeError, match="does not accept"):
        create_model("mixnet_s", not_an_option=True)


@pytest.mark.parametrize("name", TF_MODELS)
def test_tf_mixnet_names_shapes_eps_and_features_equal_timm(name: str) -> None:
    ref = TF_REF["models"][name]
    m = create_model(name)
    assert count_params(m) == ref["params"]
    assert count_params(create_model(name, num_classes=0)) == ref["params_num_classes_0"]
    assert {k: list(v.shape) for k, v in m.state_dict().items()} == ref["state_dict_shapes"]
    assert sorted({b.eps for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)}) == ref["bn_eps"] == [1e-3]
    assert [len(stage) for stage in m.blocks] == ref["blocks_per_stage"]
    f = create_model(name, features_only=True)
    assert [(d["num_chs"], d["reduction"], d["module"]) for d in f.feature_info] == [
        (d["num_chs"], d["reduction"], d["module"]) for d in ref["feature_info"]]
    # the plain port shares the names and shapes: only padding and eps differ
    plain = create_model(name.removeprefix("tf_"))
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}


def _det_input(size: int) -> torch.Tensor:
    return torch.cos(torch.arange(2 * 3 * size * size, dtype=torch.float64) * 0.013).view(2, 3, size, size)


@pytest.mark.parametrize("name,size,impl", [("tf_mixnet_s", 224, "padded"), ("tf_mixnet_s", 225, "split"),
                                            ("tf_mixnet_m", 64, "split"), ("tf_mixnet_l", 64, "padded"),
                                            ("tf_mixnet_l", 65, "split")])
def test_tf_mixnet_logits_equal_timm_with_same_weights(name: str, size: int, impl: str) -> None:
    ref = TF_REF["models"][name]
    m = create_model(name).double().eval()
    with torch.no_grad(), use_impl(impl):
        deterministic_fill(m)
        y = m(_det_input(size))
    if f"logits_{size}" in ref:
        torch.testing.assert_close(y, torch.tensor(ref[f"logits_{size}"], dtype=torch.float64), rtol=1e-9, atol=1e-9)
    else:
        torch.testing.assert_close(y[:, :16], torch.tensor(ref[f"logits_{size}_first16"], dtype=torch.float64),
                                   rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(y.sum(1), torch.tensor(ref[f"logits_{size}_sum"], dtype=torch.float64),
                                   rtol=1e-9, atol=1e-8)
    if size % 2 == 0:  # the symmetric-padding twin with the same weights and eps gives other logits here
        plain = create_model(name.removeprefix("tf_")).double().eval()
        plain.load_state_dict(m.state_dict())
        for b in plain.modules():
            if isinstance(b, torch.nn.BatchNorm2d):
                b.eps = 1e-3
        with torch.no_grad(), use_impl(impl):
            assert (plain(_det_input(size)) - y).abs().max() > 1e-3
