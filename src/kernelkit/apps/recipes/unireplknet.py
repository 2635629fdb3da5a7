"""UniRepLKNet report: sizes beside the paper, re-parameterization, deploy speed, ERF, long-range task, real data.

Settings: :class:`kernelkit.apps.configs.convnet.UniRepLKNetReportConfig` (``quick()`` for the smoke run).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from kernelkit.apps.configs.convnet import LongRangeConfig, UniRepLKNetReportConfig
from kernelkit.apps.recipes import ExperimentContext, register_experiment
from kernelkit.models.unireplknet import UNIREPLKNET_VARIANTS

VARIANTS = [name.split("_", 1)[1] for name in UNIREPLKNET_VARIANTS]

# Counts of the official unireplknet.py (AILab-CVC/UniRepLKNet @ b5677d8) run side by side in a throwaway
# environment (training form, deploy form); the test suite checks ours against the same numbers.
OFFICIAL_COMMIT = "AILab-CVC/UniRepLKNet@b5677d8"
OFFICIAL_PARAMS = {
    "a": (4_649_060, 4_437_300), "f": (6_489_328, 6_235_216), "p": (11_080_520, 10_741_704),
    "n": (18_818_880, 18_318_560), "t": (31_693_420, 31_037_980), "s": (56_456_704, 55_645_984),
    "b": (99_089_416, 98_008_456), "l": (220_076_056, 218_454_616), "xl": (388_690_984, 386_529_064),
}
# [P] Table 4 params (M) and Table 5 FLOPs (G) with their resolution.
PAPER = {"a": (4.4, 0.6, 224), "f": (6.2, 0.9, 224), "p": (10.7, 1.6, 224), "n": (18.3, 2.8, 224),
         "t": (31.0, 4.9, 224), "s": (55.6, 9.1, 224), "b": (97.9, 47.2, 384), "l": (218.3, 105.4, 384),
         "xl": (386.4, 187.0, 384)}


def sizes_table(ctx: ExperimentContext) -> None:
    from kernelkit.models import create_model
    from kernelkit.utils.counting import count_macs, count_params

    rows = []
    for v in VARIANTS:
        with torch.device("meta"):
            train = create_model(f"unireplknet_{v}")
            deploy = create_model(f"unireplknet_{v}", deploy=True)
            res = PAPER[v][2]
            macs = count_macs(deploy, inputs=torch.zeros(1, 3, res, res))
        assert isinstance(macs, int)
        ours = (count_params(train), count_params(deploy))
        official = OFFICIAL_PARAMS[v]
        rows.append({"model": f"UniRepLKNet-{v.upper()}", "params train (ours)": ours[0],
                     "params deploy (ours)": ours[1],
                     f"official code {OFFICIAL_COMMIT} (recorded)": "= ours" if ours == official
                     else f"{official[0]} / {official[1]}",
                     "paper params (M) [published, Table 4]": PAPER[v][0], "res": res,
                     "GMACs (ours, deploy)": round(macs / 1e9, 3),
                     "paper FLOPs (G) [published, Table 5]": PAPER[v][1]})
    ctx.section.table("Parameters and MACs: ours (measured in this run) beside the official code (recorded) and "
                      "the paper (published)", rows,
                      note="Columns marked 'ours' are counted in this run. 'official code (recorded)' holds parameter "
                           f"counts (training / deploy form) of the official unireplknet.py at {OFFICIAL_COMMIT} "
                           "recorded earlier in a throwaway environment, not run here; '= ours' means this run's "
                           "counts equal them. 'published' columns are the paper's numbers. "
                           "MACs count convolutions and linear layers (torch.utils.flop_counter / 2) of the "
                           "deploy form; the paper's 'FLOPs' are multiply-accumulates. The paper's Table 4 "
                           "prints B/L/XL 0.1–0.15M below the official code's counts; Table 5 prints 98/218/386M.")
    ctx.section.record(sizes=rows)


def reparam_check(ctx: ExperimentContext) -> None:
    from kernelkit.layers.reparam import randomize_for_reparam_check
    from kernelkit.models import create_model, reparameterize

    cfg: UniRepLKNetReportConfig = ctx.config
    rows = []
    for v in cfg.reparam_variants:
        torch.manual_seed(ctx.seed)
        model = randomize_for_reparam_check(create_model(f"unireplknet_{v}", num_classes=10), seed=ctx.seed).eval()
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            want = model(x)
            got = reparameterize(copy.deepcopy(model))(x)
        rows.append({"model": v.upper(), "max |Δ|": f"{(got - want).abs().max().item():.2e}",
                     "relative (max |Δ| / max |y|)": f"{((got - want).abs().max() / want.abs().max()).item():.2e}"})
    ctx.section.table("Training form vs deploy form (eval, randomised BN statistics, layer scale, GRN)", rows,
                      note="Goal: relative error < 1e-5 in fp32; fusion arithmetic runs in float64.")
    ctx.section.record(reparam=rows)


def speed(ctx: ExperimentContext) -> None:
    from kernelkit.layers.reparam import use_fast_depthwise
    from kernelkit.models import create_model, reparameterize

    cfg: UniRepLKNetReportConfig = ctx.config
    res, batch, reps = cfg.speed_res, cfg.speed_batch, cfg.speed_reps
    torch.manual_seed(ctx.seed)
    train = create_model("unireplknet_a").eval()
    deploy = reparameterize(copy.deepcopy(train)).eval()
    x = torch.randn(batch, 3, res, res)
    candidates = {"training form": lambda: train(x), "deploy form": lambda: deploy(x)}
    times: dict[str, list[float]] = {k: [] for k in candidates}
    with torch.no_grad():
        for fn in candidates.values():
            fn()
        for _ in range(reps):  # alternate so that machine load affects all alike
            for k, fn in candidates.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        with use_fast_depthwise(False):
            t0 = time.perf_counter()
            deploy(x)
            off = time.perf_counter() - t0
    rows = [{"form": k, "median ms": round(1e3 * sorted(v)[len(v) // 2], 1),
             "images/s": round(batch / sorted(v)[len(v) // 2], 2)} for k, v in times.items()]
    rows.append({"form": "deploy form, fast depthwise off (single run)", "median ms": round(1e3 * off, 1),
                 "images/s": round(batch / off, 2)})
    base = sorted(times["training form"])[reps // 2] / sorted(times["deploy form"])[reps // 2]
    ctx.section.table(f"UniRepLKNet-A inference on CPU, batch {batch}, {res}²", rows,
                      note=f"deploy speed-up over the training form: {base:.2f}×. Timings share the machine with "
                           "other jobs; `kernelkit bench unireplknet_inference` gives repeated side-by-side ratios, "
                           "including against the official implementation when it is importable.")
    ctx.section.record(speed=rows, deploy_speedup=base)


def erf_section(ctx: ExperimentContext) -> None:
    from kernelkit.models import create_model
    from kernelkit.models.erf import erf_images, measure_erf, plot_erf

    cfg: UniRepLKNetReportConfig = ctx.config
    n, size = cfg.erf_images, cfg.erf_size
    x, source = erf_images(n, size, ctx.data_root, ctx.seed)
    ctx.section.data_source(f"ERF: {source}")
    maps, ratios = {}, {}
    for label, lk in (("UniRepLKNet-A (K=13)", None), ("same, all kernels 3×3", 3)):
        torch.manual_seed(ctx.seed)
        net = create_model("unireplknet_a", deploy=True, large_kernel=lk).eval()
        maps[label], ratios[label] = measure_erf(net, x)
    ctx.section.table("ERF high-contribution area ratios (larger = wider ERF)",
                      [{"model": k, **{t: round(v, 4) for t, v in r.items()}} for k, r in ratios.items()],
                      note="Randomly initialised deploy-form networks (no pretrained weights offline), "
                           f"{n} images at {size}²; last-stage centre output.")
    ctx.section.figure(plot_erf(maps, ratios), "erf_small_vs_large", "ERF heatmaps: large vs small kernels")
    ctx.section.record(erf=ratios)


def recorded(name: str) -> dict[str, Any]:
    """A run recorded earlier (``recorded/unireplknet.json``): what ran, its command, date, commit and results."""
    from importlib import resources

    text = resources.files("kernelkit.apps.recipes").joinpath("recorded", "unireplknet.json").read_text("utf-8")
    return dict(json.loads(text)[name])


def add_recorded(ctx: ExperimentContext, name: str, title: str, rows: list[dict[str, Any]], note: str = "") -> None:
    """Show the rows of the recorded run ``name`` in the report's "recorded earlier" box, with its provenance."""
    rec = recorded(name)
    ctx.section.recorded(title, rows, command=rec["command"], date=rec["date"], commit=rec["commit"],
                         what=rec["what"], note=note)


def _mean_std(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    return f"{t.mean().item():.3f} ± {t.std(unbiased=True).item() if len(values) > 1 else 0.0:.3f}"


def train_torus_net(cfg: LongRangeConfig, kernel_size: int, width: int, seed: int, out_dir: Path,
                    device: str | torch.device = "cpu") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one :class:`~kernelkit.models.torusnet.TorusNet` on fresh seeded data with ``train.Trainer``.

    Data seeds ``1000 + seed`` (train) and ``2000 + seed`` (val); the network is initialised after
    ``torch.manual_seed(seed)``. AdamW with a linear warmup over ``cfg.warmup_fraction`` of the steps,
    then cosine decay. Returns the summary row (kernel, width, parameters, receptive field, the accuracy
    ceiling it implies, final/best validation and final training accuracy) and the per-epoch history.
    """
    from kernelkit.data.longrange import TorusPairConfig, receptive_field, small_rf_ceiling, torus_pairs
    from kernelkit.models.torusnet import TorusNet
    from kernelkit.train import TrainConfig, Trainer
    from kernelkit.utils.counting import count_params

    task = TorusPairConfig(cfg.size, cfg.near, cfg.far)
    train = torus_pairs(cfg.n_train, task, seed=1000 + seed)
    val = torus_pairs(cfg.n_val, task, seed=2000 + seed)
    torch.manual_seed(seed)
    net = TorusNet(kernel_size, width, cfg.depth)
    steps = cfg.epochs * math.ceil(cfg.n_train / cfg.batch_size)
    tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, eval_batch_size=256, optimizer="adamw", lr=cfg.lr,
                     weight_decay=cfg.weight_decay, schedule="cosine",
                     warmup_steps=max(1, round(cfg.warmup_fraction * steps)), checkpoint_every=0, seed=seed)
    hist = Trainer(net, train, tc, out_dir, val_set=val, device=device, quiet=True).fit().history
    row = {"kernel": kernel_size, "width": width, "depth": cfg.depth, "params": count_params(net), "seed": seed,
           "receptive field": receptive_field(kernel_size, cfg.depth),
           "ceiling": small_rf_ceiling(task, kernel_size, cfg.depth), "epochs": cfg.epochs,
           "final train acc": hist[-1]["train_acc"], "final val acc": hist[-1]["val_acc"],
           "best val acc": max(h["val_acc"] for h in hist)}
    return row, hist


def long_range(ctx: ExperimentContext) -> None:
    from kernelkit.data.longrange import TorusPairConfig, receptive_field, small_rf_ceiling
    from kernelkit.models.torusnet import TorusNet, matched_torus_width
    from kernelkit.utils.counting import count_params

    lr_cfg = ctx.config.long_range
    cfg, depth, width = TorusPairConfig(lr_cfg.size, lr_cfg.near, lr_cfg.far), lr_cfg.depth, lr_cfg.width
    seeds = tuple(ctx.seed + s for s in lr_cfg.seeds)
    widths = {13: width, 3: matched_torus_width(3, count_params(TorusNet(13, width, depth)), depth)}
    ctx.section.data_source(f"Long-range task: two dots on a {cfg.size}×{cfg.size} torus, generated in code "
                            f"({lr_cfg.n_train} train / {lr_cfg.n_val} val per seed, data seeds 1000+s / 2000+s)")
    rows = []
    for k, w in widths.items():
        for seed in seeds:
            r, hist = train_torus_net(lr_cfg, k, w, seed, ctx.section.dir / "torus" / f"k{k}-seed{seed}")
            for h in hist:
                ctx.section.log(step=h["epoch"], kernel=k, seed=seed, loss=h["train_loss"], train_acc=h["train_acc"],
                                val_acc=h["val_acc"])
            rows.append({key: (round(v, 3) if isinstance(v, float) else v) for key, v in r.items()})
    summary = [{"kernel": k, "width": w, "params": count_params(TorusNet(k, w, depth)),
                "receptive field (px)": receptive_field(k, depth),
                "accuracy ceiling": small_rf_ceiling(cfg, k, depth), "seeds": len(seeds),
                "final val acc (mean ± std)": _mean_std([r["final val acc"] for r in rows if r["kernel"] == k])}
               for k, w in widths.items()]
    ctx.section.text(
        f"Sees wide without going deep. Each image is a {cfg.size}×{cfg.size} torus with two single-pixel dots; the "
        f"label says whether their wrap-around Chebyshev distance is at most {cfg.near[1]} (positives drawn from "
        f"{cfg.near[0]}-{cfg.near[1]}, negatives from {cfg.far[0]}-{cfg.far[1]}). Both networks are a 1×1 stem, "
        f"{depth} UniRepLKNet-style blocks (depthwise K×K conv with circular padding → BN → 4× FFN, residual), "
        "stride 1 everywhere, global average pooling and a linear head; the K=3 net is widened to about the same "
        "parameter count. Why the small net cannot do better than chance: circular padding and stride 1 make every "
        "layer translation-equivariant on the torus and the pooling makes the output invariant, so an image is "
        "seen only through the displacement between the dots; when no receptive-field window holds both dots "
        "(distance ≥ R), the multiset of window contents — and hence every pooled statistic — is the same for "
        f"every such image. With R = {receptive_field(3, depth)} for K=3 and all distances ≥ {cfg.near[0]}, all "
        "images give one output: ceiling 0.5 (the tests check this invariance numerically). K=13 has "
        f"R = {receptive_field(13, depth)} and sees every pair.")
    ctx.section.table("Two dots on a torus: accuracy per kernel size (this run)", summary,
                      note="Mean ± sample std over seeds of the final validation accuracy (eval mode). "
                           + ("Quick mode: a smoke-sized run, not evidence." if ctx.quick else ""))
    ctx.section.table("Per seed (this run)", rows)
    ctx.section.record(long_range=rows, long_range_summary=summary)


def real_data(ctx: ExperimentContext) -> None:
    from kernelkit.data.dataset import train_val_split
    from kernelkit.data.imagefolder import load_cifar10_jpg
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.data.stats import CIFAR10_MEAN, CIFAR10_STD
    from kernelkit.data.transforms import Normalize
    from kernelkit.models import create_model
    from kernelkit.train import TrainConfig, Trainer

    try:
        ds = load_cifar10_jpg(root=ctx.data_root, lazy=True)
    except DataNotFoundError:
        ctx.section.text("Real-data run skipped: CIFAR-10 JPEGs are not in the data root.")
        return
    cfg: UniRepLKNetReportConfig = ctx.config
    n = cfg.cifar_images
    ds = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(ctx.seed))[:n])
    ds = ds.with_transform(Normalize(CIFAR10_MEAN, CIFAR10_STD))
    tr, va = train_val_split(ds, 0.2, ctx.seed)
    ctx.section.data_source(f"Real data: {ds.source}; {len(tr)}/{len(va)} stratified train/val split")
    torch.manual_seed(ctx.seed)
    net = create_model("unireplknet_a", num_classes=10)
    tc = TrainConfig(epochs=cfg.cifar_epochs, max_steps=cfg.cifar_max_steps, batch_size=64, optimizer="adamw",
                     lr=2e-3, weight_decay=0.05, warmup_steps=cfg.cifar_warmup_steps, label_smoothing=0.1,
                     checkpoint_every=0, seed=ctx.seed)
    result = Trainer(net, tr, tc, ctx.section.dir / "cifar_train", val_set=va, section=ctx.section,
                     quiet=True).fit()
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in result.history]
    ctx.section.table("UniRepLKNet-A on CIFAR-10 test JPEGs (32×32), split into train/val (this run)", rows,
                      note="From scratch; a short run showing the model trains (chance = 0.1)."
                           + (f" Stopped after {cfg.cifar_max_steps} steps." if cfg.cifar_max_steps else ""))
    ctx.section.record(real_data=rows, real_data_recorded=recorded("cifar")["results"])


def recorded_runs(ctx: ExperimentContext) -> None:
    """The full-size runs recorded earlier, last in the section, each in a "recorded earlier" box."""
    from kernelkit.data.longrange import TorusPairConfig, small_rf_ceiling

    full = LongRangeConfig()
    full_task = TorusPairConfig(full.size, full.near, full.far)
    torus = recorded("torus")
    rec_rows = [{"kernel": int(k), "width": v["width"], "params": v["params"], "seeds": "0, 1, 2",
                 "final val acc per seed": ", ".join(f"{a:.3f}" for a in v["val acc"]),
                 "mean ± std": _mean_std(list(v["val acc"])),
                 "ceiling": small_rf_ceiling(full_task, int(k), full.depth)}
                for k, v in torus["results"].items()]
    add_recorded(ctx, "torus", f"two dots on a torus, full size ({full.size}² torus, depth {full.depth}, "
                               f"{full.n_train}/{full.n_val}, {full.epochs} epochs, 3 seeds)", rec_rows)
    ctx.section.record(long_range_recorded=rec_rows)
    add_recorded(ctx, "cifar", "UniRepLKNet-A, CIFAR-10 test JPEGs 8000/2000, 32×32, 6-epoch cosine schedule",
                 recorded("cifar")["results"],
                 note="Train accuracy is measured in train mode during the epoch; chance = 0.1.")


@register_experiment("unireplknet", system="unireplknet", title="UniRepLKNet: sizes, re-parameterization, ERF, "
                     "long-range task", config=UniRepLKNetReportConfig)
def unireplknet_report(ctx: ExperimentContext) -> None:
    ctx.section.text("UniRepLKNet (Ding et al., CVPR 2024 / TPAMI): large-kernel ConvNet with Dilated Reparam "
                     "Blocks. All variants follow the official implementation (same parameter names). Tables and "
                     "plots are measured in this run, except columns whose names say 'recorded' (the official "
                     "code's counts) or 'published' (the paper), and the boxes headed 'Recorded earlier (not this "
                     "run)' at the end of this section, which give the command, date and commit that produced "
                     "them.")
    for part in (sizes_table, reparam_check, speed, erf_section, long_range, real_data, recorded_runs):
        t0 = time.time()
        part(ctx)
        ctx.section.log(part=part.__name__, seconds=round(time.time() - t0, 1))
