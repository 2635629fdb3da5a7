"""Kernel-mix ablation (MixConv paper, Figs. 4/5): one MobileNetV2-style network, depthwise kernels
{3}, {5}, {7}, {9}, {3,5}, {3,5,7}, {3,5,7,9}, everything else equal, trained on real images.

Data: the CIFAR-10 JPEG test images from the data root, split stratified into train/val (or MNIST's
test set when chosen); without a data root, scikit-learn's 8x8 digits upscaled (said in the report).
Several seeds per kernel set; accuracy against parameters and MACs is plotted and the paper's trend is
checked in words: does mixing match or beat the single large kernel at lower cost, and do single
kernels degrade past 7-9?
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from kernelkit.apps.configs.convnet import ABLATION_DATASETS, KERNEL_SETS, AblationConfig
from kernelkit.apps.recipes import ExperimentContext, register_experiment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AblationConfig", "ABLATION_DATASETS", "DATASETS", "KERNEL_SETS", "load_ablation_data", "run_ablation",
           "report_ablation", "summarize", "trend_statement"]

DATASETS = ABLATION_DATASETS


# ---- data ---------------------------------------------------------------------------------------


class TensorImages(Dataset):
    """Preprocessed float images ``(N, C, S, S)`` with int labels."""

    def __init__(self, x: Tensor, y: Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])


def _per_class(targets: Tensor, limit: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in targets.unique():
        idx = (targets == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:limit]])
    return torch.cat(keep).sort().values


def load_ablation_data(cfg: AblationConfig, data_root: Path | None) -> tuple[TensorImages, TensorImages, str, int]:
    """``(train, val, source description, channels)``; falls back to digits when the real file is absent."""
    from kernelkit.data import DataNotFoundError, load_cifar10_jpg, load_digits, load_mnist, train_val_split
    from kernelkit.data.transforms import resize

    source_note = ""
    try:
        if cfg.dataset == "cifar10_jpg":
            ds = load_cifar10_jpg(root=data_root)
        elif cfg.dataset == "mnist":
            ds = load_mnist(split="test", root=data_root)
        elif cfg.dataset == "digits":
            ds = load_digits()
        else:
            raise ValueError(f"unknown dataset {cfg.dataset!r}; expected one of {DATASETS}")
    except DataNotFoundError as exc:
        ds = load_digits()
        where = str(exc).splitlines()[0] if str(exc) else "not found"
        source_note = (f"EMBEDDED FALLBACK: {cfg.dataset} not found under the data root ({where}); using "
                       f"scikit-learn's 8x8 digits upscaled to {cfg.image_size}x{cfg.image_size}. ")
    train, val = train_val_split(ds, val_fraction=cfg.val_fraction, seed=cfg.data_seed)
    if cfg.train_per_class is not None:
        train = train.subset(_per_class(train.targets, cfg.train_per_class, cfg.data_seed), "per-class subset")
        val = val.subset(_per_class(val.targets, max(1, cfg.train_per_class // 3), cfg.data_seed), "per-class subset")

    def tensors(part: Any) -> tuple[Tensor, Tensor]:
        x = torch.stack([part.images[i] for i in range(len(part))]).float() / 255.0
        if x.shape[-1] != cfg.image_size or x.shape[-2] != cfg.image_size:
            x = resize(x, (cfg.image_size, cfg.image_size))
        return x, part.targets.clone()

    xt, yt = tensors(train)
    xv, yv = tensors(val)
    mean, std = xt.mean((0, 2, 3), keepdim=True), xt.std((0, 2, 3), keepdim=True).clamp_min(1e-3)
    xt, xv = (xt - mean) / std, (xv - mean) / std  # normalised with train statistics only
    source = (f"{source_note}{ds.source}; stratified split (val fraction {cfg.val_fraction}, seed {cfg.data_seed})"
              f"{f', {cfg.train_per_class} train images per class' if cfg.train_per_class else ''}: "
              f"{len(yt)} train / {len(yv)} val images at {cfg.image_size}x{cfg.image_size}")
    return TensorImages(xt, yt), TensorImages(xv, yv), source, xt.shape[1]


def flip_shift(x: Tensor, y: Tensor, pad: int = 2) -> tuple[Tensor, Tensor]:
    """Batch augmentation: random horizontal flip and a random shift of up to ``pad`` pixels."""
    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    return xp[:, :, dy:dy + h, dx:dx + w], y


def channels_last(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return x.contiguous(memory_format=torch.channels_last), y


def compose(*fns: Any) -> Any:
    """One batch transform applying ``fns`` in order (``None`` entries skipped)."""
    fns = tuple(f for f in fns if f is not None)

    def transform(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for f in fns:
            x, y = f(x, y)
        return x, y
    return transform


# ---- the ablation -------------------------------------------------------------------------------


def kernel_name(ks: Sequence[int]) -> str:
    return f"dw{ks[0]}x{ks[0]}" if len(ks) == 1 else "mix" + "".join(map(str, ks))


def run_key(cfg: AblationConfig, ks: Sequence[int], seed: int) -> dict[str, Any]:
    """What makes one finished run reusable: the whole config except the lists of jobs, plus the job."""
    key = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "kernel_sets", "keep_weights")}
    key.update(kernel_set=list(ks), seed=seed)
    return json.loads(json.dumps(key))  # tuples → lists, as read back from JSON


def _drop_training_files(run_dir: Path, keep_weights: bool) -> None:
    """After a run's row is written: its resume checkpoints are no longer needed (and its weights, if not kept)."""
    import shutil

    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if not keep_weights:
        (run_dir / "model.safetensors").unlink(missing_ok=True)


def ablation_jobs(cfg: AblationConfig) -> list[tuple[tuple[int, ...], int]]:
    """Seed-major order: every kernel set once per seed, so a cut-short run still covers every set."""
    return [(tuple(ks), s) for s in cfg.seeds for ks in cfg.kernel_sets]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_run(run_dir: Path) -> bool:
    """Take ``run_dir`` for this process (``claim.pid``, created exclusively); ``False`` while another live
    process holds it. Lets several worker processes share one ablation directory; a dead holder's claim
    is taken over (its epoch checkpoints are resumed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    claim = run_dir / "claim.pid"
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(claim.read_text().strip() or -1)
            except (OSError, ValueError):
                holder = -1
            if holder == os.getpid():
                return True
            if holder > 0 and _pid_alive(holder):
                return False
            claim.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def run_ablation(cfg: AblationConfig, out_dir: Path, data_root: Path | None, device: torch.device,
                 section: Any = None, quiet: bool = True, train_missing: bool = True,
                 ) -> tuple[list[dict[str, Any]], str]:
    """Train every kernel set with every seed; returns per-run rows and the data-source description.

    Resumable: each finished run leaves ``<out_dir>/<kernels>-seed<s>/row.json`` (with its config) and is
    not trained again when the same ``out_dir`` is reused with the same config; an unfinished run
    resumes from its last epoch checkpoint (the trainer's own resume). Several processes may work on
    the same ``out_dir`` at once: each run is claimed by one (see :func:`claim_run`), the others skip
    it. ``train_missing=False`` only collects the finished runs (a report of a cut-short ablation).
    """
    from kernelkit.layers.mixconv import use_impl
    from kernelkit.models import create_model
    from kernelkit.train import TrainConfig, Trainer
    from kernelkit.utils.counting import count_macs, count_params
    from kernelkit.utils.io import read_json, write_json

    train, val, source, chans = load_ablation_data(cfg, data_root)
    augment = flip_shift if cfg.dataset == "cifar10_jpg" and "FALLBACK" not in source else None
    transform = compose(augment, channels_last if cfg.channels_last else None)
    rows = []
    jobs = ablation_jobs(cfg)
    it = section.progress(jobs, "kernel-mix ablation", total=len(jobs)) if section is not None else jobs
    for ks, seed in it:
        run_dir = out_dir / f"{kernel_name(ks)}-seed{seed}"
        key = run_key(cfg, ks, seed)
        done = run_dir / "row.json"
        if done.exists():
            saved = read_json(done)
            if saved.get("config") == key:
                rows.append(saved["row"])
                if section is not None:
                    section.log(step=len(rows), reused=True, **{k: v for k, v in saved["row"].items()
                                                                if k != "kernel_set"})
                continue
        if not train_missing or not claim_run(run_dir):
            continue
        torch.manual_seed(seed)
        model = create_model("mobilenetv2_mix", kernel_sizes=ks, num_classes=10, in_chans=chans, width=cfg.width,
                             depth=cfg.depth, small_input=cfg.small_input)
        with use_impl("split"):  # nominal arithmetic (the padded fast paths also multiply the zero taps)
            macs = count_macs(model, (1, chans, cfg.image_size, cfg.image_size))
        assert isinstance(macs, int)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer=cfg.optimizer, lr=cfg.lr,
                         weight_decay=cfg.weight_decay, schedule="cosine",
                         warmup_steps=max(1, len(train) // cfg.batch_size // 2), label_smoothing=cfg.label_smoothing,
                         checkpoint_every=0, drop_last=True, seed=seed)
        t0 = time.time()
        with use_impl(cfg.impl):
            # validation only once, after the last epoch (the reported number; no checkpoint is chosen on it)
            trainer = Trainer(model, train, tc, run_dir, batch_transform=transform, device=device, quiet=quiet)
            result = trainer.fit()
            seconds = time.time() - t0
            ev = trainer.evaluate(val)
        row = {"kernels": kernel_name(ks), "kernel_set": list(ks), "seed": seed, "params": count_params(model),
               "macs": int(macs), "val_acc": float(ev["acc"]), "val_loss": float(ev["loss"]),
               "train_acc": float(result.history[-1].get("train_acc", float("nan"))), "train_seconds": seconds}
        write_json(done, {"config": key, "row": row})
        _drop_training_files(run_dir, cfg.keep_weights)
        (run_dir / "claim.pid").unlink(missing_ok=True)
        rows.append(row)
        if section is not None:
            section.log(step=len(rows), **{k: v for k, v in row.items() if k != "kernel_set"})
    return rows, source


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std of the final val accuracy per kernel set, with params, MACs and train time."""
    out = []
    for name in dict.fromkeys(r["kernels"] for r in rows):
        rs = [r for r in rows if r["kernels"] == name]
        accs = [r["val_acc"] for r in rs]
        out.append({"kernels": name, "params": rs[0]["params"], "macs": rs[0]["macs"],
                    "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "seeds": len(accs), "train_s_mean": statistics.fmean(r["train_seconds"] for r in rs)})
    return out


#: Equivalence margin of the verdicts, in accuracy points: "matches" means not worse by more than this.
MARGIN_POINTS = 1.0

VERDICT_RULE = (
    "Verdict rule: with d = mean accuracy difference and SE its standard error over seeds, a MixConv/single pair "
    f"supports claim 1 when d - 2SE >= -{MARGIN_POINTS:g} point and the mix is cheaper, contradicts it when "
    f"d + 2SE < -{MARGIN_POINTS:g} point or the mix is not cheaper, and is inconclusive otherwise; claim 1 is "
    "supported when every pair supports it, not supported when any pair contradicts it, inconclusive otherwise. "
    "Claim 2 is supported when dw9x9 is below the best single kernel by more than 2SE, not supported when the "
    f"drop is below {MARGIN_POINTS:g} point even at +2SE, inconclusive otherwise. Fewer than 2 seeds per kernel set "
    "give no spread, so every verdict is then inconclusive."
)


def trend_statement(summary: list[dict[str, Any]]) -> str:
    """Whether the paper's two claims are supported, not supported or inconclusive here, by :data:`VERDICT_RULE`,
    with the numbers and the seed spread."""
    by = {s["kernels"]: s for s in summary}
    margin = MARGIN_POINTS / 100
    enough_seeds = bool(summary) and min(s["seeds"] for s in summary) >= 2

    def fmt(name: str) -> str:
        s = by[name]
        return f"{name} {100 * s['acc_mean']:.1f}±{100 * s['acc_std']:.1f}% ({s['params'] / 1e3:.0f}k params, " \
               f"{s['macs'] / 1e6:.1f}M MACs)"

    def noise(a: str, b: str) -> float:  # 1 standard error of the difference of two means
        sa, sb = by[a], by[b]
        return ((sa["acc_std"] ** 2 / sa["seeds"]) + (sb["acc_std"] ** 2 / sb["seeds"])) ** 0.5

    lines = []
    pairs = [(m, s) for m, s in (("mix35", "dw5x5"), ("mix357", "dw7x7"), ("mix3579", "dw9x9")) if m in by and s in by]
    outcomes = []
    for mix, single in pairs:
        d = by[mix]["acc_mean"] - by[single]["acc_mean"]
        cheaper = by[mix]["macs"] < by[single]["macs"] and by[mix]["params"] < by[single]["params"]
        se = noise(mix, single)
        if not cheaper or (enough_seeds and d + 2 * se < -margin):
            outcome = "contradicts"
        elif enough_seeds and d - 2 * se >= -margin:
            outcome = "supports"
        else:
            outcome = "inconclusive"
        outcomes.append(outcome)
        lines.append(f"{fmt(mix)} vs {fmt(single)}: Δ = {100 * d:+.1f} points, 2·SE = {200 * se:.1f}"
                     f"{'' if cheaper else ', mix NOT cheaper'} ({outcome}).")
    if pairs:
        claim = "Claim 1 (mixing matches or beats the single large kernel at lower cost)"
        verdict = ("not supported" if "contradicts" in outcomes else
                   "supported" if all(o == "supports" for o in outcomes) else "inconclusive at this budget")
        lines.append(f"{claim}: {verdict}.")
    singles = [n for n in ("dw3x3", "dw5x5", "dw7x7", "dw9x9") if n in by]
    if len(singles) >= 3 and "dw9x9" in by:
        best = max(singles, key=lambda n: by[n]["acc_mean"])
        large = [n for n in singles if n in ("dw7x7", "dw9x9")]
        drop = by[best]["acc_mean"] - by["dw9x9"]["acc_mean"]
        se = noise(best, "dw9x9") if best != "dw9x9" else 0.0
        claim = "Claim 2 (single kernels degrade past 7-9)"
        if not enough_seeds:
            verdict = "inconclusive at this budget"
        elif best != "dw9x9" and drop - 2 * se > 0:
            verdict = "supported"
        elif drop + 2 * se < margin:
            verdict = "not supported"
        else:
            verdict = "inconclusive at this budget"
        lines.append(f"Single kernels: best is {fmt(best)}; " + ", ".join(fmt(n) for n in large if n != best)
                     + f". {claim}: {verdict} (best minus dw9x9 = {100 * drop:+.1f} points, 2·SE = {200 * se:.1f}).")
    return " ".join(lines)


#: The paper's ImageNet ablation of the number of kernel groups g (Fig. 4), top-1 %: g=1 is the 3x3 depthwise
#: kernel, g=4 the mix {3,5,7,9}. The paper gives these only as a plot; the values are a secondary reading of it.
PAPER_FIG4_TOP1 = {"MobileNetV1": (71.1, 72.4), "MobileNetV2": (72.9, 74.1)}
PAPER_SOURCE = "Tan & Le 2019, BMVC, MixConv, Fig. 4"
PAPER_SETTING = "full MobileNetV1/V2 on ImageNet, top-1 %"
PAPER_NOTE = ("Approximate values read off the plot of Fig. 4 by a secondary source (the paper prints no table "
              "for this ablation); g=1 is the 3x3 depthwise kernel, g=4 the mix {3,5,7,9}.")


def published_rows() -> list[dict[str, Any]]:
    """The paper's Fig. 4 readings, one row per network, with the change from g=1 to g=4."""
    return [{"network": net, "dw3x3, g=1 (%)": g1, "mix3579, g=4 (%)": g4, "Δ (points)": round(g4 - g1, 1)}
            for net, (g1, g4) in PAPER_FIG4_TOP1.items()]


def setting_difference(cfg: AblationConfig, summary: list[dict[str, Any]], source: str) -> str:
    """One line: this run's dw3x3 -> mix3579 change beside the paper's, and where the settings differ."""
    by = {s["kernels"]: s for s in summary}
    if "dw3x3" in by and "mix3579" in by:
        a, b = by["dw3x3"], by["mix3579"]
        ours = (f"this run's dw3x3 -> mix3579 change is {100 * (b['acc_mean'] - a['acc_mean']):+.1f} points "
                f"({100 * a['acc_mean']:.1f}% -> {100 * b['acc_mean']:.1f}%, {min(a['seeds'], b['seeds'])} seeds), "
                f"the paper's {PAPER_FIG4_TOP1['MobileNetV2'][1] - PAPER_FIG4_TOP1['MobileNetV2'][0]:+.1f} on "
                "MobileNetV2")
    else:
        ours = "this run has no dw3x3/mix3579 pair to set beside the paper's"
    return (f"{ours}; dataset: {data_label(cfg, source)}, 10 classes at {cfg.image_size}x{cfg.image_size} here, "
            f"ImageNet in the paper; backbone: a MobileNetV2-style network of width {cfg.width} and depth "
            f"{cfg.depth} here, the full MobileNets in the paper; budget: {cfg.epochs} epochs here, a full ImageNet "
            "training in the paper.")


def plot_ablation(summary: list[dict[str, Any]], title: str) -> Figure:
    """Accuracy against parameters and against MACs, one line per family; a plain ``Figure`` (no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for ax, key, unit in ((axes[0], "params", 1e3), (axes[1], "macs", 1e6)):
        for group, marker, color in (("dw", "o-", "tab:blue"), ("mix", "s-", "tab:orange")):
            pts = [s for s in summary if s["kernels"].startswith(group)]
            if not pts:
                continue
            ax.errorbar([s[key] / unit for s in pts], [100 * s["acc_mean"] for s in pts],
                        yerr=[100 * s["acc_std"] for s in pts], fmt=marker, color=color, capsize=3,
                        label="single kernel" if group == "dw" else "MixConv")
            for s in pts:
                ax.annotate(s["kernels"], (s[key] / unit, 100 * s["acc_mean"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
        ax.set_xlabel("parameters (thousands)" if key == "params" else "MACs (millions)")
        ax.set_ylabel("val accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def data_label(cfg: AblationConfig, source: str) -> str:
    """The data a run actually used, for headings and plot titles (the fallback, not the dataset asked for)."""
    return "digits, embedded fallback" if "EMBEDDED FALLBACK" in source else cfg.dataset


def report_ablation(section: Any, cfg: AblationConfig, rows: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Fill a run section: data source, config, tables, plot, trend statement, recorded results."""
    summary = summarize(rows)
    statement = trend_statement(summary)
    planned = len(ablation_jobs(cfg))
    if len(rows) < planned:
        statement = (f"INCOMPLETE: {len(rows)} of {planned} planned runs finished; seeds per kernel set: "
                     + ", ".join(f"{s['kernels']} {s['seeds']}" for s in summary) + ". " + statement)
    section.data_source(source)
    section.text(f"MobileNetV2-style network (width {cfg.width}, depth {cfg.depth}, "
                 f"{'stride-1 stem' if cfg.small_input else 'stride-2 stem'}), only the depthwise kernel set varies; "
                 f"{cfg.optimizer}, cosine LR {cfg.lr}, weight decay {cfg.weight_decay}, {cfg.epochs} epochs, "
                 f"batch {cfg.batch_size}, label smoothing "
                 f"{cfg.label_smoothing}, seeds {list(cfg.seeds)}. Accuracy is the final-epoch validation accuracy "
                 f"(mean ± sample std over seeds). MACs are conv+linear at {cfg.image_size}x{cfg.image_size}.")
    section.table("Accuracy per kernel set", [
        {"kernels": s["kernels"], "params": s["params"], "MACs (M)": round(s["macs"] / 1e6, 2),
         "val acc (%)": f"{100 * s['acc_mean']:.2f} ± {100 * s['acc_std']:.2f}", "seeds": s["seeds"],
         "train time / run (s)": round(s["train_s_mean"], 1)} for s in summary])
    section.table("Every run", [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                                 if k != "kernel_set"} for r in rows])
    fig = plot_ablation(summary, f"Kernel-mix ablation ({data_label(cfg, source)}, {len(cfg.seeds)} seeds)")
    section.figure(fig, "mixconv_ablation",
                   "Validation accuracy vs parameters and vs MACs (error bars: std over seeds)")
    section.text("Trend: " + statement)
    section.text(VERDICT_RULE)
    section.published("Number of kernel groups g", published_rows(), source=PAPER_SOURCE, setting=PAPER_SETTING,
                      differs=setting_difference(cfg, summary, source), note=PAPER_NOTE)
    results = {"config": asdict(cfg), "summary": summary, "runs": rows, "trend": statement}
    section.record(mixconv_ablation=results)
    return results


@register_experiment("mixconv_ablation", system="mixconv", title="Kernel-mix ablation (MixConv paper, Figs. 4/5)",
                     config=AblationConfig)
def mixconv_ablation(ctx: ExperimentContext) -> None:
    cfg: AblationConfig = ctx.config
    cfg = replace(cfg, seeds=tuple(ctx.seed + s for s in cfg.seeds))
    rows, source = run_ablation(cfg, ctx.section.dir / "ablation", ctx.data_root, ctx.device, ctx.section)
    if ctx.quick:
        per_class = f"{cfg.train_per_class} training images per class" if cfg.train_per_class else "all images"
        accs = [100 * r["val_acc"] for r in rows]
        spread = f"validation accuracies {min(accs):.1f}-{max(accs):.1f}%" if accs else "no finished runs"
        ctx.section.text(f"QUICK MODE: {per_class} at {cfg.image_size}x{cfg.image_size} for {cfg.epochs} epochs, "
                         f"{len(cfg.seeds)} seeds: {spread}. The full comparison is `kernelkit reproduce --only "
                         "mixconv` or `kernelkit convnet mixconv-ablation`.")
    report_ablation(ctx.section, cfg, rows, source)
