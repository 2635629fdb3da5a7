"""UniRepLKNet against the official implementation: counts, names, outputs, re-parameterization.

Reference numbers were produced by running the official ``unireplknet.py`` (github.com/AILab-CVC/UniRepLKNet
at b5677d8) in a throwaway environment with tiny stand-ins for its timm imports (``trunc_normal_``,
``DropPath``, ``to_2tuple``, ``register_model``) and ``attempt_use_lk_impl=False``:

* ``OFFICIAL_PARAMS``: ``sum(p.numel() for p in model.parameters())`` of ``unireplknet_<v>(deploy=...)``.
* ``data/unireplknet_official_keys.json``: ``[name, shape]`` of every state-dict entry of A and T in
  both forms, in the official order.
* ``data/unireplknet_official_tiny.safetensors``: official models with dims (4, 8, 16, 32), 10 classes,
  the A/F/P layout (2, 2, 6, 2) and the T layout (3, 3, 18, 3), with random parameters and BN
  statistics (seeded); their training-form state dicts, the official input (2×3×96×96), the eval-mode
  output, and the state dict and output after the official ``reparameterize_unireplknet()``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kernelkit.layers.reparam import randomize_for_reparam_check, use_fast_depthwise
from kernelkit.models import create_model, list_models, reparameterize
from kernelkit.models.unireplknet import GRN, UniRepLKNet, UniRepLKNetBlock
from kernelkit.utils.counting import count_macs, count_params

DATA = Path(__file__).parent / "data"
VARIANTS = ["a", "f", "p", "n", "t", "s", "b", "l", "xl"]

OFFICIAL_PARAMS = {  # variant: (training form, deploy form), from the official code (see module docstring)
    "a": (4_649_060, 4_437_300), "f": (6_489_328, 6_235_216), "p": (11_080_520, 10_741_704),
    "n": (18_818_880, 18_318_560), "t": (31_693_420, 31_037_980), "s": (56_456_704, 55_645_984),
    "b": (99_089_416, 98_008_456), "l": (220_076_056, 218_454_616), "xl": (388_690_984, 386_529_064),
}

# [P] Table 5 (TPAMI, arXiv 2410.08049): params (M) and FLOPs (G, i.e. multiply-accumulates) exactly as printed.
PUBLISHED = {
    ("a", 224): ("4.4", "0.6"), ("f", 224): ("6.2", "0.9"), ("p", 224): ("10.7", "1.6"), ("n", 224): ("18.3", "2.8"),
    ("t", 224): ("31", "4.9"), ("s", 224): ("56", "9.1"), ("s", 384): ("56", "26.7"), ("b", 384): ("98", "47.2"),
    ("l", 384): ("218", "105.4"), ("xl", 384): ("386", "187"),
}


def _rounds_to(value: float, printed: str) -> bool:
    """``value`` rounds to the printed figure (half a unit of its last digit)."""
    return abs(value - float(printed)) <= 0.5 * 10**-_decimals(printed) + 1e-9


def _decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def test_all_variants_registered() -> None:
    assert sorted(list_models("unireplknet_*")) == sorted(f"unireplknet_{v}" for v in VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_param_counts_equal_official(variant: str) -> None:
    with torch.device("meta"):
        train = create_model(f"unireplknet_{variant}")
        deploy = create_model(f"unireplknet_{variant}", deploy=True)
    assert (count_params(train), count_params(deploy)) == OFFICIAL_PARAMS[variant]


@pytest.mark.parametrize("variant,res", sorted(PUBLISHED))
def test_macs_and_params_match_published_table(variant: str, res: int) -> None:
    params_m, gmacs = PUBLISHED[(variant, res)]
    with torch.device("meta"):
        model = create_model(f"unireplknet_{variant}", deploy=True)
        macs = count_macs(model, inputs=torch.zeros(1, 3, res, res))
    assert _rounds_to(macs / 1e9, gmacs), macs
    # Params: the official code gives 386.53M for XL where the table prints 386 (Table 4: 386.4; B and L
    # are likewise ~0.1M lower there); exact counts are checked against the code above, so allow 0.2%.
    tol = max(0.5 * 10**-_decimals(params_m), 0.002 * float(params_m))
    assert abs(count_params(model) / 1e6 - float(params_m)) <= tol


@pytest.mark.parametrize("variant", ["a", "t"])
@pytest.mark.parametrize("form", ["train", "deploy"])
def test_state_dict_names_and_shapes_equal_official(variant: str, form: str) -> None:
    official = json.loads((DATA / "unireplknet_official_keys.json").read_text())[f"{variant}/{form}"]
    with torch.device("meta"):
        model = create_model(f"unireplknet_{variant}", deploy=form == "deploy")
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == official


def _official_tiny(layout: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    prefix = f"{layout}."
    return {k[len(prefix):]: v for k, v in load_file(DATA / "unireplknet_official_tiny.safetensors").items()
            if k.startswith(prefix)}


def _sub(tensors: dict[str, torch.Tensor], form: str) -> dict[str, torch.Tensor]:
    return {k[len(form) + 1:]: v for k, v in tensors.items() if k.startswith(form + ".")}


@pytest.mark.parametrize("layout,depths", [("a_layout", (2, 2, 6, 2)), ("t_layout", (3, 3, 18, 3))])
def test_official_checkpoint_loads_strict_and_gives_official_outputs(layout: str, depths: tuple) -> None:
    ref = _official_tiny(layout)
    x = ref["input"]
    model = UniRepLKNet(num_classes=10, depths=depths, dims=(4, 8, 16, 32))
    model.load_state_dict(_sub(ref, "train"), strict=True)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref["output_train"], rtol=1e-5, atol=1e-5)
        # our re-parameterization gives the official deploy weights and outputs
        reparameterize(model)
        ours = model.state_dict()
        official = _sub(ref, "deploy")
        assert sorted(ours) == sorted(official)
        for k in official:
            torch.testing.assert_close(ours[k], official[k], rtol=1e-5, atol=1e-6, msg=k)
        torch.testing.assert_close(model(x), ref["output_deploy"], rtol=1e-5, atol=1e-5)
        # an official deploy checkpoint loads into a deploy-built model
        deploy = UniRepLKNet(num_classes=10, depths=depths, dims=(4, 8, 16, 32), deploy=True).eval()
        deploy.load_state_dict(official, strict=True)
        torch.testing.assert_close(deploy(x), ref["output_deploy"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant,res", [("a", 64), ("f", 64), ("p", 64)])
def test_reparameterize_whole_model_equivalent(variant: str, res: int) -> None:
    torch.manual_seed(0)
    model = randomize_for_reparam_check(create_model(f"unireplknet_{variant}", num_classes=10), seed=1).eval()
    x = torch.randn(2, 3, res, res)
    with torch.no_grad():
        want = model(x)
        reparameterize(model)
        reparameterize(model)  # idempotent
        got = model(x)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel < 1e-5, rel
    names = [n for n, _ in model.named_parameters()]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(n.endswith("beta") for n in names)
    assert not any(isinstance(m, UniRepLKNetBlock) and m.gamma is not None for m in model.modules())
    assert all(m.beta is None for m in model.modules() if isinstance(m, GRN))
    assert count_params(model) == count_params(create_model(f"unireplknet_{variant}", num_classes=10, deploy=True))


def test_smak_block_and_layer_scale_off_reparameterize() -> None:
    torch.manual_seed(0)
    for k in (3, 5, 0):
        block = randomize_for_reparam_check(UniRepLKNetBlock(8, k, layer_scale_init_value=0), seed=k).eval()
        x = torch.randn(2, 8, 12, 12)
        with torch.no_grad():
            want = block(x)
            block.reparameterize()
            torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)


def test_features_only_and_pooled_features() -> None:
    x = torch.randn(1, 3, 32, 64)
    feats = create_model("unireplknet_a", features_only=True).eval()(x)
    assert [tuple(f.shape) for f in feats] == [(1, 40, 8, 16), (1, 80, 4, 8), (1, 160, 2, 4), (1, 320, 1, 2)]
    model = create_model("unireplknet_a", num_classes=0)
    assert model.num_features == 320
    assert model.eval()(x).shape == (1, 320)
    assert "head.weight" not in model.state_dict()
    one = create_model("unireplknet_a", in_chans=1, num_classes=7).eval()
    assert one(torch.randn(2, 1, 32, 48)).shape == (2, 7)


def test_fast_depthwise_switch_gives_same_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("unireplknet_a", num_classes=5, deploy=True).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        with use_fast_depthwise(True):
            a = model(x)
        with use_fast_depthwise(False):
            b = model(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_drop_path_rates_rise_linearly() -> None:
    model = create_model("unireplknet_a", drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "p", 0.0) for s in model.stages for b in s]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3) and len(rates) == 12
    assert all(b > a for a, b in zip(rates, rates[1:], strict=False))


def test_bad_inputs_raise_clear_errors() -> None:
    model = create_model("unireplknet_a", num_classes=3).eval()
    with pytest.raises(ValueError, match="in_chans=3 but the input has 1 channels"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="too small"):
        model(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(KeyError, match="unireplknet_a"):
        create_model("unireplknet_aa")
    with pytest.raises(ValueError, match="kernel sizes"):
        UniRepLKNet(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), kernel_sizes=((3,), (13,), (13, 13), (13,)))


def test_fused_deploy_inference_equals_plain_ops_and_training_form() -> None:
    from kernelkit.models.unireplknet import use_fused_inference
    from kernelkit.utils import onednn

    if not onednn.available():
        pytest.skip("oneDNN linear primitives unavailable: deploy blocks run in plain torch ops")
    torch.manual_seed(0)
    # batch 1: one sample per chunk (large maps); batch 5: several samples per chunk
    train = randomize_for_reparam_check(UniRepLKNet(num_classes=10, depths=(1, 1, 2, 1), dims=(8, 16, 32, 64)),
                                        seed=2).eval()
    deploy = reparameterize(copy.deepcopy(train))
    for batch, res in ((1, 160), (5, 96)):
        x = torch.randn(batch, 3, res, res)
        with torch.no_grad():
            want = train(x)
            fused = deploy(x)
            with use_fused_inference(False):
                plain = deploy(x)
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
        assert ((fused - want).abs().max() / want.abs().max()).item() < 1e-5
    # with gradients the plain (differentiable) path runs
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    deploy(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_fast_inference_follows_weight_changes_made_after_a_run() -> None:
    """The fused blocks' packed linear weights and the downsampling convs' channels-last kernels are cached
    copies; loading other weights (or changing them in place) after a run must give the new model's numbers."""
    from kernelkit.models.unireplknet import DownsampleConv2d
    from kernelkit.utils import derived_weights

    def _reference(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():  # parameters that need gradients: plain ops and the parameters themselves
            return m(x).detach()

    model = reparameterize(randomize_for_reparam_check(
        UniRepLKNet(num_classes=10, depths=(1, 1, 2, 1), dims=(8, 16, 32, 64)), seed=3).eval())
    other = reparameterize(randomize_for_reparam_check(
        UniRepLKNet(num_classes=10, depths=(1, 1, 2, 1), dims=(8, 16, 32, 64)), seed=4).eval())
    assert all(type(m.downsample_layers[i][0]) is DownsampleConv2d for m in (model,) for i in range(4))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        before = model(x)
        assert derived_weights.cached_bytes() > 0
        model.load_state_dict(other.state_dict())
        after = model(x)
        torch.testing.assert_close(after, _reference(other, x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(before, after)
        model.downsample_layers[1][0].weight.mul_(0.5)  # an in-place change of one conv kernel
        other.downsample_layers[1][0].weight.mul_(0.5)
        torch.testing.assert_close(model(x), _reference(other, x), rtol=1e-5, atol=1e-5)
    assert "downsample_layers.0.0.weight" in model.state_dict()  # nn.Conv2d's names


def test_variants_are_a_table_of_model_args() -> None:
    from kernelkit.models.unireplknet import UNIREPLKNET_VARIANTS, unireplknet

    assert sorted(UNIREPLKNET_VARIANTS) == list_models("unireplknet_*")
    for name, args in UNIREPLKNET_VARIANTS.items():
        with torch.device("meta"):
            built = create_model(name, num_classes=7, in_chans=1)
            direct = unireplknet(args["depths"], args["dims"], num_classes=7, in_chans=1)
        assert built.depths == args["depths"] and built.dims == args["dims"]
        assert [(k, v.shape) for k, v in built.state_dict().items()] == \
            [(k, v.shape) for k, v in direct.state_dict().items()]
    with pytest.raises(TypeError):
        create_model("unireplknet_a", depths=(1, 1, 1, 1))  # a variant's numbers are fixed


def test_fused_inference_is_a_constructor_argument() -> None:
    from kernelkit.models import unireplknet as module

    assert not hasattr(module, "set_fused_inference")  # no process-wide switch
    torch.manual_seed(0)
    fused = create_model("unireplknet_a", num_classes=4, deploy=True).eval()
    plain = create_model("unireplknet_a", num_classes=4, deploy=True, fused_inference=False).eval()
    plain.load_state_dict(fused.state_dict())
    assert all(not b.fused_inference for s in plain.stages for b in s)
    assert all(b.fused_inference for s in fused.stages for b in s)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), fused(x), rtol=1e-5, atol=1e-5)
    assert module._FUSED.enabled  # the context manager restores the setting
    with module.use_fused_inference(False):
        assert not module._fused_inference_ok(x, fused.stages[0][0])
    assert module._FUSED.enabled
