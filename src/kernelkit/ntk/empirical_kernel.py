"""Empirical (finite-width) NTK of any ``torch.nn.Module`` with ``torch.func``.

``Θ(x1, x2) = Σ_params J(x1) J(x2)ᵀ`` for the network at its current parameters. Methods:

* ``"jacobian"``: per-sample Jacobians (``vmap(jacrev)``), contracted with one matrix product per parameter.
  Cost ``N·O·[FP] + N²·O·P`` (traced).
* ``"ntvp"``: NTK-vector products ``J(x1) [J(x2)ᵀ e]`` via a VJP then a JVP for each basis cotangent ``e``.
  Cost ``N²·O·[FP]``; no Jacobian is stored.
* ``"structured"``: for fully connected layers (``nn.Linear``, :class:`kernelkit.ntk.nn.Dense`) the
  per-sample weight gradient is the outer product ``g ⊗ x`` of the output cotangent and the layer
  input, so their contribution is ``(G1·G2ᵀ) ⊙ (X1·X2ᵀ)`` and costs ``N²·O·(in + out)`` instead of
  ``N²·O·in·out``. Sequential chains of fully connected, convolutional, elementwise and reshaping layers
  are backpropagated layer by layer on the whole batch (:mod:`kernelkit.ntk.layerwise`); in any other
  model the fully connected layers are found with hooks and every other parameter is handled as in
  ``"jacobian"``.
* ``"auto"``: ``"structured"`` for such chains and for models with fully connected layers, else
  ``"jacobian"``. On chains with convolutions both routes form the same per-sample convolution gradients,
  and at one or few logits the structured route's layout work can cost as much as it saves; there, with
  tuning on (``KERNELKIT_TUNE=1`` or ``with kernelkit.tune.enabled():``), :mod:`kernelkit.tune` measures
  both routes once per model structure, input shapes, dtype, trace, blocking and machine, and the faster
  one is used from then on (kept in the tuner's cache). Tuning off (the default): ``"structured"``.

Traced layer-wise kernels are accumulated over chunks of output logits (:func:`layerwise.logit_chunks`), so only
one chunk's cotangents and per-sample gradients exist at a time.

``trace="mean"`` (default) averages over output logits like neural-tangents, ``"sum"`` sums like the
torch.func tutorial, ``None`` returns the full ``(N1, N2, O, O)`` kernel.

``progress=True`` shows a :class:`kernelkit.console.ProgressBar` counting the ``batch_size`` blocks
(``⌈N1/batch_size⌉ · ⌈N2/batch_size⌉`` of them); it is off by default, and then nothing is printed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap
from torch.nn.parameter import UninitializedParameter

from kernelkit import tune
from kernelkit.console import ProgressBar
from kernelkit.ntk import layerwise
from kernelkit.ntk import nn as knn
from kernelkit.ntk.analytic_kernel import _blocks, check_inputs

__all__ = ["METHODS", "empirical"]

METHODS = ("auto", "jacobian", "ntvp", "structured")
TRACES = ("mean", "sum", None)


class _NotStructured(RuntimeError):
    pass


@dataclass
class _Net:
    """A model split into functional pieces."""

    model: nn.Module
    params: dict[str, Tensor]
    frozen: dict[str, Tensor]
    out_dim: int
    dtype: torch.dtype
    # structured layers: name -> (module, weight name or None, bias name or None, weight scale, bias scale)
    layers: dict[str, tuple[nn.Module, str | None, str | None, float, float]] = field(default_factory=dict)

    def apply(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(self.model, {**self.frozen, **params}, (x,))
        return out.reshape(x.shape[0], -1)


def _check_eval(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError(f"module {name or type(m).__name__} ({type(m).__name__}) is in training mode, where "
                             "samples interact through batch statistics; call model.eval() first")


def _prepare(model: nn.Module, x: Tensor) -> _Net:
    _check_eval(model)
    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model(x[:1])
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True); its NTK is zero")
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    frozen.update(dict(model.named_buffers()))
    dtype = next(iter(params.values())).dtype
    with torch.no_grad():
        out = functional_call(model, {**frozen, **params}, (x[:1].to(dtype),))
    return _Net(model, params, frozen, out.reshape(1, -1).shape[1], dtype)


def _find_structured(net: _Net, x: Tensor) -> None:
    """Fully connected layers called once on a 2-D input, with parameters used nowhere else."""
    from kernelkit.ntk.nn import Dense

    owners: dict[int, int] = {}
    for m in net.model.modules():
        for p in m._parameters.values():
            if p is not None:
                owners[id(p)] = owners.get(id(p), 0) + 1
    candidates = {n: m for n, m in net.model.named_modules() if isinstance(m, (nn.Linear, Dense))}
    calls: dict[str, list[int]] = {n: [] for n in candidates}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: calls[n].append(inp[0].dim()))
             for n, m in candidates.items()]
    try:
        with torch.no_grad():
            net.apply(net.params, x[:1].to(net.dtype))
    finally:
        for h in hooks:
            h.remove()
    for n, m in candidates.items():
        if calls[n] != [2]:
            continue
        w, b = m.weight, m.bias
        if owners.get(id(w), 0) > 1 or (b is not None and owners.get(id(b), 0) > 1):
            continue
        prefix = f"{n}." if n else ""
        wn = prefix + "weight" if w.requires_grad else None
        bn = prefix + "bias" if (b is not None and b.requires_grad) else None
        if wn is None and bn is None:
            continue
        ws, bs = m.scales() if isinstance(m, Dense) else (1.0, 1.0)
        net.layers[n] = (m, wn, bn, ws, bs)


@dataclass
class _Features:
    """Per-sample derivative features of one block: explicit Jacobian + structured factors."""

    jac: list[Tensor] | None  # per parameter tensor: (N, O, P_i)
    grads: dict[str, Tensor]  # layer -> (N, O, out) cotangents at the layer output
    inputs: dict[str, Tensor]  # layer -> (N, in) layer inputs


def _jacobian_features(net: _Net, x: Tensor) -> _Features:
    def single(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return net.apply(p, xi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(single), (None, 0))(net.params, x)
    return _Features([j.reshape(x.shape[0], net.out_dim, -1) for j in jac.values()], {}, {})


def _out_features(m: nn.Module) -> int:
    w = m.weight
    assert isinstance(w, Tensor)
    return int(w.shape[0])


def _structured_features(net: _Net, x: Tensor) -> _Features:
    struct_names = {nm for (_, wn, bn, _, _) in net.layers.values() for nm in (wn, bn) if nm}
    explicit = {n: p for n, p in net.params.items() if n not in struct_names}
    constant = {n: p for n, p in net.params.items() if n in struct_names}
    state: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., Tensor]:
        def fn(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> Tensor:
            if name in state["inputs"]:
                raise _NotStructured(f"layer {name} was called twice")
            state["inputs"][name] = inp[0]
            return out + state["eps"][name]
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, (m, *_rest) in net.layers.items()]
    basis = torch.eye(net.out_dim, dtype=net.dtype, device=x.device)

    def per_sample(xi: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        def fn(p: dict[str, Tensor], eps: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            state["eps"], state["inputs"] = eps, {}
            out = net.apply({**constant, **p}, xi.unsqueeze(0)).squeeze(0)
            return out, dict(state["inputs"])

        eps0 = {n: xi.new_zeros(1, _out_features(m)) for n, (m, *_rest) in net.layers.items()}
        _, vjp_fn, inputs = vjp(fn, explicit, eps0, has_aux=True)  # type: ignore[misc]  # 3 values with has_aux
        g_explicit, g_eps = vmap(vjp_fn)(basis)
        return g_explicit, g_eps, inputs

    def whole_batch() -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        # Samples do not interact, so the gradient of Σ_n f_n,o w.r.t. the layer-output shift of sample n is
        # sample n's own cotangent: one batched backward per logit, no per-sample vmap needed.
        def fn(eps: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
            state["eps"], state["inputs"] = eps, {}
            return net.apply(net.params, x), dict(state["inputs"])

        eps0 = {n: x.new_zeros(x.shape[0], _out_features(m)) for n, (m, *_rest) in net.layers.items()}
        _, vjp_fn, inputs = vjp(fn, eps0, has_aux=True)  # type: ignore[misc]  # 3 values with has_aux
        cot = basis[:, None, :].expand(net.out_dim, x.shape[0], net.out_dim)
        (g_eps,) = vmap(vjp_fn)(cot)  # layer -> (O, N, out)
        return {}, {k: v.transpose(0, 1) for k, v in g_eps.items()}, inputs

    try:
        g_explicit, g_eps, inputs = whole_batch() if not explicit else vmap(per_sample)(x)
    finally:
        for h in handles:
            h.remove()
    n = x.shape[0]
    jac = None
    if g_explicit:
        jac = [g.reshape(n, net.out_dim, -1) for g in g_explicit.values()]
    grads = {k: v.reshape(n, net.out_dim, -1) for k, v in g_eps.items()}
    ins = {k: v.reshape(n, -1) for k, v in inputs.items()}
    return _Features(jac, grads, ins)


def _contract(net: _Net, a: _Features, b: _Features, trace: str | None) -> Tensor:
    """``Σ J(a) J(b)ᵀ``: traced ``(N1, N2)`` or full ``(N1, N2, O, O)``."""
    n1 = (a.jac[0] if a.jac else next(iter(a.grads.values()))).shape[0]
    n2 = (b.jac[0] if b.jac else next(iter(b.grads.values()))).shape[0]
    o = net.out_dim
    if trace is None:
        k = torch.zeros(n1, n2, o, o, dtype=net.dtype, device=next(iter(net.params.values())).device)
        for ja, jb in zip(a.jac or [], b.jac or [], strict=True):
            k += (ja.reshape(n1 * o, -1) @ jb.reshape(n2 * o, -1).T).reshape(n1, o, n2, o).permute(0, 2, 1, 3)
        for name, (_m, wn, bn, ws, bs) in net.layers.items():
            gg = torch.einsum("noi,mpi->nmop", a.grads[name], b.grads[name])
            coef = (ws * ws) * (a.inputs[name] @ b.inputs[name].T) if wn else 0.0
            coef = coef + (bs * bs if bn else 0.0)
            k += gg * (coef[:, :, None, None] if isinstance(coef, Tensor) else coef)
        return k
    k = torch.zeros(n1, n2, dtype=net.dtype, device=next(iter(net.params.values())).device)
    for ja, jb in zip(a.jac or [], b.jac or [], strict=True):
        k += ja.reshape(n1, -1) @ jb.reshape(n2, -1).T
    for name, (_m, wn, bn, ws, bs) in net.layers.items():
        ga, gb = a.grads[name], b.grads[name]
        gg = ga.reshape(n1, -1) @ gb.reshape(n2, -1).T  # Σ_o g_no · g_mo
        coef = (ws * ws) * (a.inputs[name] @ b.inputs[name].T) if wn else 0.0
        k += gg * (coef + (bs * bs if bn else 0.0))
    return k / o if trace == "mean" else k


def _ntvp_block(net: _Net, x1: Tensor, x2: Tensor, trace: str | None, chunk: int | None) -> Tensor:
    n1, n2, o = x1.shape[0], x2.shape[0], net.out_dim

    def f1(p: dict[str, Tensor]) -> Tensor:
        return net.apply(p, x1)

    _, vjp_fn = vjp(lambda p: net.apply(p, x2), net.params)  # type: ignore[misc]  # 2 values without has_aux

    def ntvp(e: Tensor) -> Tensor:
        (v,) = vjp_fn(e)
        return jvp(f1, (net.params,), (v,))[1]

    basis = torch.eye(n2 * o, dtype=net.dtype, device=x1.device).reshape(n2 * o, n2, o)
    res = vmap(ntvp, chunk_size=chunk)(basis)  # (M·O', N, O)
    full = res.reshape(n2, o, n1, o).permute(2, 0, 3, 1)  # (N, M, O, O')
    if trace is None:
        return full
    k = full.diagonal(dim1=2, dim2=3).sum(-1)
    return k / o if trace == "mean" else k


def empirical(model: nn.Module, x1: Tensor, x2: Tensor | None = None, method: str = "auto",
              trace: str | None = "mean", batch_size: int | None = None, progress: bool = False) -> Tensor:
    """Empirical NTK of ``model`` at its current parameters.

    Args:
        model: any module mapping ``(N, ...)`` to ``(N, ...)``; outputs are flattened to ``(N, O)``. Samples
            must not interact (BatchNorm in eval mode is fine, training mode raises).
        x1, x2: inputs with a batch axis (default ``x2 = x1``).
        method: ``"auto"``, ``"jacobian"``, ``"ntvp"`` or ``"structured"`` (see the module docstring).
        trace: ``"mean"`` over output logits (default), ``"sum"``, or ``None`` for ``(N1, N2, O, O)``.
        batch_size: compute the kernel in blocks of this many samples to bound memory.
        progress: show a progress bar over the blocks on stderr (off by default: the library prints nothing
            unless asked).

    Returns:
        ``(N1, N2)`` (traced) or ``(N1, N2, O, O)`` kernel in the model's dtype.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if trace not in TRACES:
        raise ValueError(f"trace must be one of {TRACES}, got {trace!r}")
    x1, x2 = check_inputs(x1, x2)
    chain = layerwise.chain_layers(model) if method in ("auto", "structured") else None
    if chain is not None:
        try:
            if method == "auto" and tune.is_enabled() and _worth_trying_jacobian(model, chain, x1, x2):
                return _auto_tuned(model, chain, x1, x2, trace, batch_size, progress)
            return _chain_kernel(model, chain, x1, x2, trace, batch_size, progress)
        except layerwise.NotAChainError:
            pass
    net = _prepare(model, x1)
    x1 = x1.to(net.dtype)
    x2 = None if x2 is None else x2.to(net.dtype)
    rows = _blocks(x1.shape[0], batch_size)
    xb = x1 if x2 is None else x2
    cols = _blocks(xb.shape[0], batch_size)
    blocks: dict[tuple[int, int], Tensor] = {}
    if method in ("auto", "structured"):
        _find_structured(net, x1)
        if method == "auto":
            method = "structured" if net.layers else "jacobian"
    with _bar(len(rows), len(cols), progress) as bar:
        if method == "ntvp":
            p = sum(v.numel() for v in net.params.values())
            chunk = max(1, int(2e7 // max(p, 1)))
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    blocks[i, j] = _ntvp_block(net, x1[r], xb[c], trace, chunk)
                    bar.advance(1)
            return _assemble(blocks, len(rows), len(cols))
        feats = _structured_features if method == "structured" else _jacobian_features
        try:
            for i, r in enumerate(rows):
                fa = feats(net, x1[r])
                for j, c in enumerate(cols):
                    fb = fa if (x2 is None and i == j) else feats(net, xb[c])
                    blocks[i, j] = _contract(net, fa, fb, trace)
                    bar.advance(1)
            return _assemble(blocks, len(rows), len(cols))
        except _NotStructured:
            net.layers.clear()
    # outside the first bar: the plain-Jacobian rerun shows its own
    return empirical(model, x1, x2, "jacobian", trace, batch_size, progress)


def _bar(n_rows: int, n_cols: int, progress: bool) -> ProgressBar:
    """The progress bar over ``n_rows × n_cols`` kernel blocks (a no-op unless ``progress``)."""
    return ProgressBar("empirical NTK blocks", total=n_rows * n_cols, disable=not progress)


TUNE_OP = "ntk"  # the tuner's name for the route of ``empirical(method="auto")`` on convolution chains
_JACOBIAN_TRIAL_BYTES = 256 << 20


def _worth_trying_jacobian(model: nn.Module, chain: list[nn.Module], x1: Tensor, x2: Tensor | None) -> bool:
    """Convolution chains at small output sizes can be as fast with plain Jacobians (the per-sample convolution
    gradients are formed either way; the structured route's layout work then is overhead). Fully connected
    chains never are (the structured route avoids the ``out × in`` per-sample gradients), and Jacobians larger
    than ``_JACOBIAN_TRIAL_BYTES`` are not tried."""
    if not any(isinstance(m, (nn.Conv2d, knn.Conv2d)) for m in chain):
        return False
    dtype = next(p for m in chain for p in m.parameters()).dtype
    with torch.no_grad():
        out_dim = model(x1[:1].to(dtype)).numel()
    n = x1.shape[0] + (0 if x2 is None else x2.shape[0])
    params = sum(p.numel() for m in chain for p in m.parameters() if p.requires_grad)
    return n * out_dim * params * x1.element_size() <= _JACOBIAN_TRIAL_BYTES


def _auto_key(chain: list[nn.Module], x1: Tensor, x2: Tensor | None, trace: str | None,
              batch_size: int | None) -> str:
    """The tuner's key: a digest of the chain's layers and parameters, input shapes, dtype, trace and blocking."""
    layers = repr([(repr(m), [(tuple(p.shape), str(p.dtype), p.requires_grad) for p in m.parameters()])
                   for m in chain])
    digest = hashlib.sha1(layers.encode()).hexdigest()[:16]
    shapes = "x".join(map(str, x1.shape)) + ("" if x2 is None else "," + "x".join(map(str, x2.shape)))
    return f"chain{digest}|{shapes}|{str(x1.dtype).removeprefix('torch.')}|trace={trace}|blocks={batch_size}"


def _auto_tuned(model: nn.Module, chain: list[nn.Module], x1: Tensor, x2: Tensor | None, trace: str | None,
                batch_size: int | None, progress: bool = False) -> Tensor:
    """``"auto"`` on a convolution chain with tuning on: the route :func:`kernelkit.tune.choose` picks
    (``"structured"`` unless ``"jacobian"`` measured clearly faster for this key)."""
    def routes(names: Sequence[str]) -> Mapping[str, Callable[[], object]]:
        run = {"structured": lambda: _chain_kernel(model, chain, x1, x2, trace, batch_size),
               "jacobian": lambda: empirical(model, x1, x2, "jacobian", trace, batch_size)}
        return {n: run[n] for n in names}

    route = tune.choose(TUNE_OP, lambda: _auto_key(chain, x1, x2, trace, batch_size), heuristic="structured",
                        candidates=["structured", "jacobian"], paths=routes, device=x1.device)
    if route == "jacobian":
        return empirical(model, x1, x2, "jacobian", trace, batch_size, progress)
    return _chain_kernel(model, chain, x1, x2, trace, batch_size, progress)


def _chain_kernel(model: nn.Module, chain: list[nn.Module], x1: Tensor, x2: Tensor | None, trace: str | None,
                  batch_size: int | None, progress: bool = False) -> Tensor:
    """The layer-wise structured method (:mod:`kernelkit.ntk.layerwise`), block by block."""
    _check_eval(model)
    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model(x1[:1])
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (requires_grad=True); its NTK is zero")
    dtype = next(iter(model.parameters())).dtype
    x1 = x1.to(dtype)
    xb = x1 if x2 is None else x2.to(dtype)
    rows, cols = _blocks(x1.shape[0], batch_size), _blocks(xb.shape[0], batch_size)
    blocks: dict[tuple[int, int], Tensor] = {}
    if trace is None:
        with _bar(len(rows), len(cols), progress) as bar:
            for i, r in enumerate(rows):
                la = layerwise.features(chain, x1[r])
                for j, c in enumerate(cols):
                    lb = la if (x2 is None and i == j) else layerwise.features(chain, xb[c])
                    blocks[i, j] = layerwise.contract(la, lb, None)
                    bar.advance(1)
        return _assemble(blocks, len(rows), len(cols))
    # traced: Σ_o is accumulated over chunks of logits, so only one chunk's features exist at a time
    with torch.no_grad(), _bar(len(rows), len(cols), progress) as bar:
        out_dim = model(x1[:1]).reshape(-1).numel()
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                blocks[i, j] = _traced_block(chain, x1[r], None if (x2 is None and i == j) else xb[c], out_dim)
                bar.advance(1)
    return _assemble({ij: k / out_dim for ij, k in blocks.items()} if trace == "mean" else blocks,
                     len(rows), len(cols))


def _traced_block(chain: list[nn.Module], xa: Tensor, xb: Tensor | None, out_dim: int) -> Tensor:
    """``Σ_o`` kernel block accumulated over chunks of logits (``xb=None``: the symmetric block of ``xa``)."""
    fwd_a = layerwise.forward_saving(chain, xa)
    fwd_b = fwd_a if xb is None else layerwise.forward_saving(chain, xb)
    cache_a: dict[Any, Tensor] = {}
    cache_b: dict[Any, Tensor] = {}
    k: Tensor | None = None
    for logits in layerwise.logit_chunks(chain, xa, out_dim):
        la = layerwise.features(chain, xa, logits, fwd_a, cache_a)
        lb = la if xb is None else layerwise.features(chain, xb, logits, fwd_b, cache_b)
        term = layerwise.contract(la, lb, "sum")
        k = term if k is None else k.add_(term)
    assert k is not None
    return k


def _assemble(blocks: dict[tuple[int, int], Tensor], n_rows: int, n_cols: int) -> Tensor:
    return torch.cat([torch.cat([blocks[i, j] for j in range(n_cols)], dim=1) for i in range(n_rows)], dim=0)
