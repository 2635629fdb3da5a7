"""NNGP and NTK regression of deep fully connected ReLU networks on real MNIST and CIFAR-10 images.

The infinite-width kernels (float64, exact arc-cosine recursion) of networks with 1 to 20 hidden layers are
computed in blocks with :func:`kernelkit.ntk.blocked.kernel_blocks` (one pass through the layers gives every
requested depth), and each is used for kernel regression on one-hot targets centred as in Lee et al. 2018
(0.9 for the true class, -0.1 for the others), solved exactly by Cholesky with a fixed small regulariser.
Accuracy is reported against depth and against the training-set size, beside Lee et al. 2018's Table 1.
Settings: :class:`kernelkit.apps.configs.ntk_real_data.NtkRealDataConfig`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kernelkit.apps.configs.ntk_real_data import NtkRealDataConfig
from kernelkit.apps.recipes import ExperimentContext, register_experiment
from kernelkit.ntk import core
from kernelkit.ntk import nn as knn
from kernelkit.ntk.blocked import KernelFn, kernel_blocks
from kernelkit.ntk.predict import kernel_regression
from kernelkit.runs import Section

KERNELS = ("NNGP", "NTK")
NUM_CLASSES = 10
TOLERANCE = 0.02  # accuracy difference (absolute) within which a published value counts as reproduced

LEE_URL = "https://arxiv.org/abs/1711.00165"
LEE_SOURCE = (f"Lee, Bahri, Novak, Schoenholz, Pennington, Sohl-Dickstein 2018, ICLR, \"Deep Neural Networks as "
              f"Gaussian Processes\", Table 1, {LEE_URL}")
LEE_NOTE = ("Values read from the text of the paper's ICLR review version; not checked against the camera-ready "
            "PDF (unverified there).")


@dataclass(frozen=True)
class PublishedAccuracy:
    """One ReLU row of Lee et al. 2018, Table 1: model ``GP-depth-σw²-σb²`` or ``NN-depth-width-σw²-σb²``."""

    dataset: str
    n_train: int
    model: str
    hyperparameters: str
    accuracy: float


LEE_TABLE1 = (
    PublishedAccuracy("mnist", 1000, "NNGP", "GP-20-1.45-0.28", 0.9279),
    PublishedAccuracy("mnist", 1000, "NN (SGD)", "NN-2-5000-3.19-0.00", 0.9252),
    PublishedAccuracy("mnist", 10000, "NNGP", "GP-7-0.61-0.07", 0.9765),
    PublishedAccuracy("mnist", 10000, "NN (SGD)", "NN-2-2000-0.42-0.16", 0.9771),
    PublishedAccuracy("mnist", 50000, "NNGP", "GP-1-0.10-0.48", 0.9875),
    PublishedAccuracy("mnist", 50000, "NN (SGD)", "NN-2-2000-0.60-0.44", 0.9864),
    PublishedAccuracy("cifar10", 1000, "NNGP", "GP-7-1.28-0.00", 0.3608),
    PublishedAccuracy("cifar10", 1000, "NN (SGD)", "NN-5-500-1.29-0.28", 0.3225),
    PublishedAccuracy("cifar10", 10000, "NNGP", "GP-5-2.97-0.28", 0.4780),
    PublishedAccuracy("cifar10", 10000, "NN (SGD)", "NN-5-2000-1.60-1.07", 0.4545),
    PublishedAccuracy("cifar10", 45000, "NNGP", "GP-3-3.31-1.86", 0.5566),
    PublishedAccuracy("cifar10", 45000, "NN (SGD)", "NN-3-5000-0.53-0.01", 0.5313),
)

DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


# --------------------------------------------------------------------------------------------- data
@dataclass
class ImageSplit:
    """Flattened, preprocessed images of one dataset split into training and test parts."""

    key: str  # "mnist" or "cifar10": the dataset asked for
    name: str  # the data actually used, for headings
    real: bool  # False when an embedded stand-in replaced the asked dataset
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    source: str


def _load(key: str, root: Path | None) -> tuple[Any, str, bool] | None:
    """The dataset ``key`` (its images, display name, whether it is the real one), or None if absent."""
    from kernelkit.data.root import find

    if key == "mnist":
        if find("mnist/t10k-images-idx3-ubyte.gz", root) is not None:
            from kernelkit.data.mnist import load_mnist

            return load_mnist("test", root=root), "MNIST", True
        from kernelkit.data.digits import load_digits

        return load_digits(), "scikit-learn 8×8 digits (MNIST not found)", False
    from kernelkit.data.imagefolder import CIFAR10_JPG_FILE, load_cifar10_jpg

    if find(CIFAR10_JPG_FILE, root) is None:
        return None
    return load_cifar10_jpg(root, lazy=True), "CIFAR-10 (JPEG)", True


def preprocess(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    """Subtract the training mean per feature, then scale every image to norm √features (float64)."""
    mean = x_train.mean(0)
    d = x_train.shape[1]

    def scale(x: Tensor) -> Tensor:
        x = x - mean
        return x * (math.sqrt(d) / x.norm(dim=1, keepdim=True).clamp_min(1e-12))

    return scale(x_train), scale(x_test)


def load_split(key: str, n_train: int, n_test: int, seed: int, root: Path | None) -> ImageSplit | None:
    """``n_train`` + ``n_test`` images of ``key`` drawn by a seeded permutation (shrunk in proportion when the
    data hold fewer), pixels in [0, 1] then :func:`preprocess`; None when the dataset is absent."""
    loaded = _load(key, root)
    if loaded is None:
        return None
    ds, name, real = loaded
    total = len(ds)
    if n_train + n_test > total:
        n_test = max(1, round(total * n_test / (n_train + n_test)))
        n_train = total - n_test
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    idx = perm[:n_train + n_test]
    images = ds.images
    if isinstance(images, Tensor):
        chosen = images[idx]
    else:
        lazy = images.select(idx.tolist())
        chosen = torch.stack([lazy[i] for i in range(len(idx))])
    x = chosen.reshape(len(idx), -1).to(torch.float64) / 255.0
    y = ds.targets[idx]
    x_train, x_test = preprocess(x[:n_train], x[n_train:])
    source = (f"{ds.source}: {n_train} training and {n_test} test images drawn from its {total} images by a "
              f"permutation with seed {seed}; {x.shape[1]} features, pixels in [0, 1], training mean subtracted, "
              f"each image scaled to norm √{x.shape[1]}")
    return ImageSplit(key, name, real, x_train, y[:n_train], x_test, y[n_train:], source)


# --------------------------------------------------------------------------------------------- kernels
def depth_kernel_fn(depths: Sequence[int], weight_var: float, bias_var: float) -> KernelFn:
    """A block function giving the NNGP and NTK of ReLU networks with each of ``depths`` hidden layers,
    stacked as ``(2·len(depths), len(xa), len(xb))`` in the order (depth₁ NNGP, depth₁ NTK, depth₂ NNGP, ...)
    for sorted depths; the layers are walked once, the readout applied at every requested depth."""
    wanted = sorted(set(depths))
    w, b = math.sqrt(weight_var), math.sqrt(bias_var)
    hidden, relu, readout = knn.Dense(1, w, b), knn.ReLU(), knn.Dense(1, w, b)

    def fn(xa: Tensor, xb: Tensor | None) -> Tensor:
        k = core.input_kernel(xa, xa if xb is None else xb, compute_ntk=True, same_inputs=xb is None)
        out: list[Tensor] = []
        for level in range(1, wanted[-1] + 1):
            k = knn.layer_kernel(relu, knn.layer_kernel(hidden, k))
            if level in wanted:
                r = knn.layer_kernel(readout, k)
                assert r.ntk is not None
                out += [r.nngp, r.ntk]
        return torch.stack(out)

    return fn


def network(depth: int, weight_var: float, bias_var: float) -> knn.Sequential:
    """The finite network whose infinite-width kernels :func:`depth_kernel_fn` gives at ``depth``."""
    w, b = math.sqrt(weight_var), math.sqrt(bias_var)
    layers: list[torch.nn.Module] = []
    for _ in range(depth):
        layers += [knn.Dense(1, w, b), knn.ReLU()]
    return knn.Sequential(*layers, knn.Dense(1, w, b))


# --------------------------------------------------------------------------------------------- regression
def centred_one_hot(labels: Tensor, classes: int = NUM_CLASSES) -> Tensor:
    """Regression targets of Lee et al. 2018: 0.9 for the true class, -0.1 elsewhere (float64)."""
    return torch.nn.functional.one_hot(labels.long(), classes).to(torch.float64) - 0.1


def regression_outputs(k_train: Tensor, k_test_train: Tensor, y_train: Tensor, diag_reg: float) -> Tensor:
    """Test outputs ``K*(K + λ·mean(diag K)·I)⁻¹ Y`` of kernel regression on :func:`centred_one_hot` targets
    (Cholesky, float64), one column per class."""
    pred = kernel_regression(k_train, centred_one_hot(y_train), k_test_train, diag_reg=diag_reg,
                             method="cholesky").test
    assert pred is not None
    return pred


def regression_accuracy(k_train: Tensor, k_test_train: Tensor, y_train: Tensor, y_test: Tensor,
                        diag_reg: float) -> float:
    """Test accuracy of :func:`regression_outputs` (the class of the largest output)."""
    pred = regression_outputs(k_train, k_test_train, y_train, diag_reg)
    return float((pred.argmax(1) == y_test).double().mean())


# --------------------------------------------------------------------------------------------- verdicts
def verdict(ours: float, published: float, same_n: bool, same_data: bool = True) -> str:
    """The stated rule: at the same N and data, within ``TOLERANCE`` of the published value is "supported",
    further is "not supported"; a different N or different data is "inconclusive"."""
    if not same_data:
        return "inconclusive (different data)"
    if not same_n:
        return "inconclusive (different N)"
    return "supported" if abs(ours - published) <= TOLERANCE else "not supported"


def published_rows(dataset: str) -> list[dict[str, Any]]:
    return [{"N train": p.n_train, "model (ReLU)": p.model, "depth-(width-)σw²-σb²": p.hyperparameters,
             "test accuracy": p.accuracy} for p in LEE_TABLE1 if p.dataset == dataset]


def differs_line(split: ImageSplit, cfg: NtkRealDataConfig) -> str:
    """Every difference between this run's setting and Lee et al.'s Table 1, from the config and data."""
    n_train, n_test = len(split.y_train), len(split.y_test)
    data = (f"{split.name} here" if not split.real else
            f"{split.name}: {n_train} training and {n_test} test images both drawn from the 10,000-image test "
            "split" + (", lossy JPEG re-encodings of the pixels" if split.key == "cifar10" else ""))
    return (f"data: {data}; the paper trains on the training split and tests on the full 10,000-image test set. "
            f"Hyperparameters: {cfg.size_depth} hidden layers, σw² = {cfg.weight_var:g}, σb² = {cfg.bias_var:g} "
            "fixed in advance here; picked per row on a validation set in the paper. Kernel: exact arc-cosine "
            "recursion in float64 here, a numerical lookup table in the paper. Regulariser: "
            f"{cfg.diag_reg:g}·mean(diag K) here. Inputs: centred by the training mean and scaled to equal norm "
            "here, scaled to equal norm in the paper. Training sizes here: "
            f"{', '.join(str(n) for n in cfg.train_sizes if n <= n_train)}. The paper reports no NTK, so the NTK "
            "rows of this run have no published counterpart.")


def verdict_lines(split: ImageSplit, acc: dict[tuple[str, str, int, int], float],
                  cfg: NtkRealDataConfig) -> list[dict[str, Any]]:
    """One verdict per published NNGP value of ``split``'s dataset, against this run's NNGP at ``size_depth``."""
    ours = {n: a for (d, k, depth, n), a in acc.items() if d == split.key and k == "NNGP" and depth == cfg.size_depth}
    out = []
    for p in LEE_TABLE1:
        if p.dataset != split.key or p.model != "NNGP" or not ours:
            continue
        n = p.n_train if p.n_train in ours else min(ours, key=lambda m: abs(m - p.n_train))
        out.append({"dataset": split.name, "published N": p.n_train, "published": p.accuracy, "our N": n,
                    "ours": round(ours[n], 4), "difference": round(ours[n] - p.accuracy, 4),
                    "verdict": verdict(ours[n], p.accuracy, n == p.n_train, split.real)})
    return out


# --------------------------------------------------------------------------------------------- recipe
def _passes(depths: Sequence[int], per_pass: int) -> list[list[int]]:
    ordered = sorted(set(depths))
    return [ordered[i:i + per_pass] for i in range(0, len(ordered), per_pass)]


def run_dataset(sec: Section, split: ImageSplit, cfg: NtkRealDataConfig,
                progress: bool) -> tuple[dict[tuple[str, str, int, int], float], dict[str, float]]:
    """Accuracies ``{(dataset, kernel, depth, n): accuracy}`` and the seconds spent on kernels and solves."""
    sizes = [n for n in cfg.train_sizes if n <= len(split.y_train)] or [len(split.y_train)]
    acc: dict[tuple[str, str, int, int], float] = {}
    seconds = {"kernels": 0.0, "solves": 0.0}
    passes = _passes(cfg.depths, cfg.depths_per_pass)
    for group in sec.progress(passes, f"{split.name}: kernel passes", total=len(passes)):
        fn = depth_kernel_fn(group, cfg.weight_var, cfg.bias_var)
        t0 = time.perf_counter()
        k_train = kernel_blocks(fn, split.x_train, None, block=cfg.block, out="host", progress=progress)
        k_test = kernel_blocks(fn, split.x_test, split.x_train, block=cfg.block, out="host", progress=progress)
        seconds["kernels"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for g, depth in enumerate(group):
            for j, kernel in enumerate(KERNELS):
                s = 2 * g + j
                for n in sizes:
                    a = regression_accuracy(k_train[s, :n, :n], k_test[s, :, :n], split.y_train[:n], split.y_test,
                                            cfg.diag_reg)
                    acc[split.key, kernel, depth, n] = a
                    sec.log(dataset=split.key, kernel=kernel, depth=depth, n_train=n, accuracy=a)
        seconds["solves"] += time.perf_counter() - t0
        del k_train, k_test
    return acc, seconds


@register_experiment("ntk_real_data", system="ntk",
                     title="NNGP and NTK regression of deep ReLU networks on MNIST and CIFAR-10",
                     config=NtkRealDataConfig)
def real_data(ctx: ExperimentContext) -> None:
    sec = ctx.section
    cfg = ctx.config_as(NtkRealDataConfig)
    progress = not sec.run.quiet
    sec.text(f"Networks: L hidden layers of Dense + ReLU and a Dense readout, σw² = {cfg.weight_var:g} (the ReLU "
             f"critical value) and σb² = {cfg.bias_var:g} in every Dense, NTK parametrization, infinite width; "
             f"L in {', '.join(map(str, sorted(cfg.depths)))}. Regression on one-hot targets centred as in Lee et "
             "al. 2018 (0.9 true class, -0.1 others), prediction = argmax, solved by Cholesky in float64 with "
             f"{cfg.diag_reg:g}·mean(diag K_train) added to the diagonal (a rule fixed in advance, no test data "
             f"used). The accuracy-vs-N curve and the verdicts use L = {cfg.size_depth}, also fixed in advance.")
    splits: list[ImageSplit] = []
    for key in cfg.datasets:
        split = load_split(key, cfg.n_train, cfg.n_test, ctx.seed, ctx.data_root)
        if split is None:
            sec.text(f"{DATASET_NAMES[key]} was not found under the data root ({ctx.data_root}): skipped.")
            continue
        sec.data_source(split.source)
        splits.append(split)
    used = ", ".join(sp.name if sp.real else f"{sp.name}, embedded fallback" for sp in splits) or "no data found"
    sec.title = f"{sec.title} ({used})"
    acc: dict[tuple[str, str, int, int], float] = {}
    timing: dict[str, dict[str, float]] = {}
    for split in splits:
        a, seconds = run_dataset(sec, split, cfg, progress)
        acc.update(a)
        timing[split.key] = {k: round(v, 1) for k, v in seconds.items()}
    names = {s.key: s.name for s in splits}
    n_of = {s.key: len(s.y_train) for s in splits}
    depths = sorted(set(cfg.depths))
    by_depth = [{"data": names[s.key], "kernel": k,
                 **{f"L={d}": round(acc[s.key, k, d, n_of[s.key]], 4) for d in depths}}
                for s in splits for k in KERNELS if (s.key, k, depths[0], n_of[s.key]) in acc]
    sec.table(f"Test accuracy vs hidden layers L (all training images of each split; "
              f"{', '.join(f'{s.name}: {n_of[s.key]} train / {len(s.y_test)} test' for s in splits)})", by_depth,
              note=f"Chance is 0.1. σw² = {cfg.weight_var:g}, σb² = {cfg.bias_var:g}.")
    sizes = sorted({n for (_, _, _, n) in acc})
    by_size = [{"data": names[s.key], "kernel": k,
                **{f"N={n}": round(acc[s.key, k, cfg.size_depth, n], 4) for n in sizes
                   if (s.key, k, cfg.size_depth, n) in acc}}
               for s in splits for k in KERNELS]
    sec.table(f"Test accuracy vs training-set size N (L = {cfg.size_depth} hidden layers)", by_size,
              note="N is the first N images of the seeded training split.")
    verdicts: list[dict[str, Any]] = []
    for s in splits:
        sec.published(f"{DATASET_NAMES[s.key]}: NNGP and SGD-trained networks, test accuracy", published_rows(s.key),
                      source=LEE_SOURCE,
                      setting=f"permutation-invariant {DATASET_NAMES[s.key]}, fully connected ReLU networks, MSE on "
                              "one-hot targets (-0.1/0.9), best depth and σw²/σb² per row on a validation set",
                      differs=differs_line(s, cfg), note=LEE_NOTE)
        verdicts += verdict_lines(s, acc, cfg)
    if verdicts:
        sec.table(f"Verdicts: this run's NNGP (L = {cfg.size_depth}) vs Lee et al. 2018, Table 1", verdicts,
                  note=f"Rule: at the same N and data, within {TOLERANCE * 100:g} points of the published value: "
                       "supported; further: not supported; a different N or different data: inconclusive.")
        for v in verdicts:
            sec.text(f"{v['dataset']} NNGP at N = {v['our N']}: {v['ours']:.4f} vs the published {v['published']:.4f} "
                     f"at N = {v['published N']} ({v['difference']:+.4f}): {v['verdict']}.")
    sec.text("Novak et al. 2019 (fully connected NNGP on full CIFAR-10) and Arora et al. 2019 (fully connected NTK "
             "baseline beside the CNTK) were also looked for; no number from them could be read and cited from a "
             "text at hand, so none is shown.")
    sec.record(ntk_real_data={
        "accuracy": [{"dataset": d, "kernel": k, "depth": L, "n_train": n, "accuracy": a}
                     for (d, k, L, n), a in sorted(acc.items())],
        "verdicts": verdicts, "seconds": timing, "data": {s.key: s.name for s in splits},
        "sigma_w2": cfg.weight_var, "sigma_b2": cfg.bias_var, "size_depth": cfg.size_depth})
    if splits:
        _plots(sec, splits, acc, cfg, depths, sizes)


def _plots(sec: Section, splits: list[ImageSplit], acc: dict[tuple[str, str, int, int], float],
           cfg: NtkRealDataConfig, depths: list[int], sizes: list[int]) -> None:
    from matplotlib.figure import Figure

    styles = {"NNGP": "-o", "NTK": "--s"}
    colors = {"mnist": "tab:blue", "cifar10": "tab:red"}
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for s in splits:
        n = len(s.y_train)
        for k in KERNELS:
            ax.plot(depths, [acc[s.key, k, d, n] for d in depths], styles[k], color=colors[s.key],
                    label=f"{s.name} {k}")
    ax.set_xlabel("hidden layers L")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    sec.figure(fig, "accuracy_vs_depth", caption="Kernel-regression test accuracy against depth, all training "
                                                 "images of each split.")
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for s in splits:
        for k in KERNELS:
            ns = [n for n in sizes if (s.key, k, cfg.size_depth, n) in acc]
            ax.plot(ns, [acc[s.key, k, cfg.size_depth, n] for n in ns], styles[k], color=colors[s.key],
                    label=f"{s.name} {k}")
    ax.set_xscale("log")
    ax.set_xlabel("training-set size N")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    sec.figure(fig, "accuracy_vs_n", caption=f"Test accuracy against the training-set size, L = {cfg.size_depth}.")
