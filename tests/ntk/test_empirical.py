"""Empirical NTK methods vs a brute-force per-sample, per-output autograd Jacobian."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kernelkit.ntk import empirical
from kernelkit.ntk import nn as knn

METHODS = ["jacobian", "ntvp", "structured", "auto"]


def brute_force_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Full (N1, N2, O, O) NTK from one autograd.grad call per sample and output."""
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        rows = []
        for n in range(x.shape[0]):
            out = model(x[n:n + 1]).reshape(-1)
            for o in range(out.numel()):
                g = torch.autograd.grad(out[o], params, retain_graph=True, allow_unused=True)
                rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                       for gi, p in zip(g, params, strict=True)]))
        return torch.stack(rows).reshape(x.shape[0], -1, sum(p.numel() for p in params))

    j1, j2 = jac(x1), jac(x2)
    return torch.einsum("nap,mbp->nmab", j1, j2)


def _check(model, x1, x2, methods=METHODS, rel=1e-5):
    ref = brute_force_ntk(model, x1, x2)
    o = ref.shape[-1]
    scale = ref.abs().max()
    for method in methods:
        full = empirical(model, x1, x2, method=method, trace=None)
        assert full.shape == ref.shape
        assert (full - ref).abs().max() <= rel * scale, method
        mean = empirical(model, x1, x2, method=method)
        ref_mean = ref.diagonal(dim1=2, dim2=3).mean(-1)
        assert (mean - ref_mean).abs().max() <= rel * ref_mean.abs().max(), method
        summed = empirical(model, x1, x2, method=method, trace="sum", batch_size=2)
        assert (summed - o * ref_mean).abs().max() <= rel * o * ref_mean.abs().max(), method


def _data(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_mlp_torch_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    _check(model, _data(4, 5), _data(3, 5, seed=1))


def test_kernelkit_dense_with_frozen_and_tied_parameters():
    torch.manual_seed(1)
    model = knn.Sequential(knn.Dense(10, 1.3, 0.2), knn.Erf(), knn.Dense(7, bias_std=0.1), knn.ReLU(),
                           knn.Dense(2, parametrization="standard", bias_std=0.5)).double()
    x = _data(5, 4)
    model(x)
    model[0].bias.requires_grad_(False)
    _check(model, x, _data(3, 4, seed=2))

    class Tied(nn.Module):  # the same Linear used twice: the structured method must fall back
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 6)
            self.out = nn.Linear(6, 2)

        def forward(self, x):
            return self.out(torch.tanh(self.a(torch.tanh(self.a(x)))))

    _check(Tied().double(), _data(3, 6), _data(2, 6, seed=3))


def test_cnn():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.GELU(),
                          nn.Flatten(), nn.Linear(4 * 2 * 2, 3)).double()
    _check(model, _data(3, 2, 6, 6), _data(2, 2, 6, 6, seed=1))


def test_depthwise_batchnorm_block_eval():
    """A UniRepLKNet-style block: depthwise large-kernel conv + BN (eval, random statistics) + MLP."""
    torch.manual_seed(3)

    class Block(nn.Module):
        def __init__(self, c=4):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 5, padding=2, groups=c, bias=False)
            self.bn = nn.BatchNorm2d(c)
            self.pw1 = nn.Linear(c, 2 * c)
            self.pw2 = nn.Linear(2 * c, c)
            self.head = nn.Linear(c, 2)

        def forward(self, x):
            y = self.bn(self.dw(x)).permute(0, 2, 3, 1)
            y = self.pw2(torch.nn.functional.gelu(self.pw1(y))).permute(0, 3, 1, 2)
            return self.head((x + y).mean((2, 3)))

    block = Block().double()
    with torch.no_grad():
        block.bn.running_mean.normal_()
        block.bn.running_var.uniform_(0.5, 2.0)
        block.bn.weight.normal_()
    block.eval()
    _check(block, _data(3, 4, 7, 7), _data(2, 4, 7, 7, seed=1))
    block.train()
    with pytest.raises(ValueError, match="training mode"):
        empirical(block, _data(3, 4, 7, 7))


def test_dilated_reparam_block():
    reparam = pytest.importorskip("kernelkit.layers.reparam")
    torch.manual_seed(4)
    block = reparam.DilatedReparamBlock(3, 7)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    model = nn.Sequential(block, nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).double().eval()
    with reparam.use_fast_depthwise(False):
        _check(model, _data(2, 3, 8, 8), _data(2, 3, 8, 8, seed=1), methods=["jacobian", "structured"])


def test_symmetric_psd_and_defaults():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 4)).double()
    x = _data(6, 3)
    k = empirical(model, x)
    assert torch.allclose(k, k.T, atol=1e-12)
    assert torch.linalg.eigvalsh(k).min() > -1e-10
    torch.testing.assert_close(empirical(model, x, batch_size=4), k)


def test_errors():
    model = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="method"):
        empirical(model, torch.randn(2, 3), method="magic")
    with pytest.raises(ValueError, match="trace"):
        empirical(model, torch.randn(2, 3), trace="max")
    with pytest.raises(ValueError, match="NaN"):
        empirical(model, torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="mismatched"):
        empirical(model, torch.randn(2, 3), torch.randn(2, 4))


def test_layerwise_chain_convolutions_and_pooling():
    """The layer-wise structured route on kernelkit convolutions (all paddings, stride), torch convolutions
    (padding, dilation, stride) and global average pooling, with frozen parameters."""
    from kernelkit.ntk import layerwise

    torch.manual_seed(6)
    knet = knn.Sequential(knn.Conv2d(3, 3, padding="circular", bias_std=0.2), knn.ReLU(),
                          knn.Conv2d(4, 2, stride=2, padding="same", weight_std=1.3), knn.Erf(),
                          knn.Conv2d(2, 2, padding="valid", bias_std=0.1, parametrization="standard"), knn.Abs(),
                          knn.GlobalAvgPool(), knn.Dense(2, bias_std=0.3)).double()
    x1, x2 = _data(3, 2, 7, 7), _data(2, 2, 7, 7, seed=1)
    knet(x1)
    tnet = nn.Sequential(nn.Conv2d(2, 3, 3, padding=2, dilation=2), nn.Tanh(), nn.Conv2d(3, 2, 2, stride=2),
                         nn.Sequential(nn.SiLU(), nn.Flatten()), nn.Linear(2 * 3 * 3, 3)).double()
    tnet[0].bias.requires_grad_(False)
    for model in (knet, tnet):
        assert layerwise.chain_layers(model) is not None
        _check(model, x1, x2, methods=["structured", "auto"])


def test_layerwise_float32_and_fallback():
    from kernelkit.ntk import layerwise

    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 4))
    x1, x2 = torch.randn(5, 6), torch.randn(4, 6)
    ref = brute_force_ntk(model.double(), x1.double(), x2.double())
    model.float()
    full = empirical(model, x1, x2, method="structured", trace=None)
    assert full.dtype == torch.float32
    assert float((full.double() - ref).abs().max() / ref.abs().max()) < 1e-5
    # a Linear on a 3-D input is not a per-sample outer product: the chain route must step aside
    seq = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Flatten(), nn.Linear(10, 2)).double()
    assert layerwise.chain_layers(seq) is not None
    _check(seq, _data(3, 2, 3), _data(2, 2, 3, seed=1), methods=["structured", "auto"])


def test_layerwise_float32_convolutions():
    """float32 convolution chains take the channels-last cotangent path (strided and dilated convolutions,
    kernelkit padding, frozen bias); the kernel must still match a float64 brute force."""
    torch.manual_seed(8)
    tnet = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.Tanh(),
                         nn.Conv2d(5, 3, 3, padding=2, dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    tnet[2].bias.requires_grad_(False)
    knet = knn.Sequential(knn.Conv2d(4, 3, bias_std=0.2), knn.ReLU(), knn.Conv2d(3, 3, stride=2, padding="circular"),
                          knn.Erf(), knn.GlobalAvgPool(), knn.Dense(3))
    single = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2), nn.Flatten(),
                           nn.Linear(2 * 3 * 3, 1))  # one logit: grouped backward-weight convolutions
    x1, x2 = torch.randn(4, 3, 8, 8), torch.randn(3, 3, 8, 8)
    knet(x1)
    for model in (tnet, knet, single):
        ref = brute_force_ntk(model.double(), x1.double(), x2.double())
        model.float()
        for trace in (None, "sum"):
            got = empirical(model, x1, x2, method="structured", trace=trace).double()
            want = ref if trace is None else ref.diagonal(dim1=2, dim2=3).sum(-1)
            assert float((got - want).abs().max() / want.abs().max()) < 1e-5, trace


def test_layerwise_logit_chunks_sum_to_traced_kernel():
    """Traced kernels are accumulated over chunks of logits; one-logit chunks must add up to the brute force."""
    from kernelkit.ntk import layerwise

    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4)).double()
    x1, x2 = _data(3, 2, 5, 5), _data(2, 2, 5, 5, seed=1)
    chain = layerwise.chain_layers(model)
    assert chain is not None
    chunks = layerwise.logit_chunks(chain, x1, 4, budget_bytes=1)
    assert [(c.start, c.stop) for c in chunks] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    total = sum(layerwise.contract(layerwise.features(chain, x1, c), layerwise.features(chain, x2, c), "sum")
                for c in chunks)
    ref = brute_force_ntk(model, x1, x2).diagonal(dim1=2, dim2=3).sum(-1)
    assert float((total - ref).abs().max() / ref.abs().max()) < 1e-10


def test_auto_route_on_convolution_chains_is_fixed_unless_tuning(tmp_path, monkeypatch):
    """``auto`` on a convolution chain takes the structured route by default (nothing timed or cached); with tuning
    on it measures the structured and Jacobian routes once for a key and keeps the faster in the tuner's cache;
    every call returns the same kernel."""
    from kernelkit import tune
    from kernelkit.ntk import empirical_kernel

    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).double()
    x1, x2 = _data(3, 2, 4, 4), _data(2, 2, 4, 4, seed=1)
    ref = brute_force_ntk(model, x1, x2).diagonal(dim1=2, dim2=3).mean(-1)
    cache = tmp_path / "tune.json"
    tune.clear()
    with tune.enabled(False, cache=cache):
        got = empirical(model, x1, x2)
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-10 and not cache.exists()
    with tune.enabled(cache=cache):
        for _ in range(3):
            got = empirical(model, x1, x2)
            assert float((got - ref).abs().max() / ref.abs().max()) < 1e-10
        (key,) = [k for k in tune.entries() if k.startswith(f"{empirical_kernel.TUNE_OP}|")]
        entry = tune.entries()[key]
        assert "|3x2x4x4,2x2x4x4|float64|trace=mean|" in key
        assert entry["choice"] in ("structured", "jacobian") and set(entry["ms"]) == {"structured", "jacobian"}
        monkeypatch.setattr(tune, "measure", lambda *a, **k: pytest.fail("measured again"))
        empirical(model, x1, x2)
    tune.clear()
