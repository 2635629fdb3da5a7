"""The layers with the PyTorch toolchain, fast paths on: torch.compile, torch.export, ONNX, autocast,
FlopCounterMode, the meta device and deterministic algorithms, each against the eager outputs.

Shapes are tiny (compiling is the slow part); ``torch.compile`` runs once per case.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kernelkit.layers.depthwise import depthwise_conv2d
from kernelkit.layers.mixconv import MixConv2d
from kernelkit.layers.reparam import DilatedReparamBlock, randomize_for_reparam_check

OP = torch.ops.kernelkit.depthwise_conv2d
FAST = ("direct_grouped", "dft", "fft", "direct_dft", "subgrid")  # every strategy but plain F.conv2d


class Depthwise(nn.Module):
    """``depthwise_conv2d`` with its own weight and bias, 'same' padding, one strategy."""

    def __init__(self, channels: int, k: int, strategy: str, dilation: int = 1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(channels, 1, k, k, generator=g) / k)
        self.bias = nn.Parameter(torch.randn(channels, generator=g) / 4)
        self.strategy, self.dilation = strategy, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.weight, self.bias, 1, "same", self.dilation, strategy=self.strategy)


def _drb(deploy: bool) -> nn.Module:
    torch.manual_seed(0)
    block = randomize_for_reparam_check(DilatedReparamBlock(4, 17)).eval()  # K=17: the fast path takes it
    if deploy:
        block.reparameterize()
    return block


def _mixconv(impl: str, depthwise: bool = True) -> nn.Module:
    torch.manual_seed(0)
    kernels = (3, 5, 7, 9) if depthwise else (3, 3)
    return MixConv2d(8, kernel_sizes=kernels, depthwise=depthwise, bias=True, impl=impl)  # type: ignore[arg-type]


# name -> (module builder, input shape); 1x4x32x32 is large enough for the fixed rule to leave F.conv2d
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "dw-k3-auto": (lambda: Depthwise(4, 3, "auto"), (1, 4, 32, 32)),
    "dw-k13-auto": (lambda: Depthwise(4, 13, "auto"), (1, 4, 32, 32)),
    "dw-k31-auto": (lambda: Depthwise(4, 31, "auto"), (1, 4, 32, 32)),
    "dw-k13-dft": (lambda: Depthwise(4, 13, "dft"), (2, 4, 12, 12)),
    "dw-k31-fft": (lambda: Depthwise(4, 31, "fft"), (2, 4, 12, 12)),
    "dw-k13-direct_dft": (lambda: Depthwise(4, 13, "direct_dft"), (2, 4, 12, 12)),
    "dw-k3-direct_grouped": (lambda: Depthwise(4, 3, "direct_grouped"), (2, 4, 12, 12)),
    "dw-k3d3-subgrid": (lambda: Depthwise(4, 3, "subgrid", dilation=3), (2, 4, 12, 12)),
    "drb-train": (lambda: _drb(False), (1, 4, 32, 32)),
    "drb-deploy": (lambda: _drb(True), (1, 4, 32, 32)),
    "mixconv-auto": (lambda: _mixconv("auto"), (2, 8, 12, 12)),
    "mixconv-depthwise": (lambda: _mixconv("depthwise"), (2, 8, 12, 12)),
    "mixconv-split_cl": (lambda: _mixconv("split_cl"), (2, 8, 12, 12)),
    "mixconv-padded_cl": (lambda: _mixconv("padded_cl"), (2, 8, 12, 12)),
    "mixconv-grouped": (lambda: _mixconv("grouped", depthwise=False), (2, 8, 12, 12)),
}
# torch.compile costs seconds per case on two cores: these run by default, the rest are marked slow
COMPILE_FAST = ("dw-k13-dft", "dw-k3d3-subgrid", "drb-deploy", "mixconv-auto")
TRAIN_FAST = ("dw-k31-fft", "drb-train")


def _cases(fast: tuple[str, ...] | None = None) -> list:
    return [pytest.param(n, marks=() if fast is None or n in fast else pytest.mark.slow) for n in CASES]


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    make, shape = CASES[name]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    return make(), x


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().float(), want.detach().float()
    return float((got - want).abs().max() / want.abs().max())


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _grads(module: nn.Module, x: torch.Tensor, gy: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]
           ) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    params = [p for p in module.parameters() if p.requires_grad]
    y = run(x)
    return [y.detach(), *torch.autograd.grad(y, [x, *params], gy)]


# ---- torch.compile -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases(COMPILE_FAST))
def test_compile_fullgraph_no_grad_matches_eager(name: str, fresh_dynamo: None) -> None:
    module, x = _build(name)
    module.eval()
    with torch.no_grad():
        want = module(x)
        got = torch.compile(module, fullgraph=True)(x)
    assert _rel(got, want) < 1e-5


@pytest.mark.parametrize("name", _cases(TRAIN_FAST))
def test_compile_fullgraph_training_gradients_match_eager(name: str, fresh_dynamo: None) -> None:
    module, x = _build(name)
    module.train()
    twin = copy.deepcopy(module)  # training-mode BN updates its statistics: one copy per run
    gy = torch.randn(module(x).shape, generator=torch.Generator().manual_seed(2))
    want = _grads(module, x, gy, module)
    got = _grads(twin, x, gy, torch.compile(twin, fullgraph=True))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert _rel(g, w) < 1e-5, f"output/gradient {i}"


# ---- torch.export and ONNX -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_export_gives_a_standard_conv_graph_and_the_eager_outputs(name: str) -> None:
    module, x = _build(name)
    module.eval()
    with torch.no_grad():
        want = module(x)
    program = torch.export.export(module, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any(t.startswith("kernelkit.") for t in targets), targets
    assert any("conv" in t for t in targets), targets
    with torch.no_grad():
        assert _rel(program.module()(x), want) < 1e-5


ONNX_FAST = ("dw-k13-dft", "drb-deploy", "mixconv-auto")


@pytest.mark.parametrize("name", _cases(ONNX_FAST))
def test_onnx_export_runs_in_onnxruntime(name: str) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    module, x = _build(name)
    module.eval()
    with torch.no_grad():
        want = module(x)
    program = torch.onnx.export(module, (x,), dynamo=True, verbose=False)
    assert program is not None
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert "Conv" in ops, ops
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert _rel(torch.from_numpy(got), want) < 1e-5


# ---- autocast ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_cpu_autocast_bfloat16_runs_close_to_float32(name: str, grad: bool) -> None:
    module, x = _build(name)
    module.eval()
    with torch.set_grad_enabled(grad):
        want = module(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = module(x)
    assert got.dtype == torch.bfloat16
    assert _rel(got, want) < 3e-2


@pytest.mark.parametrize("strategy", ["auto", *FAST])
def test_cpu_autocast_bfloat16_input_with_float32_weight(strategy: str) -> None:
    """Inside a bf16 network the conv gets a bf16 input and float32 parameters: autocast decides, as for F.conv2d."""
    module = Depthwise(4, 31, strategy)
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    want = module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = module(x.bfloat16())
    assert got.dtype == torch.bfloat16
    assert _rel(got, want) < 3e-2


# ---- FLOP counting -------------------------------------------------------------------------------


def _conv_flops(n: int, c: int, h: int, w: int, k: int) -> int:
    return 2 * n * c * h * w * k * k  # 'same' padding, stride 1: H_out = H


@pytest.mark.parametrize("k", [3, 13, 31])
@pytest.mark.parametrize("strategy", ["direct", *FAST])
def test_flop_counter_counts_the_conv_whatever_strategy(k: int, strategy: str) -> None:
    n, c, h, w = 2, 4, 12, 10
    g = torch.Generator().manual_seed(k)
    x = torch.randn(n, c, h, w, generator=g, requires_grad=True)
    weight = torch.randn(c, 1, k, k, generator=g, requires_grad=True)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        depthwise_conv2d(x, weight, strategy=strategy)
    assert counter.get_total_flops() == _conv_flops(n, c, h, w, k)
    if strategy == "direct":  # torch's own formula counts the grouped weight gradient C times (not ours to fix)
        return
    with FlopCounterMode(display=False) as counter:
        depthwise_conv2d(x, weight, strategy=strategy).sum().backward()
    counts = counter.get_flop_counts()["Global"]
    assert counts[OP] == _conv_flops(n, c, h, w, k)  # the fast path ran, as the registered op
    assert counter.get_total_flops() == 3 * _conv_flops(n, c, h, w, k)  # backward: input + weight gradient


def test_flop_counter_blocks_count_their_convs() -> None:
    x = torch.randn(1, 4, 32, 32)
    block = _drb(False)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        block(x)
    branch_taps = 17 * 17 + sum(k * k for k in block.kernel_sizes)
    assert counter.get_total_flops() == 2 * 4 * 32 * 32 * branch_taps
    assert OP in counter.get_flop_counts()["Global"]  # the K=17 conv went through the fast path
    mix, xm = _mixconv("auto"), torch.randn(2, 8, 12, 12)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        mix(xm)
    assert counter.get_total_flops() == 2 * 2 * 12 * 12 * 2 * sum(k * k for k in (3, 5, 7, 9))


# ---- meta device and deterministic algorithms ----------------------------------------------------


def test_construction_and_forward_on_the_meta_device() -> None:
    with torch.device("meta"):
        blocks = [(DilatedReparamBlock(4, 13), 4), (DilatedReparamBlock(4, 13, deploy=True), 4),
                  (MixConv2d(8, kernel_sizes=(3, 5, 7, 9)), 8),
                  (MixConv2d(8, kernel_sizes=(3, 5, 7, 9), impl="depthwise"), 8)]
    for block, channels in blocks:
        assert all(p.is_meta for p in block.parameters())
        x = torch.empty(2, channels, 16, 16, device="meta")
        y = block(x)
        assert y.is_meta and y.shape == x.shape
    x, w = torch.empty(2, 4, 16, 16, device="meta"), torch.empty(4, 1, 13, 13, device="meta")
    for strategy in FAST:
        assert depthwise_conv2d(x, w, strategy=strategy).shape == x.shape


@pytest.fixture
def deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("name", list(CASES))
def test_deterministic_algorithms(name: str, deterministic: None) -> None:
    module, x = _build(name)
    module.train()
    gy = torch.randn(module(x).shape, generator=torch.Generator().manual_seed(2))
    first, second = copy.deepcopy(module), copy.deepcopy(module)
    for a, b in zip(_grads(first, x, gy, first), _grads(second, x, gy, second), strict=True):
        assert torch.equal(a, b)


# ---- CUDA ----------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make gpu-check)")
@pytest.mark.parametrize("strategy", FAST)
def test_cuda_takes_cudnn_whatever_strategy(strategy: str) -> None:
    x = torch.randn(2, 4, 16, 16, device="cuda")
    w = torch.randn(4, 1, 13, 13, device="cuda")
    with FlopCounterMode(display=False) as counter:
        y = depthwise_conv2d(x, w, strategy=strategy)
    assert OP not in counter.get_flop_counts()["Global"]  # F.conv2d, never the CPU op
    torch.testing.assert_close(y, F.conv2d(x, w, None, 1, 6, 1, 4), rtol=1e-4, atol=1e-4)
