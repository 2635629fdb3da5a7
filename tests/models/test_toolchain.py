"""The models with every fast path on, through the PyTorch toolchain (CPU).

``unireplknet_a`` (training and deploy form) and ``mixnet_s``: ``torch.compile`` (deploy form with
``fullgraph=True``) against eager, ``torch.export`` and the ONNX exporter (run back in ONNX Runtime), CPU
autocast in bfloat16 against float32, FLOP counting (``count_macs`` and a bare ``FlopCounterMode``) against the
plain-ops count on the meta device and the published figures, meta-device construction and deterministic mode.
Small inputs keep compile and export quick; the FLOP counts run at 224².
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernelkit.layers.reparam import randomize_for_reparam_check
from kernelkit.models import create_model, reparameterize
from kernelkit.models.export import max_rel_diff
from kernelkit.utils.counting import count_macs


def _unireplknet_a(deploy: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomize_for_reparam_check(create_model("unireplknet_a"), seed=0).eval()
    return reparameterize(model) if deploy else model


def _model(name: str) -> torch.nn.Module:
    if name == "unireplknet_a_deploy":
        return _unireplknet_a(deploy=True)
    if name == "unireplknet_a":
        return _unireplknet_a(deploy=False)
    torch.manual_seed(0)
    return create_model(name).eval()


def _input(batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_compiled_deploy_form_fullgraph_equals_eager() -> None:
    model, x = _unireplknet_a(deploy=True), _input()
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, fullgraph=True)(x)
    assert max_rel_diff(got, want) < 1e-5


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_training_form_gradients_equal_eager(backend: str) -> None:
    """One graph for forward and backward (AOTAutograd); Inductor's code generation for it takes minutes."""
    eager = _unireplknet_a(deploy=False).train()
    compiled_model = copy.deepcopy(eager)
    x = _input()
    eager(x).square().mean().backward()
    out = torch.compile(compiled_model, fullgraph=True, backend=backend)(x)
    out.square().mean().backward()
    grads = {n: p.grad for n, p in eager.named_parameters() if p.grad is not None}
    assert len(grads) == sum(1 for p in eager.parameters() if p.requires_grad)
    scale = max(g.abs().max().item() for g in grads.values())
    for name, p in compiled_model.named_parameters():
        assert p.grad is not None, name
        assert (p.grad - grads[name]).abs().max().item() <= 1e-4 * scale, name
    torch.testing.assert_close(compiled_model.state_dict(), eager.state_dict())  # BN statistics moved alike


@pytest.mark.parametrize("name", ["unireplknet_a_deploy", "mixnet_s"])
def test_torch_export_and_onnx_reproduce_eager(name: str) -> None:
    model, x = _model(name), _input()
    with torch.no_grad():
        want = model(x)
    ep = torch.export.export(model, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("kernelkit" in t or "mkldnn" in t for t in targets), sorted(targets)
    with torch.no_grad():
        assert max_rel_diff(ep.module()(x), want) < 1e-5
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    assert program is not None
    buf = io.BytesIO()
    program.save(buf)  # type: ignore[arg-type]
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert max_rel_diff(torch.from_numpy(got), want) < 1e-5


@pytest.mark.parametrize("name", ["unireplknet_a", "unireplknet_a_deploy", "mixnet_s"])
def test_cpu_autocast_bfloat16_close_to_float32(name: str) -> None:
    model, x = _model(name), _input(size=96)
    with torch.no_grad():
        want = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x)
    assert got.dtype == torch.bfloat16
    assert max_rel_diff(got.float(), want) < 3e-2


def _bare_count(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _plain_count(name: str, x: torch.Tensor, **kwargs: object) -> int:
    """MACs of the plain ops: on the meta device no fast path runs."""
    with torch.device("meta"):
        model = create_model(name, **kwargs).eval()
        macs = count_macs(model, inputs=x.to("meta"))
    assert isinstance(macs, int)
    return macs


@pytest.mark.parametrize("deploy", [True, False])
def test_unireplknet_t_macs_with_every_fast_path_on(deploy: bool) -> None:
    model = create_model("unireplknet_t", deploy=deploy).eval()
    x = torch.zeros(1, 3, 224, 224)
    macs = count_macs(model, inputs=x)
    assert macs == _bare_count(model, x) == _plain_count("unireplknet_t", x, deploy=deploy)
    if deploy:  # the published 4.9 G ([P] Table 5): the deploy form's convolutions and linear layers
        assert round(macs / 1e9, 3) == 4.899


def test_mixnet_s_macs_with_every_fast_path_on() -> None:
    model, x = create_model("mixnet_s").eval(), torch.zeros(1, 3, 224, 224)
    macs = count_macs(model, inputs=x)
    assert macs == _bare_count(model, x) == _plain_count("mixnet_s", x) == 239_173_360


@pytest.mark.parametrize("name", ["unireplknet_a", "unireplknet_a_deploy", "mixnet_s"])
def test_meta_device_construction_and_forward(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name.removesuffix("_deploy"), deploy=name.endswith("_deploy")) \
            if name.startswith("unireplknet") else create_model(name)
        out = model.eval()(torch.empty(2, 3, 64, 64))
    assert out.device.type == "meta" and out.shape == (2, 1000)


@pytest.mark.parametrize("name", ["unireplknet_a", "unireplknet_a_deploy", "mixnet_s"])
def test_deterministic_algorithms_forward(name: str) -> None:
    model, x = _model(name), _input()
    before = torch.are_deterministic_algorithms_enabled()
    with torch.no_grad():
        want = model(x)
        torch.use_deterministic_algorithms(True)
        try:
            got = model(x)
        finally:
            torch.use_deterministic_algorithms(before)
    assert max_rel_diff(got, want) < 1e-5
